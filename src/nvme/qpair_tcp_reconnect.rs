//! An NVMe/TCP queue pair losing and regaining its connection. A failed
//! connection fails every command in flight once with
//! [`NvmeError::ConnectionLost`] and leaves the queue pair disconnected:
//! it refuses new I/O and each poll reports the loss, so the owner can
//! reset the controller. After a reset (the controller's generation moves
//! on) the next poll closes the old connection, fails what was in flight
//! with [`NvmeError::AbortedByReset`], and connects the same queue ID
//! again: the `QPair` handle goes on working.

use super::qpair::{OnTag, QPair};
use super::qpair_tcp::TcpIo;
use super::NvmeError;
use std::sync::atomic::Ordering;

/// The generation of a disconnected NVMe/TCP queue pair: never the
/// controller's, so every submission and poll takes the recovery path.
pub(crate) const DISCONNECTED: u64 = u64::MAX - 1;

impl TcpIo {
    /// True when the connection failed and no reset has connected it again.
    pub(crate) fn is_disconnected(&self) -> bool {
        self.disconnected.is_some()
    }
}

impl QPair {
    /// Whether the queue pair can carry I/O now: false once it was shut
    /// down, while its controller is being reset or is detached, and, over
    /// NVMe/TCP, from the failure of its connection until a reset connects
    /// it again ([`Controller::reset`](super::Controller::reset); its next
    /// poll then reconnects). A poll of a disconnected queue pair returns
    /// [`NvmeError::ConnectionLost`].
    pub fn is_connected(&self) -> bool {
        self.shut_down.is_none()
            && self.ctrlr.generation.load(Ordering::Acquire) == self.generation
            && !self.tcp.as_ref().is_some_and(|t| t.is_disconnected())
    }

    /// The connection failed: close it, forget what was queued for it, and
    /// fail every command in flight with [`NvmeError::ConnectionLost`].
    /// Returns how many failed.
    pub(crate) fn tcp_disconnect(&mut self, on_tag: OnTag<'_>) -> usize {
        let Some(t) = self.tcp.as_mut() else { return 0 };
        t.queue.close();
        t.cqes.clear();
        t.disconnected = Some(self.generation);
        t.sent = 0;
        self.sq.reset();
        self.generation = DISCONNECTED;
        let n = self.fail_all(|| NvmeError::ConnectionLost, on_tag);
        log::error!(
            "qpair {}: connection lost, {n} I/O failed; reset the controller to reconnect",
            self.qid
        );
        n
    }

    /// The recovery of an NVMe/TCP queue pair whose generation is not its
    /// controller's (a reset happened, is under way, or the connection
    /// failed): reconnect when the controller came back from a reset since
    /// the connection was lost, then fail what was in flight once.
    pub(crate) fn recover_tcp(&mut self, on_tag: OnTag<'_>) -> Result<usize, NvmeError> {
        let c = self.ctrlr.clone();
        let generation = c.generation.load(Ordering::Acquire);
        let Some(t) = self.tcp.as_mut() else {
            return Err(NvmeError::Unsupported("not an NVMe/TCP queue pair".into()));
        };
        let was_connected = t.disconnected.is_none();
        t.queue.close();
        // Completions held back by a `max` fail with the rest: their
        // identifiers may be reused once failed.
        t.cqes.clear();
        let ready = generation % 2 == 0
            && !c.failed.load(Ordering::Acquire)
            && t.disconnected != Some(generation);
        let outcome = if !ready {
            Err(if generation % 2 == 1 || c.failed.load(Ordering::Acquire) {
                NvmeError::ControllerUnavailable
            } else {
                NvmeError::ConnectionLost
            })
        } else {
            let Some(tt) = c.tcp() else {
                return Err(NvmeError::Unsupported("not an NVMe/TCP controller".into()));
            };
            tt.connect_io_queue(self.qid, self.sq.entries(), c.opts.admin_timeout)
        };
        t.sent = 0;
        self.sq.reset();
        let error = match outcome {
            Ok(q) => {
                t.queue = q;
                t.disconnected = None;
                t.shifts = c
                    .namespaces
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .values()
                    .map(|ns| (ns.id, ns.lba_shift))
                    .collect();
                self.generation = generation;
                log::info!("qpair {}: reconnected after a controller reset", self.qid);
                None
            }
            Err(e) => {
                // Wait for the next reset before trying again.
                t.disconnected = Some(generation);
                self.generation = DISCONNECTED;
                Some(e)
            }
        };
        // Resubmissions from these callbacks go to the new connection (or
        // are refused while there is none).
        let failed = if was_connected {
            self.fail_all(|| NvmeError::AbortedByReset, on_tag)
        } else {
            // Failed when the connection was lost; only what was queued since.
            self.fail_all(|| NvmeError::ConnectionLost, on_tag)
        };
        if failed > 0 {
            log::warn!(
                "qpair {}: {failed} I/O failed by a controller reset",
                self.qid
            );
            return Ok(failed);
        }
        error.map_or(Ok(0), Err)
    }
}
