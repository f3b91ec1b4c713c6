//! Per-queue-pair counters of the PCIe transport, as SPDK keeps them
//! (`struct spdk_nvme_pcie_stat`): how often the queue was polled, and how
//! many doorbell updates went to MMIO registers (each one a VM exit under
//! virtualization) or only to the shadow doorbell buffer.

use serde::Serialize;

/// Counters of one I/O queue pair since it was created
/// ([`QPair::pcie_stat`](super::QPair::pcie_stat)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PcieStat {
    /// Calls to `process_completions`.
    pub polls: u64,
    /// Polls that found no completion.
    pub idle_polls: u64,
    /// Completion queue entries reaped (pieces of split commands included).
    pub completions: u64,
    /// Commands written to the submission queue (pieces included).
    pub submitted_requests: u64,
    /// SQ tail doorbell writes to the MMIO register.
    pub sq_mmio_doorbell_updates: u64,
    /// CQ head doorbell writes to the MMIO register.
    pub cq_mmio_doorbell_updates: u64,
    /// SQ tail values written to the shadow doorbell buffer.
    pub sq_shadow_doorbell_updates: u64,
    /// CQ head values written to the shadow doorbell buffer.
    pub cq_shadow_doorbell_updates: u64,
    /// Times the queue re-rang its doorbells by MMIO after
    /// [`STALL_KICK_POLLS`](super::STALL_KICK_POLLS) polls and
    /// [`STALL_KICK_TIME`](super::STALL_KICK_TIME) without a completion
    /// while commands were outstanding (not in SPDK: a guard against a
    /// controller that missed a doorbell update, shadow or MMIO).
    pub doorbell_kicks: u64,
    /// Completions refused because their command ID was not outstanding:
    /// stale or duplicated entries (not in SPDK: command IDs here carry a
    /// generation, so a late entry for a reused ID is told apart).
    pub stale_completions: u64,
}

impl std::ops::AddAssign<&PcieStat> for PcieStat {
    /// Adds another queue pair's counters (totals over several qpairs).
    fn add_assign(&mut self, o: &PcieStat) {
        self.polls += o.polls;
        self.idle_polls += o.idle_polls;
        self.completions += o.completions;
        self.submitted_requests += o.submitted_requests;
        self.sq_mmio_doorbell_updates += o.sq_mmio_doorbell_updates;
        self.cq_mmio_doorbell_updates += o.cq_mmio_doorbell_updates;
        self.sq_shadow_doorbell_updates += o.sq_shadow_doorbell_updates;
        self.cq_shadow_doorbell_updates += o.cq_shadow_doorbell_updates;
        self.doorbell_kicks += o.doorbell_kicks;
        self.stale_completions += o.stale_completions;
    }
}

impl PcieStat {
    /// MMIO doorbell writes (SQ and CQ) per completed command entry.
    pub fn mmio_per_completion(&self) -> f64 {
        let mmio = self.sq_mmio_doorbell_updates + self.cq_mmio_doorbell_updates;
        mmio as f64 / self.completions.max(1) as f64
    }
}
