# shellcheck shell=bash
# Host preparation: host packages, and the guest kernel and busybox unpacked
# (never installed) under $WORK_DIR. Idempotent: a second call does nothing
# but a few checks. Sourced after common.sh.

# Packages the host needs; checked with dpkg-query, installed only if missing.
HOST_PACKAGES=(qemu-system-x86 qemu-system-data fio cpio jq xz-utils binutils)

APT_GET=(apt-get -y -q -o DPkg::Lock::Timeout=600)
APT_UPDATED=0

apt_update_once() {
  [[ $APT_UPDATED -eq 1 ]] && return 0
  log "apt-get update"
  "${APT_GET[@]}" update >&2 || die "apt-get update failed: check network and /etc/apt/sources.list"
  APT_UPDATED=1
}

# installed PKG: true if dpkg says PKG is installed.
installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) == installed ]]
}

# ensure_host_packages: install whatever of HOST_PACKAGES is missing.
# apt-get update only runs when an install fails for lack of package lists.
ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    installed "$p" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  need_root
  log "installing host packages: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive "${APT_GET[@]}" install --no-install-recommends "${missing[@]}" >&2; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive "${APT_GET[@]}" install --no-install-recommends "${missing[@]}" >&2 ||
      die "could not install ${missing[*]}"
  fi
}

# candidate PKG: the version apt would install (updating lists if unknown).
candidate() {
  local v
  v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  if [[ -z $v || $v == "(none)" ]]; then
    apt_update_once
    v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
  fi
  [[ -n $v && $v != "(none)" ]] || die "apt knows no package $1: check /etc/apt/sources.list"
  printf '%s\n' "$v"
}

# kernel_package: the linux-image-*-amd64 package that linux-image-amd64 pulls in.
kernel_package() {
  local ver
  ver=$(candidate linux-image-amd64)
  apt-cache show "linux-image-amd64=$ver" |
    sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1
}

# fetch_unpack PKG DIR: apt-get download PKG and dpkg-deb -x it into DIR,
# unless DIR/.done already exists.
fetch_unpack() {
  local pkg=$1 dir=$2 dl
  [[ -e $dir/.done ]] && return 0
  dl=$(mktemp -d "$WORK_DIR/dl.XXXXXX")
  log "downloading $pkg"
  if ! (cd "$dl" && "${APT_GET[@]}" -o APT::Sandbox::User=root download "$pkg" >&2); then
    apt_update_once
    (cd "$dl" && "${APT_GET[@]}" -o APT::Sandbox::User=root download "$pkg" >&2) || die "apt-get download $pkg failed"
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  dpkg-deb -x "$dl"/*.deb "$dir"
  rm -rf "$dl"
  touch "$dir/.done"
}

# extract_vmlinux BZIMAGE OUT: the uncompressed ELF kernel inside a Debian
# bzImage (xz payload), booted through its PVH entry (about 2.5 s faster
# under TCG than letting the kernel decompress itself).
extract_vmlinux() {
  local bz=$1 out=$2 off
  [[ -s $out ]] && return 0
  # grep stops reading early: that is SIGPIPE, not an error, so no pipefail here.
  off=$(set +o pipefail; LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n1 | cut -d: -f1)
  [[ -n $off ]] || die "no xz payload found in $bz"
  (set +o pipefail; tail -c +$((off + 1)) "$bz" | xz -dc 2>/dev/null >"$out.tmp") || true
  [[ $(head -c4 "$out.tmp" | od -An -c | tr -d ' ') == 177ELF ]] || die "extracting vmlinux from $bz failed"
  mv "$out.tmp" "$out"
}

# prune_stale KEEP DIR...: remove the unpacked packages of older versions.
prune_stale() {
  local keep=$1 d
  shift
  for d in "$@"; do
    [[ -d $d && $d != "$keep" ]] && rm -rf "$d"
  done
  return 0
}

# resolve_versions: KPKG (kernel package), KPKG_VERSION and BB_VERSION.
# apt-cache takes seconds, so the answer is cached in $WORK_DIR/versions
# until apt's package lists change.
resolve_versions() {
  local cache=$WORK_DIR/versions lists
  lists=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)
  if [[ -s $cache ]] && [[ $(head -n1 "$cache") == "lists=$lists" ]]; then
    # shellcheck source=/dev/null
    source <(tail -n +2 "$cache")
    return 0
  fi
  KPKG=$(kernel_package)
  [[ -n $KPKG ]] || die "cannot tell which kernel linux-image-amd64 depends on"
  KPKG_VERSION=$(candidate "$KPKG")
  BB_VERSION=$(candidate busybox-static)
  lists=$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)
  printf 'lists=%s\nKPKG=%q\nKPKG_VERSION=%q\nBB_VERSION=%q\n' \
    "$lists" "$KPKG" "$KPKG_VERSION" "$BB_VERSION" >"$cache"
}

# prepare_host: everything the guest build needs. Sets KVER, KERNEL_DIR,
# VMLINUX, BUSYBOX.
prepare_host() {
  mkdir -p "$WORK_DIR"
  ensure_host_packages
  resolve_versions
  KERNEL_DIR=$WORK_DIR/$KPKG-$KPKG_VERSION
  fetch_unpack "$KPKG" "$KERNEL_DIR"
  KVER=$(basename "$(ls -d "$KERNEL_DIR"/lib/modules/*/)")
  VMLINUX=$KERNEL_DIR/vmlinux
  extract_vmlinux "$KERNEL_DIR/boot/vmlinuz-$KVER" "$VMLINUX"
  local bbdir=$WORK_DIR/busybox-static-${BB_VERSION//:/_}
  fetch_unpack busybox-static "$bbdir"
  BUSYBOX=$bbdir/bin/busybox
  [[ -x $BUSYBOX ]] || die "busybox not found in $bbdir"
  prune_stale "$KERNEL_DIR" "$WORK_DIR"/linux-image-*
  prune_stale "$bbdir" "$WORK_DIR"/busybox-static-*
  export KVER KERNEL_DIR VMLINUX BUSYBOX
}
