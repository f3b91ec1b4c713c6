# shellcheck shell=bash
# The emulator's own CPU time per run, measured on the host: QEMU's main
# loop thread (where the NVMe device's queues are processed, its timers
# run and its DMA is done; without an iothread nothing else does device
# work) consumes CPU time only for device work while the guest polls, so
# its CPU time divided by a run's I/Os is what one I/O costs the emulator,
# whatever else loads the host. The vCPU threads poll, so their time says
# little (MMIO handlers do run on them).
# Sourced after common.sh.

# emu_cpu_sampler DIR MARK: run in the background while DIR's guest boots.
# Each time the console shows a new line starting with MARK, writes the
# line and the CPU nanoseconds of QEMU's main loop thread and of its vCPU
# threads (from /proc/PID/task/*/schedstat) to DIR/emu-cpu, tab-separated.
emu_cpu_sampler() {
  local dir=$1 mark=$2 pid="" i last="" line now
  for ((i = 0; i < 120; i++)); do
    pid=$(pgrep -f "^qemu-system-x86_64 .*$dir/" | head -n1) || true
    [[ -n $pid ]] && break
    sleep 0.5
  done
  [[ -n $pid ]] || return 0
  while kill -0 "$pid" 2>/dev/null; do
    # (no match yet is not an error: the caller may run under set -e and pipefail)
    line=$(grep -a "^$mark" "$dir/console.log" 2>/dev/null | tail -n1 | tr -d '\r') || true
    if [[ -n $line && $line != "$last" ]]; then
      last=$line
      now=$(emu_cpu_now "$pid") && printf '%s\t%s\n' "$line" "$now" >>"$dir/emu-cpu"
    fi
    sleep 0.2
  done
}

# emu_cpu_now PID: "MAIN_LOOP_NS<TAB>VCPU_NS" of qemu process PID; fails
# when the process is gone.
emu_cpu_now() {
  local t comm ns main vcpu=0
  read -r main _ <"/proc/$1/task/$1/schedstat" 2>/dev/null || return 1
  for t in /proc/"$1"/task/*; do
    comm=$(cat "$t/comm" 2>/dev/null) || continue
    [[ $comm == CPU\ * ]] || continue
    read -r ns _ <"$t/schedstat" 2>/dev/null || continue
    vcpu=$((vcpu + ns))
  done
  printf '%s\t%s' "$main" "$vcpu"
}

# emu_cpu_runs DIR: DIR/emu-cpu as a JSON array, one object per run
# ("bench-spdk: round R/N, WORKLOAD, TOOL" up to the next line):
# {tool, workload, round, emu_ns, vcpu_ns}. Empty when nothing was sampled.
emu_cpu_runs() {
  [[ -s $1/emu-cpu ]] || { echo '[]'; return 0; }
  awk -F'\t' '
    { line[NR] = $1; emu[NR] = $2; vcpu[NR] = $3 }
    END {
      printf "["; sep = ""
      for (i = 1; i < NR; i++) {
        if (match(line[i], /round [0-9]+\/[0-9]+, [^,]+, [^ ]+$/) == 0) continue
        split(substr(line[i], RSTART + 6), f, /[\/, ]+/)
        printf "%s{\"round\":%d,\"workload\":\"%s\",\"tool\":\"%s\",\"emu_ns\":%d,\"vcpu_ns\":%d}",
          sep, f[1], f[3], f[4], emu[i + 1] - emu[i], vcpu[i + 1] - vcpu[i]
        sep = ","
      }
      print "]"
    }' "$1/emu-cpu"
}
