//! What happens to a qpair when things go wrong: per-command timeouts
//! (callback, Abort, reset), recovery after a controller reset (queues
//! re-created, in-flight I/O failed exactly once), detach, and deletion on drop.

use super::qpair::{OnTag, QPair, TimedOutCommand, TimeoutAction};
use super::NvmeError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Generation of a qpair whose controller is detached: never matches again.
pub(crate) const DEAD: u64 = u64::MAX;

impl QPair {
    pub(crate) fn check_timeouts(&mut self, on_tag: OnTag<'_>) -> Result<(), NvmeError> {
        let (Some(t), Some(next)) = (self.opts.timeout, self.next_timeout_check) else {
            return Ok(());
        };
        let now = Instant::now();
        if now < next {
            return Ok(());
        }
        self.next_timeout_check = Some(now + (t / 4).max(Duration::from_millis(1)));
        for e in self.pool.expired(now, t) {
            let info = TimedOutCommand {
                qid: self.qid,
                cid: e.cid,
                opc: e.opc,
                abort_sent: e.abort_sent,
            };
            let cid = e.cid;
            let action = match self.timeout_cb.as_mut() {
                Some(cb) => cb(info),
                None if info.abort_sent => TimeoutAction::Reset,
                None => TimeoutAction::Abort,
            };
            log::warn!(
                "qpair {}: command CID {cid:#x} opcode {:#x} timed out after {t:?}: {action:?}",
                self.qid,
                info.opc
            );
            match action {
                TimeoutAction::Ignore => {}
                TimeoutAction::Abort => {
                    self.pool.mark_abort_sent(cid, now);
                    if let Err(e) = self.ctrlr.abort(self.qid, cid) {
                        log::warn!("qpair {}: Abort of CID {cid:#x} failed: {e}", self.qid);
                    }
                }
                TimeoutAction::Reset => {
                    self.ctrlr.reset()?;
                    self.recover(on_tag)?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// After a controller reset: empty and re-create the queues, then fail
    /// every request that was in flight with [`NvmeError::AbortedByReset`]
    /// (tagged ones through `on_tag`).
    pub(crate) fn recover(&mut self, on_tag: OnTag<'_>) -> Result<usize, NvmeError> {
        let c = self.ctrlr.clone();
        let generation = c.generation.load(Ordering::Acquire);
        if c.detached.load(Ordering::Acquire) {
            // Detached: the controller is disabled, so nothing is in flight any more.
            if self.generation == DEAD {
                return Err(NvmeError::ControllerUnavailable);
            }
            self.generation = DEAD;
            return Ok(self.fail_all(|| NvmeError::ControllerUnavailable, on_tag));
        }
        if self.tcp.is_some() {
            return self.recover_tcp(on_tag);
        }
        if generation % 2 == 1 {
            return Err(NvmeError::ControllerUnavailable);
        }
        self.sq.reset();
        self.cq.reset();
        c.create_io_cq(self.qid, self.cq.entries(), self.cq.iova())?;
        if let Err(e) = c.create_io_sq(self.qid, self.sq.entries(), self.sq.iova()) {
            let _ = c.delete_io_cq(self.qid);
            return Err(e);
        }
        self.generation = generation;
        let n = self.fail_all(|| NvmeError::AbortedByReset, on_tag);
        if n > 0 {
            log::warn!("qpair {}: {n} I/O failed by a controller reset", self.qid);
        }
        Ok(n)
    }

    /// Completes every outstanding request with `err()`: children are freed
    /// silently, each top-level request's callback (or `on_tag`) runs once.
    pub(crate) fn fail_all(&mut self, err: fn() -> NvmeError, mut on_tag: OnTag<'_>) -> usize {
        // Recovery path (not per I/O): a list is fine here.
        let failed = self.pool.drop_children();
        for &cid in &failed {
            self.finish(cid, Err(err()), 0, &mut on_tag);
        }
        failed.len()
    }

    /// Deletes this queue pair's queues on the controller now, as dropping
    /// it would, and tells whether the device is done with the memory of
    /// every command still in flight: `true` when the queues were deleted
    /// (the controller aborted or completed their commands) or the
    /// controller is detached or was reset; `false` when deleting failed
    /// with commands in flight, so the device may still read or write their
    /// buffers. The buffers this qpair owns are then leaked, never freed
    /// (its rings and PRP list pages too, when it is dropped); a caller that
    /// lent buffers ([`QPair::rw_tagged`]) must leak its own.
    ///
    /// No callback or tag handler runs for the commands it drops. Afterwards
    /// the qpair accepts no commands ([`NvmeError::QPairShutDown`]); calling
    /// it again returns the first answer.
    pub fn shutdown(&mut self) -> bool {
        if let Some(done) = self.shut_down {
            return done;
        }
        if let Some(t) = self.tcp.as_mut() {
            // Nothing reaches the buffers once the connection is closed.
            t.queue.close();
            self.generation = DEAD;
            self.shut_down = Some(true);
            return true;
        }
        let c = self.ctrlr.clone();
        let live = !c.detached.load(Ordering::Acquire)
            && c.generation.load(Ordering::Acquire) == self.generation;
        let deleted = live && c.delete_io_sq(self.qid).is_ok() && {
            // The controller completed or aborted every command of the SQ.
            while let Some(cqe) = self.cq.pop() {
                self.pool.silence(cqe.cid);
            }
            c.delete_io_cq(self.qid).is_ok()
        };
        self.generation = DEAD;
        let done = !(live && !deleted && self.outstanding > 0);
        self.shut_down = Some(done);
        if !done {
            // The controller may still DMA into in-flight buffers: keep them alive forever.
            log::error!(
                "qpair {}: could not delete queues with {} I/O in flight; leaking their buffers",
                self.qid,
                self.outstanding
            );
            self.pool.leak_buffers();
        }
        done
    }

    /// A generation mismatch seen by a poll: recover after a reset, or
    /// refuse when the qpair was shut down.
    #[cold]
    pub(crate) fn recover_or_closed(&mut self, on_tag: OnTag<'_>) -> Result<usize, NvmeError> {
        if self.shut_down.is_some() {
            return Err(NvmeError::QPairShutDown(self.qid));
        }
        self.recover(on_tag)
    }
}

impl Drop for QPair {
    fn drop(&mut self) {
        if !self.shutdown() {
            // The controller still knows these queues: their rings and PRP
            // list pages stay allocated, as the buffers do.
            self.sq.leak();
            self.cq.leak();
            self.pool.leak();
        }
        let mut q = self.ctrlr.qids.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = q.get_mut(self.qid as usize) {
            *slot = false;
        }
    }
}
