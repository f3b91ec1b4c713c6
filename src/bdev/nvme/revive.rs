//! A channel's side of what happens to its controller: which failures mean
//! the path is gone (not the command), what an I/O gets meanwhile (held as
//! NOMEM so the bdev layer resubmits it, or failed, by the link's policy),
//! the move to a queue pair of the controller that came back, and a bdev
//! reset (the controller reset on a worker, its completion polled).

use super::super::{IoId, IoStatus};
use super::channel::NvmeChannel;
use super::ctrlrs;
use super::reconnect::{Hold, Link, LinkState};
use crate::nvme::NvmeError;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

/// True for failures of the queue pair or controller rather than of the
/// command: the connection lost, the queue pair shut down, the device
/// gone. (Not "controller unavailable": a reset in progress says that
/// too, and the queue pair recovers by itself once it is done.)
pub(super) fn is_path_error(e: &NvmeError) -> bool {
    matches!(
        e,
        NvmeError::ConnectionLost
            | NvmeError::QPairShutDown(_)
            | NvmeError::DeviceGone
            | NvmeError::Tcp(_)
    )
}

/// The status of an I/O that failed with `e`, when `e` is a path error:
/// the channel (whose queue pair is of the link's `epoch`) is marked lost,
/// the link told (which starts its recovery) unless the controller was
/// replaced since (the channel just moves on), and the I/O held (NOMEM)
/// or failed by the link's policy. `None` for any other error.
pub(super) fn path_error_status(
    (link, epoch): (&Arc<Link>, u64),
    lost: &Cell<bool>,
    e: &NvmeError,
) -> Option<IoStatus> {
    if !is_path_error(e) {
        return None;
    }
    let hold = link.hold();
    if !lost.replace(true) && link.epoch() == epoch {
        link.report_lost(&e.to_string(), ctrlrs::delete_lost);
    }
    Some(match hold {
        Hold::Wait => IoStatus::NoMem,
        Hold::Fail => IoStatus::Failed,
    })
}

/// What a completion callback needs to treat a lost path by the link's
/// policy (the commands with callbacks of their own: flush, write zeroes,
/// deallocate and bounced heap buffers; tagged I/O has the channel).
/// One pointer, so the callbacks stay within the queue pair's inline
/// callback size; the channel keeps one per queue pair (no allocation per
/// I/O).
#[derive(Clone)]
pub(super) struct PathCtx(Rc<PathInner>);

struct PathInner {
    link: Arc<Link>,
    epoch: u64,
    lost: Rc<Cell<bool>>,
}

impl PathCtx {
    /// The context of a queue pair of `link`'s `epoch`, marking `lost`.
    pub(super) fn new(link: Arc<Link>, epoch: u64, lost: Rc<Cell<bool>>) -> Self {
        PathCtx(Rc::new(PathInner { link, epoch, lost }))
    }

    /// The status of a completion: a path error held or failed by the
    /// policy, any other error by its NVMe status.
    pub(super) fn status(&self, r: &Result<(), NvmeError>) -> IoStatus {
        let p = &self.0;
        match r {
            Ok(()) => IoStatus::Success,
            Err(e) => path_error_status((&p.link, p.epoch), &p.lost, e)
                .unwrap_or_else(|| super::channel::error_status(e)),
        }
    }
}

fn held(link: &Link) -> IoStatus {
    match link.hold() {
        Hold::Wait => IoStatus::NoMem,
        Hold::Fail => IoStatus::Failed,
    }
}

impl NvmeChannel {
    /// The path context for a completion callback of this channel.
    pub(super) fn path_ctx(&self) -> PathCtx {
        self.path.clone()
    }

    /// The queue pair failed with `e` (seen by a poll): the link is told.
    #[cold]
    pub(super) fn lose(&mut self, e: &NvmeError) {
        if !self.lost.replace(true) && self.link.epoch() == self.epoch {
            log::warn!("nvme bdev {}: queue pair lost: {e}", self.link.name);
            self.link.report_lost(&e.to_string(), ctrlrs::delete_lost);
        }
    }

    /// A submission refused with `e`: a path error holds or fails the I/O
    /// by the link's policy, anything else is the command's own status.
    #[cold]
    pub(super) fn submit_failed(&mut self, id: IoId, e: NvmeError) {
        let st = path_error_status((&self.link, self.epoch), &self.lost, &e)
            .unwrap_or_else(|| super::channel::error_status(&e));
        self.done.complete(id, st);
    }

    /// A bdev reset: the controller is reset (over fabrics, reconnected) on
    /// a worker thread; [`poll_reset`](Self::poll_reset) completes it.
    pub(super) fn start_reset(&mut self, id: IoId) {
        if self.resetting.is_some() {
            log::warn!("nvme bdev {}: a reset is already running", self.link.name);
            return self.done.complete(id, IoStatus::Failed);
        }
        let link = self.link.clone();
        let job = super::worker::spawn(
            &format!("nvme-reset-{}", self.link.name),
            move || match link.attempt() {
                Ok(()) => true,
                Err(e) => {
                    log::error!("nvme bdev {}: controller reset failed: {e}", link.name);
                    false
                }
            },
        );
        match job {
            Ok(p) => self.resetting = Some((id, p)),
            Err(e) => {
                log::error!("nvme bdev {}: {e}", self.link.name);
                self.done.complete(id, IoStatus::Failed);
            }
        }
    }

    /// Completes the bdev reset once its worker is done; a controller
    /// replaced by it (fabrics) gets this channel a new queue pair.
    #[cold]
    pub(super) fn poll_reset(&mut self) {
        let Some(ok) = self.resetting.as_ref().and_then(|(_, p)| p.try_take()) else {
            return;
        };
        let Some((id, _)) = self.resetting.take() else {
            return;
        };
        if self.link.epoch() != self.epoch {
            self.lost.set(true);
        }
        let st = if ok {
            IoStatus::Success
        } else {
            IoStatus::Failed
        };
        self.done.complete(id, st);
    }

    /// The status for an I/O submitted while the channel is lost, or
    /// `Ok` once it has a usable queue pair again (a new one when the
    /// controller was replaced).
    #[cold]
    pub(super) fn revive(&mut self) -> Result<(), IoStatus> {
        if self.link.state() != LinkState::Enabled {
            return Err(held(&self.link));
        }
        let epoch = self.link.epoch();
        if epoch != self.epoch {
            let c = self.link.controller().map_err(|_| IoStatus::Failed)?;
            let ns = c.namespace(self.ns.id()).map_err(|e| {
                log::error!(
                    "nvme bdev {}: namespace {} is gone after the reconnect: {e}",
                    self.link.name,
                    self.ns.id()
                );
                IoStatus::Failed
            })?;
            let qp = c.alloc_io_qpair(super::bdev::qpair_opts(&c)).map_err(|e| {
                log::warn!("nvme bdev {}: new queue pair: {e}", self.link.name);
                self.link.report_lost(&e.to_string(), ctrlrs::delete_lost);
                held(&self.link)
            })?;
            let old = std::mem::replace(&mut self.qp, qp);
            *self.stats.lock().unwrap_or_else(|p| p.into_inner()) += &old.pcie_stat();
            drop(old);
            self.ns = ns;
            self.epoch = epoch;
            self.path = PathCtx::new(self.link.clone(), epoch, self.lost.clone());
        }
        self.lost.set(false);
        Ok(())
    }
}
