# shellcheck shell=bash
# shellcheck disable=SC2034 # the settings are read by the other lib files
# Options shared by qemu/run, qemu/run-tests and qemu/bench: the guest's
# shape (mode, CPUs, memory, timeout) and its NVMe drives. Sourced after
# common.sh.

MODE=vfio
SMP=1
MEM_MB=2048
HUGEPAGES=512
TIMEOUT=600
ACCEL=auto
VERBOSE=0
KEEP=0
DRIVE_SPECS=()
DRIVE_SIZE=256
DRIVE_LBA=512
DRIVE_NAMESPACES=1
DRIVE_MDTS=
DRIVE_QUEUES=
DRIVE_SHAPED=0

GUEST_OPTIONS_HELP='Guest options:
  --mode vfio|uio      vfio: intel-iommu + vfio-pci (IOVA = VA); uio: no IOMMU,
                       uio_pci_generic (IOVA = physical address). Default vfio.
  --smp N              guest CPUs (default 1)
  --mem MIB            guest memory in MiB (default 2048)
  --hugepages N        2 MiB hugepages to reserve in the guest (default 512)
  --timeout SECS       hard limit on the boot (default 600)
  --accel auto|tcg|kvm auto: KVM only where a stock kernel boots under it
  --verbose            full kernel log, init messages, the qemu command line
  --keep               keep the run directory (images, console, results)
Drive options (default: the three controllers of the test contract):
  --drive SPEC         add a controller; SPEC is file|null[,size=MIB][,lba=512|4096]
                       [,ms=0|8|16|64][,namespaces=N][,mdts=N][,queues=N];
                       repeatable (ms: metadata bytes per block, separate)
  --size MIB           namespace size for --drive without size= (default 256)
  --lba 512|4096       LBA size for --drive without lba= (default 512)
  --namespaces N       namespaces per controller (default 1)
  --mdts N             MDTS as a power of two of 4 KiB pages (QEMU default 7)
  --queues N           max I/O queue pairs (QEMU default 64)
  Any of --size/--lba/--namespaces/--mdts/--queues alone gives one file drive.'

# need_value OPTION ARGC: die unless OPTION has its value.
need_value() { (($2 >= 2)) || die "$1 needs a value"; }

# parse_guest_option ARGS...: consume one guest option from ARGS; sets
# CONSUMED to 1 or 2, or 0 when $1 is not a guest option.
parse_guest_option() {
  CONSUMED=2
  case $1 in
    --mode) need_value "$1" $#; MODE=$2 ;;
    --smp) need_value "$1" $#; SMP=$2 ;;
    --mem) need_value "$1" $#; MEM_MB=$2 ;;
    --hugepages) need_value "$1" $#; HUGEPAGES=$2 ;;
    --timeout) need_value "$1" $#; TIMEOUT=$2 ;;
    --accel) need_value "$1" $#; ACCEL=$2 ;;
    --drive) need_value "$1" $#; DRIVE_SPECS+=("$2") ;;
    --size) need_value "$1" $#; DRIVE_SIZE=$2; DRIVE_SHAPED=1 ;;
    --lba) need_value "$1" $#; DRIVE_LBA=$2; DRIVE_SHAPED=1 ;;
    --namespaces) need_value "$1" $#; DRIVE_NAMESPACES=$2; DRIVE_SHAPED=1 ;;
    --mdts) need_value "$1" $#; DRIVE_MDTS=$2; DRIVE_SHAPED=1 ;;
    --queues) need_value "$1" $#; DRIVE_QUEUES=$2; DRIVE_SHAPED=1 ;;
    --verbose) VERBOSE=1; CONSUMED=1 ;;
    --keep) KEEP=1; CONSUMED=1 ;;
    *) CONSUMED=0 ;;
  esac
}

# check_guest_options: validate what parse_guest_option took.
check_guest_options() {
  [[ $MODE == vfio || $MODE == uio ]] || die "--mode must be vfio or uio, not '$MODE'"
  [[ $SMP =~ ^[1-9][0-9]*$ ]] || die "--smp must be a positive number, not '$SMP'"
  [[ $HUGEPAGES =~ ^[0-9]+$ ]] || die "--hugepages must be a number of 2 MiB pages, not '$HUGEPAGES'"
  [[ $MEM_MB =~ ^[0-9]+$ && $MEM_MB -ge $((HUGEPAGES * 2 + 512)) ]] ||
    die "--mem must be at least $((HUGEPAGES * 2 + 512)) (MiB): $((HUGEPAGES * 2)) MiB of hugepages plus 512 MiB for the guest"
  [[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a number of seconds, not '$TIMEOUT'"
  return 0
}

# setup_drives DIR: the controllers the options ask for, in DIR.
setup_drives() {
  local dir=$1 n=0 spec
  if [[ ${#DRIVE_SPECS[@]} -eq 0 && $DRIVE_SHAPED -eq 0 ]]; then
    test_controllers "$dir"
  else
    [[ ${#DRIVE_SPECS[@]} -eq 0 ]] && DRIVE_SPECS=(file)
    for spec in "${DRIVE_SPECS[@]}"; do
      custom_controller "$dir" "$n" "$spec"
      n=$((n + 1))
    done
    GUEST_ENV+=("SPDK_IO_TEST_NVME=${CONTROLLER_BDFS[0]}")
  fi
  GUEST_ENV+=("SPDK_IO_NVME=${CONTROLLER_BDFS[*]}")
}

# new_run_dir: a fresh directory for one boot (images, initrd, results);
# removed on exit unless --keep.
new_run_dir() {
  mkdir -p "$WORK_DIR"
  RUN_DIR=$(mktemp -d "$WORK_DIR/run.XXXXXX")
  mkdir -p "$RUN_DIR/stage/payload/bin"
  if [[ $KEEP == 1 ]]; then
    log "run directory: $RUN_DIR"
  else
    trap 'rm -rf "$RUN_DIR"' EXIT
  fi
}

# write_guest_env STAGE [LINE...]: /payload/env with GUEST_ENV and LINEs.
write_guest_env() {
  local stage=$1 line
  shift
  for line in "${GUEST_ENV[@]}" "$@"; do
    printf 'export %s=%s\n' "${line%%=*}" "$(sh_quote "${line#*=}")"
  done >"$stage/payload/env"
}

# build_spdk_io: cargo build --release of the spdk-io tool; prints its path.
build_spdk_io() {
  local exe
  log "cargo build --release -p spdk-io-tools"
  exe=$(cd "$REPO_DIR" && cargo build --release -p spdk-io-tools --message-format=json-render-diagnostics |
    jq -r 'select(.reason == "compiler-artifact" and .executable != null and .target.name == "spdk-io") | .executable')
  [[ -n $exe && -x $exe ]] || die "cargo build did not produce the spdk-io binary"
  printf '%s\n' "$exe"
}
