# shellcheck shell=bash
# Where QEMU's time goes during each run, measured on the host from
# /proc/PID/task/*/schedstat (on-CPU nanoseconds per thread):
# - the main loop thread (the process's first), where the NVMe device's
#   queues are processed, its timers and bottom halves run and its DMA is
#   done (without an iothread nothing else does device work). It consumes
#   CPU only for device work while the guest polls, so its CPU time divided
#   by a run's I/Os is what one I/O costs the emulator, whatever else loads
#   the host;
# - the vCPU threads ("CPU N/TCG"): the guest's code, translated, and the
#   MMIO handlers it exits into. A polling guest keeps its vCPU on the CPU
#   unless it waits for QEMU's big lock (held by the main loop while it
#   processes the device) or for a host CPU, so a vCPU below 100 % of the
#   wall clock is time lost to one or the other. schedstat's second field,
#   the time a thread was runnable but waiting for a CPU, tells them apart:
#   the rest of the lost time is sleep, which for a polling vCPU is the
#   lock;
# - every other thread (RCU, thread-pool workers), summed.
# Sourced after common.sh.

# emu_cpu_sampler DIR MARK: run in the background while DIR's guest boots.
# Every 0.25 s writes "T", "-" and emu_cpu_now's figures to DIR/emu-cpu;
# each time the console shows a new line starting with MARK, writes "M",
# the line and the same figures. Tab-separated.
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
    now=$(emu_cpu_now "$pid") || break
    if [[ -n $line && $line != "$last" ]]; then
      last=$line
      printf 'M\t%s\t%s\n' "$line" "$now" >>"$dir/emu-cpu"
    else
      printf 'T\t-\t%s\n' "$now" >>"$dir/emu-cpu"
    fi
    sleep 0.25
  done
}

# emu_cpu_now PID: the host's wall clock and, of qemu process PID, the
# nanoseconds on a CPU of the main loop, of the vCPUs and of the other
# threads, and the nanoseconds the main loop and the vCPUs waited
# runnable for a CPU: "WALL MAIN VCPU OTHER MAIN_WAIT VCPU_WAIT",
# tab-separated. Fails when the process is gone.
emu_cpu_now() {
  local t comm ns wait main main_wait wall vcpu=0 vcpu_wait=0 other=0
  wall=$(date +%s%N)
  read -r main main_wait _ <"/proc/$1/task/$1/schedstat" 2>/dev/null || return 1
  for t in /proc/"$1"/task/*; do
    [[ ${t##*/} == "$1" ]] && continue
    read -r comm <"$t/comm" 2>/dev/null || continue
    read -r ns wait _ <"$t/schedstat" 2>/dev/null || continue
    if [[ $comm == CPU\ * ]]; then
      vcpu=$((vcpu + ns)) vcpu_wait=$((vcpu_wait + wait))
    else
      other=$((other + ns))
    fi
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s' "$wall" "$main" "$vcpu" "$other" "$main_wait" "$vcpu_wait"
}

# emu_cpu_runs DIR: DIR/emu-cpu as a JSON array, one object per run
# ("bench-spdk: round R/N, WORKLOAD, TOOL" up to the next marker):
# {tool, workload, round, wall_ns, emu_ns, vcpu_ns, other_ns} over the
# whole run (start-up included), and main_util, vcpu_util, other_util
# (each thread group's share of the wall clock on a CPU) and main_wait,
# vcpu_wait (its share waiting for one): the medians over the run's
# 0.25 s samples, which are the shares during its I/O (the I/O phase is
# most of a run). Empty when nothing was sampled.
emu_cpu_runs() {
  [[ -s $1/emu-cpu ]] || { echo '[]'; return 0; }
  awk -F'\t' '
    function median(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      if (n == 0) return -1
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    { kind[NR] = $1; line[NR] = $2; wall[NR] = $3; emu[NR] = $4; vcpu[NR] = $5; other[NR] = $6
      mwait[NR] = $7; vwait[NR] = $8 }
    END {
      printf "["; sep = ""
      for (i = 1; i <= NR; i++) {
        if (kind[i] != "M" || match(line[i], /round [0-9]+\/[0-9]+, [^,]+, [^ ]+$/) == 0) continue
        split(substr(line[i], RSTART + 6), f, /[\/, ]+/)
        n = 0
        for (j = i + 1; j <= NR && kind[j] != "M"; j++) {
          dt = wall[j] - wall[j - 1]
          if (dt <= 0) continue
          n++; mu[n] = (emu[j] - emu[j - 1]) / dt; vu[n] = (vcpu[j] - vcpu[j - 1]) / dt; ou[n] = (other[j] - other[j - 1]) / dt
          mw[n] = (mwait[j] - mwait[j - 1]) / dt; vw[n] = (vwait[j] - vwait[j - 1]) / dt
        }
        if (j > NR) continue
        printf "%s{\"round\":%d,\"workload\":\"%s\",\"tool\":\"%s\",\"wall_ns\":%.0f,\"emu_ns\":%.0f,\"vcpu_ns\":%.0f,\"other_ns\":%.0f",
          sep, f[1], f[3], f[4], wall[j] - wall[i], emu[j] - emu[i], vcpu[j] - vcpu[i], other[j] - other[i]
        if (n > 0) printf ",\"main_util\":%.3f,\"vcpu_util\":%.3f,\"other_util\":%.3f,\"main_wait\":%.3f,\"vcpu_wait\":%.3f",
          median(mu, n), median(vu, n), median(ou, n), median(mw, n), median(vw, n)
        printf "}"
        sep = ","
      }
      print "]"
    }' "$1/emu-cpu"
}
