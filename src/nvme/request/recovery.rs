//! The pool on the cold paths: timeouts, failing everything after a
//! reset or a lost connection, deleted queues, and leaking what a device
//! may still use.

use super::{Expired, Notify, RequestPool, FREE, NO_PARENT};
use std::time::{Duration, Instant};

impl RequestPool {
    /// Outstanding commands submitted more than `t` before `now`.
    pub(crate) fn expired(&self, now: Instant, t: Duration) -> Vec<Expired> {
        self.reqs
            .iter()
            .filter(|r| {
                r.live != FREE && r.submitted.is_some_and(|(s, _)| now.duration_since(s) > t)
            })
            .map(|r| Expired {
                cid: r.live as u16,
                opc: r.opc,
                abort_sent: r.submitted.is_some_and(|(_, a)| a),
            })
            .collect()
    }

    /// Marks `cid` as aborted at `now` (its timeout restarts).
    pub(crate) fn mark_abort_sent(&mut self, cid: u16, now: Instant) {
        if let Some(r) = self.live_mut(cid) {
            r.submitted = Some((now, true));
        }
    }

    /// Frees every outstanding child and returns the CIDs of the
    /// outstanding top-level requests (for failing them all).
    pub(crate) fn drop_children(&mut self) -> Vec<u16> {
        let children: Vec<u16> = self
            .reqs
            .iter()
            .filter(|r| r.live != FREE && r.parent != NO_PARENT)
            .map(|r| r.live as u16)
            .collect();
        for cid in children {
            self.release(cid);
        }
        self.reqs
            .iter_mut()
            .filter(|r| r.live != FREE)
            .map(|r| {
                r.child_error = None;
                r.live as u16
            })
            .collect()
    }

    /// Forgets who is to hear of `cid` (its queue was deleted).
    pub(crate) fn silence(&mut self, cid: u16) {
        if let Some(r) = self.live_mut(cid) {
            r.notify = Notify::None;
        }
    }

    /// Gives up every buffer the requests hold without freeing it (the
    /// device may still use them).
    pub(crate) fn leak_buffers(&mut self) {
        for r in &mut self.reqs {
            std::mem::forget(std::mem::take(&mut r.buf));
        }
    }

    /// Gives up every request's PRP list page without freeing it (see
    /// [`QPair::shutdown`](super::QPair::shutdown) returning false). Call
    /// only when the pool is about to be dropped.
    pub(crate) fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.reqs));
    }
}
