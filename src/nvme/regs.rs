//! Typed access to the controller registers in BAR0 and the state
//! transitions of bring-up (enable, disable, shutdown) with their timeouts.

use super::spec::registers::*;
use super::NvmeError;
use crate::pci::Bar;
use std::time::{Duration, Instant};

/// BAR0 seen as NVMe controller registers.
#[derive(Clone)]
pub(crate) struct Regs {
    pub(crate) bar: Bar,
}

impl Regs {
    pub(crate) fn cap(&self) -> Cap {
        Cap(self.bar.read64(REG_CAP))
    }
    pub(crate) fn vs(&self) -> Vs {
        Vs(self.bar.read32(REG_VS))
    }
    pub(crate) fn cc(&self) -> Cc {
        Cc(self.bar.read32(REG_CC))
    }
    pub(crate) fn set_cc(&self, cc: Cc) {
        self.bar.write32(REG_CC, cc.0)
    }
    pub(crate) fn csts(&self) -> Csts {
        Csts(self.bar.read32(REG_CSTS))
    }
    pub(crate) fn set_admin_queues(&self, aqa: Aqa, asq: u64, acq: u64) {
        self.bar.write32(REG_AQA, aqa.0);
        self.bar.write64(REG_ASQ, asq);
        self.bar.write64(REG_ACQ, acq);
    }
    pub(crate) fn cmbsz(&self) -> Cmbsz {
        Cmbsz(self.bar.read32(REG_CMBSZ))
    }

    /// Polls CSTS until `done` holds, failing on CFS (unless `ignore_cfs`),
    /// on all-ones reads, or after `timeout`.
    pub(crate) fn wait_csts(
        &self,
        what: &'static str,
        timeout: Duration,
        ignore_cfs: bool,
        done: impl Fn(Csts) -> bool,
    ) -> Result<(), NvmeError> {
        let start = Instant::now();
        loop {
            let csts = self.csts();
            if csts.is_all_ones() {
                return Err(NvmeError::DeviceGone);
            }
            if done(csts) {
                return Ok(());
            }
            if csts.cfs() == 1 && !ignore_cfs {
                return Err(NvmeError::ControllerFatal);
            }
            if start.elapsed() > timeout {
                return Err(NvmeError::NotReady {
                    what,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Clears CC.EN and waits for CSTS.RDY = 0 (an enabled controller that is
    /// not ready yet is first given CAP.TO to become ready, as the spec asks).
    pub(crate) fn disable(&self, to: Duration) -> Result<(), NvmeError> {
        let cc = self.cc();
        if cc.0 == u32::MAX {
            return Err(NvmeError::DeviceGone);
        }
        if cc.en() == 1 {
            if self.csts().rdy() == 0 {
                // A controller in the middle of enabling: let it finish first.
                let _ = self.wait_csts("become ready before disabling", to, true, |c| {
                    c.rdy() == 1 || c.cfs() == 1
                });
            }
            self.set_cc(cc.with_en(0));
        }
        self.wait_csts("become disabled (CSTS.RDY=0)", to, true, |c| c.rdy() == 0)
    }

    /// Sets CC (with EN) and waits for CSTS.RDY = 1.
    pub(crate) fn enable(&self, cc: Cc, to: Duration) -> Result<(), NvmeError> {
        self.set_cc(cc.with_en(1));
        self.wait_csts("become ready (CSTS.RDY=1)", to, false, |c| c.rdy() == 1)
    }

    /// Normal shutdown: CC.SHN = 1, wait for CSTS.SHST = complete.
    pub(crate) fn shutdown(&self, to: Duration) -> Result<(), NvmeError> {
        let cc = self.cc();
        self.set_cc(cc.with_shn(SHN_NORMAL));
        self.wait_csts("finish shutdown (CSTS.SHST=2)", to, true, |c| {
            c.shst() == SHST_COMPLETE
        })
    }
}
