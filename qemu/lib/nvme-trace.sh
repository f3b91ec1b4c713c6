# shellcheck shell=bash
# Counting the NVMe controller's own events per run: QEMU's trace points
# of its NVMe device (register reads and writes, doorbells, shadow
# doorbell reads and EventIdx writes, interrupts), written by QEMU's log
# trace backend with host timestamps and cut into runs at the sampler's
# markers (emu-cpu.sh). Tracing costs the emulator time of its own: the
# figures of a traced boot are counts, not speeds. Sourced after common.sh.

# The trace points counted: everything a driver makes the controller do
# beyond the I/O itself.
NVME_TRACE_EVENTS=(pci_nvme_mmio_read pci_nvme_mmio_write pci_nvme_mmio_doorbell_sq
  pci_nvme_mmio_doorbell_cq pci_nvme_shadow_doorbell_sq pci_nvme_shadow_doorbell_cq
  pci_nvme_eventidx_sq pci_nvme_eventidx_cq pci_nvme_irq_msix pci_nvme_irq_pin
  pci_nvme_irq_masked pci_nvme_dbbuf_config)

# nvme_trace_args DIR: the qemu arguments that trace those events into
# DIR/nvme-trace.log, each line stamped "PID@SECONDS.MICROS:".
nvme_trace_args() {
  local e
  QEMU_EXTRA_ARGS+=(-D "$1/nvme-trace.log" -msg timestamp=on)
  for e in "${NVME_TRACE_EVENTS[@]}"; do QEMU_EXTRA_ARGS+=(-trace "enable=$e"); done
}

# nvme_trace_runs DIR: per run of DIR/emu-cpu's markers ("bench-spdk:
# round R/N, WORKLOAD, TOOL" up to the next marker), how often each traced
# event fired, as a JSON array of {tool, workload, round, events: {NAME:
# COUNT}}. The event names lose their "pci_nvme_" prefix. Empty without a
# trace.
nvme_trace_runs() {
  [[ -s $1/nvme-trace.log && -s $1/emu-cpu ]] || { echo '[]'; return 0; }
  awk -F'\t' '
    FNR == NR {
      if ($1 != "M") next
      m++; mt[m] = $3 / 1e9
      if (match($2, /round [0-9]+\/[0-9]+, [^,]+, [^ ]+$/)) {
        n++; split(substr($2, RSTART + 6), f, /[\/, ]+/); idx[n] = m; start[n] = mt[m]
        name[n] = sprintf("\"round\":%d,\"workload\":\"%s\",\"tool\":\"%s\"", f[1], f[3], f[4])
      }
      next
    }
    !ready { for (i = 1; i <= n; i++) if (idx[i] < m) stop[i] = mt[idx[i] + 1]; ready = 1 }
    {
      # "PID@SECONDS.MICROS:pci_nvme_EVENT args"
      at = index($0, "@"); colon = index($0, ":")
      if (at == 0 || colon < at) next
      t = substr($0, at + 1, colon - at - 1) + 0
      # the last run that started at or before t
      lo = 0; hi = n
      while (lo < hi) { mid = int((lo + hi + 1) / 2); if (start[mid] <= t) lo = mid; else hi = mid - 1 }
      if (lo == 0 || !(lo in stop) || t >= stop[lo]) next
      ev = substr($0, colon + 1); sub(/ .*/, "", ev); sub(/^pci_nvme_/, "", ev)
      count[lo, ev]++; seen[ev] = 1
    }
    END {
      printf "["; s = ""
      for (i = 1; i <= n; i++) {
        if (!(i in stop)) continue
        printf "%s{%s,\"events\":{", s, name[i]; s = ","; e = ""
        for (ev in seen) { printf "%s\"%s\":%d", e, ev, count[i, ev] + 0; e = "," }
        printf "}}"
      }
      print "]"
    }' "$1/emu-cpu" "$1/nvme-trace.log"
}
