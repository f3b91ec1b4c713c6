//! The part of bring-up that every reset repeats (Number of Queues, shadow
//! doorbells, asynchronous events) and the reset itself.

use super::controller::{program_and_enable, CtrlrInner};
use super::spec::features::{AsyncEventConfig, FeatureId, NumberOfQueues};
use super::spec::{AdminOpcode, Sqe};
use super::transport::Transport;
use super::NvmeError;
use std::sync::atomic::Ordering;

impl CtrlrInner {
    /// The part of bring-up repeated after every reset: Number of Queues,
    /// Doorbell Buffer Config, AER configuration and submission.
    pub(crate) fn init_after_enable(&self) -> Result<(), NvmeError> {
        let i = self;
        // Number of Queues (SPDK asks once; a reset keeps the same request).
        let want = NumberOfQueues {
            nsq: i.opts.num_io_queues.max(1),
            ncq: i.opts.num_io_queues.max(1),
        };
        let dw0 = self.set_feature_raw(FeatureId::NumberOfQueues, want.to_cdw11(), 0)?;
        let got = NumberOfQueues::from_dw0(dw0);
        let mut n = got.nsq.min(got.ncq).min(want.nsq);
        if let (Some(p), Some(_)) = (i.pcie(), i.shadow()) {
            // One 4 KiB shadow page holds 4096 / (8 << DSTRD) queue pairs, admin included.
            n = n.min((4096 / (8usize << p.dstrd)) as u16 - 1);
        }
        *i.num_io_queues.write().unwrap() = n;
        {
            let mut q = i.qids.lock().unwrap();
            if q.len() != n as usize + 1 {
                q.resize(n as usize + 1, false);
            }
            q[0] = true;
        }
        if let Some(sh) = i.shadow() {
            // The pages start zeroed (alloc_zeroed); after a reset each qpair
            // clears its own slots before re-creating its queues.
            let mut sqe = Sqe::new(AdminOpcode::DoorbellBufferConfig as u8, 0);
            sqe.prp1 = sh.dbs.iova();
            sqe.prp2 = sh.eis.iova();
            self.admin()?
                .exec(i.regs(), sqe, None, i.opts.admin_timeout)
                .map_err(|e| {
                    log::warn!("{}: Doorbell Buffer Config failed: {e}", i.trid);
                    e
                })?;
        }
        // Asynchronous events: everything the controller reports.
        let aec = AsyncEventConfig::SMART_CRITICAL_WARNINGS | AsyncEventConfig::NAMESPACE_ATTRIBUTE;
        if let Err(e) = self.set_feature_raw(FeatureId::AsyncEventConfiguration, aec.bits(), 0) {
            log::debug!("{}: Set Features Async Event Config: {e}", i.trid);
        }
        let naer = i.opts.num_aers.min(i.cdata.aerl as u16 + 1);
        let mut admin = self.admin()?;
        for _ in 0..naer {
            admin.submit_aer();
        }
        Ok(())
    }

    /// Resets the controller (see [`Controller::reset`]).
    pub(crate) fn reset(&self) -> Result<(), NvmeError> {
        let i = self;
        if i.detached.load(Ordering::Acquire) {
            return Err(NvmeError::ControllerUnavailable);
        }
        let regs = match &i.transport {
            Transport::Pcie(p) => &p.regs,
            Transport::Tcp(t) => return self.reset_tcp(t),
        };
        let mut admin = i.admin.lock().unwrap_or_else(|p| p.into_inner());
        i.generation.fetch_add(1, Ordering::AcqRel);
        log::warn!("{}: resetting controller", i.trid);
        let to = i.cap.timeout();
        let result = (|| {
            regs.disable(to)?;
            // Disabled: the controller no longer touches any queue or buffer.
            let admin = admin.pcie().ok_or(NvmeError::ControllerUnavailable)?;
            admin.reset();
            program_and_enable(regs, admin, i.cap)
        })();
        drop(admin);
        let result = result.and_then(|()| self.init_after_enable());
        i.generation.fetch_add(1, Ordering::AcqRel);
        match &result {
            Ok(()) => i.failed.store(false, Ordering::Release),
            Err(e) => {
                log::error!("{}: reset failed: {e}", i.trid);
                i.failed.store(true, Ordering::Release);
            }
        }
        result
    }

    fn set_feature_raw(&self, fid: FeatureId, cdw11: u32, nsid: u32) -> Result<u32, NvmeError> {
        let mut sqe = Sqe::new(AdminOpcode::SetFeatures as u8, nsid);
        sqe.cdw10 = fid as u32;
        sqe.cdw11 = cdw11;
        Ok(self.admin_exec(sqe, None)?.0.dw0)
    }
}
