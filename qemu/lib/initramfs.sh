# shellcheck shell=bash
# The guest's initramfs: a cached base archive (busybox, kernel modules,
# /init) and a per-run payload archive (binaries, their shared libraries,
# the command), concatenated — the kernel unpacks both. Sourced after
# common.sh and host.sh (needs KVER, KERNEL_DIR, BUSYBOX).

# guest_modules LIST: the modules of a list, by name (vfio, uio: the mode's
# user-space driver; nvme: the kernel driver; nvmet: Linux's NVMe/TCP
# target and a RAM block device behind it, loaded on demand by
# spdk-io-guest-nvmet — configfs comes as nvmet's dependency, crc32c for
# digests; nvme-tcp: Linux's NVMe/TCP initiator and nvme-fabrics under it,
# loaded on demand by the tests that connect it to spdk-io's target).
# Dependencies are added later.
guest_modules() {
  case $1 in
    vfio) echo vfio_iommu_type1 vfio-pci ;;
    uio) echo uio_pci_generic ;;
    nvme) echo nvme ;;
    nvmet) echo nvmet-tcp null_blk crc32c_generic ;;
    nvme-tcp) echo nvme-tcp crc32c_generic ;;
  esac
}

# module_path NAME: path of module NAME relative to lib/modules/$KVER.
module_path() {
  local want=${1//-/_} p base
  while read -r p; do
    base=${p##*/}
    base=${base%.ko}
    [[ ${base//-/_} == "$want" ]] && { printf '%s\n' "$p"; return 0; }
  done <"$KERNEL_DIR/lib/modules/$KVER/modules.order"
  die "kernel $KVER has no module $1"
}

# module_deps PATH: the names in the module's own depends= field.
module_deps() {
  local d
  d=$(tr '\0' '\n' <"$KERNEL_DIR/lib/modules/$KVER/$1" | sed -n 's/^depends=//p' | head -n1)
  tr ',' ' ' <<<"$d"
}

# resolve_modules NAME...: module paths, every dependency before its user.
# Uses the global array RESOLVED to skip duplicates.
resolve_modules() {
  local name path seen
  for name in "$@"; do
    path=$(module_path "$name")
    for seen in "${RESOLVED[@]}"; do
      [[ $seen == "$path" ]] && continue 2
    done
    # shellcheck disable=SC2046 # dependency names are single words
    resolve_modules $(module_deps "$path")
    RESOLVED+=("$path")
  done
}

# pack_cpio DIR OUT: DIR as a newc archive, files owned by root.
pack_cpio() {
  (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$2"
}

# base_initramfs: path of the cached base archive, built if missing.
base_initramfs() {
  local key out stage list
  key=$(cat "$QEMU_DIR/lib/guest-init" "$QEMU_DIR/lib/guest-bind" "$QEMU_DIR/lib/guest-nvmet" \
    "$QEMU_DIR/lib/initramfs.sh" "$BUSYBOX" |
    sha256sum | cut -c1-16)
  out=$WORK_DIR/base-$KVER-$key.cpio
  if [[ ! -s $out ]]; then
    log "building the base initramfs for kernel $KVER"
    stage=$(mktemp -d "$WORK_DIR/base.XXXXXX")
    mkdir -p "$stage"/{bin,sbin,proc,sys,dev,tmp,run,root,payload,etc/modules}
    cp "$BUSYBOX" "$stage/bin/busybox"
    cp "$QEMU_DIR/lib/guest-init" "$stage/init"
    cp "$QEMU_DIR/lib/guest-bind" "$stage/bin/spdk-io-guest-bind"
    cp "$QEMU_DIR/lib/guest-nvmet" "$stage/bin/spdk-io-guest-nvmet"
    chmod 755 "$stage/init" "$stage/bin/spdk-io-guest-bind" "$stage/bin/spdk-io-guest-nvmet"
    for list in vfio uio nvme nvmet nvme-tcp; do
      RESOLVED=()
      # shellcheck disable=SC2046 # module names are single words
      resolve_modules $(guest_modules "$list")
      local m
      for m in "${RESOLVED[@]}"; do
        mkdir -p "$stage/lib/modules/$(dirname "$m")"
        cp "$KERNEL_DIR/lib/modules/$KVER/$m" "$stage/lib/modules/$m"
        printf '%s\n' "$m"
      done >"$stage/etc/modules/$list"
    done
    rm -f "$WORK_DIR"/base-*.cpio
    pack_cpio "$stage" "$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$stage"
  fi
  printf '%s\n' "$out"
}

# stage_libs DIR FILE...: copy the shared libraries FILEs need (as ldd
# reports them, the loader included) into DIR at the same paths.
stage_libs() {
  local dir=$1 lib
  shift
  # A script (or a static binary) has no libraries: ldd fails, nothing to copy.
  { ldd "$@" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | sort -u | while read -r lib; do
    [[ -e $dir$lib ]] && continue
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
}

# stage_binary DIR SRC [DEST]: SRC copied to DIR/DEST (default
# payload/bin/NAME), debug info stripped to keep the archive small,
# with its shared libraries.
stage_binary() {
  local dir=$1 src=$2 dest=${3:-payload/bin/${2##*/}}
  mkdir -p "$dir/$(dirname "$dest")"
  strip --strip-debug -o "$dir/$dest" "$src" 2>/dev/null || cp "$src" "$dir/$dest"
  chmod 755 "$dir/$dest"
  stage_libs "$dir" "$src"
}

# sh_quote ARG...: the arguments quoted for a POSIX shell, space separated.
sh_quote() {
  local a out=()
  for a in "$@"; do
    out+=("'${a//\'/\'\\\'\'}'")
  done
  printf '%s\n' "${out[*]}"
}

# make_initrd STAGE OUT: base archive + STAGE packed as the payload.
make_initrd() {
  local base
  base=$(base_initramfs)
  pack_cpio "$1" "$2.payload"
  cat "$base" "$2.payload" >"$2"
  rm -f "$2.payload"
}
