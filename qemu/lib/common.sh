# shellcheck shell=bash
# Shared helpers for the qemu/ scripts: paths, logging, errors.
# Sourced, never executed.

QEMU_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd -- "$QEMU_DIR/.." && pwd)
WORK_DIR=${SPDK_IO_QEMU_WORK:-$QEMU_DIR/work}
export QEMU_DIR REPO_DIR WORK_DIR

# Progress messages go to stderr so that stdout carries only the guest's output.
log() { printf '[qemu] %s\n' "$*" >&2; }
die() { printf '[qemu] error: %s\n' "$*" >&2; exit 1; }

# now_ms: milliseconds since the epoch, for timing boots.
now_ms() { date +%s%3N; }

# need_root: apt and the guest build want root.
need_root() {
  [[ $EUID -eq 0 ]] || die "run as root (apt-get install, dpkg-deb): sudo $0 $*"
}
