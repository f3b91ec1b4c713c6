# shellcheck shell=bash
# NVMe controllers for the guest: qemu arguments (QEMU_DRIVE_ARGS) and the
# guest environment lines that name them (GUEST_ENV). Controller i sits on
# the root bus at slot 4+i, so its address is 0000:00:0(4+i).0 in the guest.
# Sourced after common.sh.

QEMU_DRIVE_ARGS=()
GUEST_ENV=()
CONTROLLER_BDFS=()

# controller_bdf I: the guest PCI address of controller I.
controller_bdf() { printf '0000:00:%02x.0\n' $((4 + $1)); }

# add_controller RUN_DIR SERIAL BACKEND MDTS QUEUES NS...: one controller.
# BACKEND: file (a sparse raw file in RUN_DIR, fresh each run) or null
# (null-co, reads return zeroes, never the bottleneck). MDTS and QUEUES may
# be empty (QEMU's defaults, 7 and 64). Each NS is SIZE_MIB:LBA_BYTES or
# SIZE_MIB:LBA_BYTES:MS (MS bytes of metadata per block, in a separate
# buffer); several namespaces put the controller in an nvme-subsys.
add_controller() {
  local dir=$1 serial=$2 backend=$3 mdts=$4 queues=$5
  shift 5
  local i=${#CONTROLLER_BDFS[@]} nsid=0 spec size lba ms rest drive ctrl
  ((i < 16)) || die "at most 16 controllers"
  ((${#} >= 1)) || die "controller $serial needs at least one namespace"
  ctrl="nvme,id=nvme$i,serial=$serial,addr=$(printf '0x%x' $((4 + i))),ioeventfd=off"
  [[ -n $mdts ]] && ctrl+=",mdts=$mdts"
  [[ -n $queues ]] && ctrl+=",max_ioqpairs=$queues"
  if (($# > 1)); then
    QEMU_DRIVE_ARGS+=(-device "nvme-subsys,id=subsys$i,nqn=nqn.2024-01.io.spdk-io:$serial")
    ctrl+=",subsys=subsys$i"
  fi
  QEMU_DRIVE_ARGS+=(-device "$ctrl")
  for spec in "$@"; do
    nsid=$((nsid + 1))
    size=${spec%%:*}
    rest=${spec#*:}
    lba=${rest%%:*}
    ms=0
    [[ $rest == *:* ]] && ms=${rest#*:}
    [[ $size =~ ^[0-9]+$ && $size -gt 0 ]] || die "namespace size must be a number of MiB, not '$size'"
    [[ $lba == 512 || $lba == 4096 ]] || die "LBA size must be 512 or 4096, not '$lba'"
    [[ $ms == 0 || $ms == 8 || $ms == 16 || $ms == 64 ]] || die "metadata size must be 0, 8, 16 or 64, not '$ms'"
    drive=nvm$i-$nsid
    case $backend in
      file)
        truncate -s "${size}M" "$dir/$drive.img"
        QEMU_DRIVE_ARGS+=(-drive "file=$dir/$drive.img,if=none,id=$drive,format=raw")
        ;;
      null)
        QEMU_DRIVE_ARGS+=(-drive "driver=null-co,size=${size}M,read-zeroes=on,if=none,id=$drive")
        ;;
      *) die "drive backend must be file or null, not '$backend'" ;;
    esac
    local nsdev="nvme-ns,drive=$drive,bus=nvme$i,nsid=$nsid,logical_block_size=$lba,physical_block_size=$lba"
    [[ $ms == 0 ]] || nsdev+=",ms=$ms"
    QEMU_DRIVE_ARGS+=(-device "$nsdev")
  done
  CONTROLLER_BDFS+=("$(controller_bdf "$i")")
}

# test_controllers RUN_DIR: the three controllers of the test contract.
test_controllers() {
  add_controller "$1" SPDKIOA0001 file "" "" 64:512
  add_controller "$1" SPDKIOB0002 file "" "" 32:4096 16:512
  add_controller "$1" SPDKIOC0003 file 1 2 16:4096
  GUEST_ENV+=(
    "SPDK_IO_TEST_NVME=${CONTROLLER_BDFS[0]}"
    "SPDK_IO_TEST_NVME_2NS=${CONTROLLER_BDFS[1]}"
    "SPDK_IO_TEST_NVME_SMALL=${CONTROLLER_BDFS[2]}"
  )
}

# custom_controller RUN_DIR N SPEC: controller N from a --drive SPEC,
# "file|null[,size=MiB][,lba=512|4096][,ms=N][,namespaces=N][,mdts=N][,queues=N]".
# Keys missing from SPEC come from DRIVE_SIZE, DRIVE_LBA, DRIVE_NAMESPACES,
# DRIVE_MDTS and DRIVE_QUEUES.
custom_controller() {
  local dir=$1 n=$2 spec=$3 backend kv
  local size=$DRIVE_SIZE lba=$DRIVE_LBA ms=0 count=$DRIVE_NAMESPACES mdts=$DRIVE_MDTS queues=$DRIVE_QUEUES
  IFS=, read -r -a kv <<<"$spec"
  backend=${kv[0]}
  for spec in "${kv[@]:1}"; do
    case $spec in
      size=*) size=${spec#size=} ;;
      lba=*) lba=${spec#lba=} ;;
      ms=*) ms=${spec#ms=} ;;
      namespaces=*) count=${spec#namespaces=} ;;
      mdts=*) mdts=${spec#mdts=} ;;
      queues=*) queues=${spec#queues=} ;;
      *) die "unknown drive option '$spec' (size, lba, ms, namespaces, mdts, queues)" ;;
    esac
  done
  [[ $count =~ ^[0-9]+$ && $count -ge 1 ]] || die "namespaces must be a positive number, not '$count'"
  local ns=() j
  for ((j = 0; j < count; j++)); do ns+=("$size:$lba:$ms"); done
  add_controller "$dir" "$(printf 'SPDKIOX%04d' "$n")" "$backend" "$mdts" "$queues" "${ns[@]}"
}
