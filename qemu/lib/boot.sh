# shellcheck shell=bash
# Booting the guest: qemu-system-x86_64 under a hard timeout, console on
# stdout, the guest's exit status from a second UART. Sourced after
# common.sh, host.sh, initramfs.sh and drives.sh.
#
# Settings (globals): MODE (vfio|uio), SMP, MEM_MB, HUGEPAGES, TIMEOUT (seconds),
# ACCEL (auto|tcg|kvm), VERBOSE (0|1), QEMU_DRIVE_ARGS, QEMU_EXTRA_ARGS
# (optional: more qemu arguments, such as -trace).

QBOOT=/usr/share/qemu/qboot.rom
QEMU_EXTRA_ARGS=()
EXIT_TAG='spdk-io-guest-exit: '

# kvm_usable: KVM only where a stock kernel really runs under it. /dev/kvm
# must be writable, and a nested PVM host (kvm_pvm) cannot run a stock
# kernel; then one probe boot decides, cached per kernel and qemu.
kvm_usable() {
  [[ -w /dev/kvm && ! -e /sys/module/kvm_pvm ]] || return 1
  local stamp qv
  qv=$(qemu-system-x86_64 --version | head -n1 | tr -c 'A-Za-z0-9.\n' _)
  stamp=$WORK_DIR/kvm-probe-$KVER-$qv
  if [[ ! -e $stamp ]]; then
    log "probing whether the guest kernel boots under KVM"
    # A plain guest without drives; the locals shadow the settings for run_qemu.
    local dir MODE=uio SMP=1 MEM_MB=2048 TIMEOUT=60 VERBOSE=0 QEMU_DRIVE_ARGS=() QEMU_EXTRA_ARGS=()
    dir=$(mktemp -d "$WORK_DIR/run.XXXXXX")
    mkdir -p "$dir/stage/payload"
    echo true >"$dir/stage/payload/cmd"
    make_initrd "$dir/stage" "$dir/initrd"
    if run_qemu kvm "$dir" >/dev/null 2>&1 && [[ $(guest_status "$dir") == 0 ]]; then
      echo yes >"$stamp"
    else
      echo no >"$stamp"
    fi
    rm -rf "$dir"
  fi
  [[ $(cat "$stamp") == yes ]]
}

# choose_accel: tcg or kvm per ACCEL.
choose_accel() {
  : "${ACCEL:=auto}"
  case $ACCEL in
    tcg | kvm) echo "$ACCEL" ;;
    auto) if kvm_usable; then echo kvm; else echo tcg; fi ;;
    *) die "--accel must be auto, tcg or kvm, not '$ACCEL'" ;;
  esac
}

# run_qemu ACCEL DIR [INITRD]: boot INITRD (default DIR/initrd); console to
# stdout, the second UART to DIR/results. Returns timeout's status (124 on
# timeout); qemu's own status says nothing about the guest.
run_qemu() {
  local accel=$1 dir=$2 initrd=${3:-$2/initrd} args append
  # init_on_alloc=0: Debian zeroes pages on allocation by default, which
  # makes reserving 1 GiB of hugepages take seconds under TCG; hugetlb pages
  # are zeroed when first touched anyway.
  append="console=ttyS0 panic=-1 init_on_alloc=0 spdkio.mode=$MODE spdkio.hugepages=$HUGEPAGES"
  if [[ $VERBOSE == 1 ]]; then append+=" spdkio.verbose=1"; else append+=" quiet loglevel=3"; fi
  # debug-threads=on names qemu's threads ("CPU 0/TCG", the main loop
  # keeps the process name), so a host-side look at where the emulator's
  # time goes can tell the guest's CPU from the device emulation.
  args=(-nodefaults -no-user-config -no-reboot -display none -name spdkio,debug-threads=on
    -accel "$accel" -smp "$SMP" -m "$MEM_MB")
  if [[ $accel == kvm ]]; then args+=(-cpu host); else args+=(-cpu max); fi
  if [[ $MODE == vfio ]]; then
    args+=(-machine "q35,kernel-irqchip=split" -device "intel-iommu,intremap=on")
    # no_timer_check: under TCG on a loaded host the kernel's check of the
    # timer through the interrupt-remapped IO-APIC can time out and panic
    # ("timer doesn't work through Interrupt-remapped IO-APIC"); the timer
    # works, the check is what is too slow.
    append+=" intel_iommu=on no_timer_check"
  else
    args+=(-machine q35)
  fi
  [[ -e $QBOOT ]] && args+=(-bios "$QBOOT")
  args+=(-kernel "$VMLINUX" -initrd "$initrd" -append "$append"
    -chardev "stdio,id=console,signal=off" -serial chardev:console
    -serial "file:$dir/results" "${QEMU_DRIVE_ARGS[@]}" "${QEMU_EXTRA_ARGS[@]}")
  [[ $VERBOSE == 1 ]] && log "qemu-system-x86_64 ${args[*]}"
  # --foreground: stay in the caller's process group, so that Ctrl-C or a
  # kill of the group reaches qemu too.
  timeout --foreground --kill-after=10 "$TIMEOUT" qemu-system-x86_64 "${args[@]}" </dev/null
}

# guest_status DIR: the exit status the guest reported, or nothing.
guest_status() {
  [[ -e $1/results ]] || return 0
  sed -n "s/^$EXIT_TAG\([0-9]*\).*/\1/p" "$1/results" | tail -n1
}

# boot_guest DIR [INITRD]: boot INITRD (default DIR/initrd) in MODE; the
# console also goes to DIR/console.log. Sets GUEST_STATUS to the guest's
# exit status (125 when the guest reported nothing) and GUEST_SECONDS.
boot_guest() {
  local dir=$1 initrd=${2:-$1/initrd} accel t0 rc=0 status
  accel=$(choose_accel)
  t0=$(now_ms)
  run_qemu "$accel" "$dir" "$initrd" | tee "$dir/console.log" || rc=${PIPESTATUS[0]}
  GUEST_SECONDS=$(awk -v ms=$(($(now_ms) - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
  status=$(guest_status "$dir")
  if grep -q "Initramfs unpacking failed" "$dir/console.log"; then
    # Files are missing in the guest: whatever ran there proves nothing.
    log "mode $MODE: the guest could not unpack its initramfs (out of memory: raise --mem)"
    GUEST_STATUS=126
  elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
    log "mode $MODE: the guest hit the ${TIMEOUT}s timeout (raise it with --timeout)"
    GUEST_STATUS=124
  elif [[ -z $status ]]; then
    log "mode $MODE: the guest powered off without reporting a status (qemu exit $rc; rerun with --verbose)"
    GUEST_STATUS=125
  else
    GUEST_STATUS=$status
  fi
  log "mode $MODE ($accel): guest ran ${GUEST_SECONDS}s, status $GUEST_STATUS"
}
