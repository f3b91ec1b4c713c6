//! The reset of an NVMe/TCP controller: the admin connection is closed and
//! made again (ICReq, Fabrics Connect — a new controller ID — and CC.EN by
//! Property Set), then the bring-up every reset repeats (Number of Queues,
//! Asynchronous Event Requests). Each I/O queue pair notices the new
//! generation on its next poll, closes its connection, fails what was in
//! flight and connects again (`qpair_tcp_reconnect.rs`).

use super::attach::{subnqn_is_io, TcpTransport};
use crate::nvme::admin::AdminQueue;
use crate::nvme::controller::CtrlrInner;
use crate::nvme::NvmeError;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl CtrlrInner {
    /// Resets a controller reached over NVMe/TCP (see `Controller::reset`).
    /// While the target is unreachable this fails with
    /// [`NvmeError::ReconnectFailed`] and the controller stays failed: the
    /// queue pairs then fail their I/O and wait for a later reset.
    pub(crate) fn reset_tcp(&self, t: &TcpTransport) -> Result<(), NvmeError> {
        let mut admin = self.admin.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        log::warn!("{}: resetting controller: reconnecting over TCP", self.trid);
        if let AdminQueue::Tcp(a) = &mut *admin {
            // Commands still waiting on the old connection are answered no more.
            a.queue.close();
        }
        let connected = t.connect_admin(self.opts.keep_alive_timeout_ms, self.opts.admin_timeout);
        let result = connected.map(|(a, _, _)| {
            *admin = AdminQueue::Tcp(a);
            *t.last_keep_alive.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        });
        drop(admin);
        let result = result.and_then(|()| {
            if subnqn_is_io(&t.subnqn) {
                self.init_after_enable()
            } else {
                Ok(())
            }
        });
        // Failed or not before the generation is even again: a queue pair
        // that sees the new generation reads it to decide to reconnect.
        self.failed.store(result.is_err(), Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
        result.map_err(|e| {
            log::error!("{}: reset failed: {e}", self.trid);
            NvmeError::ReconnectFailed {
                trid: self.trid.to_string(),
                source: Box::new(e),
            }
        })
    }
}
