//! One nvme bdev channel: an I/O queue pair owned by the thread, the
//! submission paths (a DMA buffer lent to the device by address, the
//! command tagged with the request's id; heap buffers through a bounce
//! copy), NVMe status mapping, and the transport counters it leaves to its
//! bdev when it closes. A queue pair that fails (its connection or
//! controller lost) is reported to the controller's [`Link`], and I/O is
//! held or failed by the link's policy until the controller is back; the
//! channel then moves to a queue pair of the controller now (`revive.rs`).

use super::super::{Completer, IoBuf, IoData, IoId, IoRequest, IoStatus, IoType, ModuleChannel};
use super::reconnect::Link;
use crate::nvme::{self, DmaSlice, Namespace, NvmeError, PcieStat, QPair, RwOp};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

/// NVMe Status Code Type 2h: Media and Data Integrity Errors.
const SCT_MEDIA_ERROR: u8 = 0x2;
/// Status Code 85h of that type: Compare Failure.
const SC_COMPARE_FAILURE: u8 = 0x85;

#[cold]
#[inline(never)]
pub(super) fn error_status(e: &NvmeError) -> IoStatus {
    match e {
        // Media and Data Integrity Errors / Compare Failure is a miscompare,
        // as SPDK's spdk_bdev_io_complete_nvme_status reports it.
        NvmeError::Command { status, .. }
            if status.sct.raw() == SCT_MEDIA_ERROR && status.sc == SC_COMPARE_FAILURE =>
        {
            IoStatus::Miscompare
        }
        NvmeError::Command { status, .. } => IoStatus::NvmeError {
            sct: status.sct.raw(),
            sc: status.sc,
        },
        NvmeError::AbortedByReset => IoStatus::Aborted,
        NvmeError::QueueFull => IoStatus::NoMem,
        e => {
            log::error!("nvme bdev: I/O failed: {e}");
            IoStatus::Failed
        }
    }
}

/// A tagged command that failed: its status mapped and reported. Out of
/// line, with the error's drop, so the success path of the completion
/// handler stays small enough to be inlined in the queue pair's loop.
#[cold]
#[inline(never)]
fn complete_error(
    done: &Completer,
    (link, epoch): (&Arc<Link>, u64),
    lost: &Cell<bool>,
    tag: u64,
    e: NvmeError,
) {
    let st = super::revive::path_error_status((link, epoch), lost, &e)
        .unwrap_or_else(|| error_status(&e));
    done.complete(IoId::from_u64(tag), st);
}

/// Heap buffers waiting for their bounce I/O, by request index.
type Bounced = Rc<RefCell<Vec<Option<IoData>>>>;

/// A bdev channel of an nvme bdev: its own I/O queue pair.
pub(super) struct NvmeChannel {
    pub(super) qp: QPair,
    pub(super) stats: Arc<Mutex<PcieStat>>,
    pub(super) ns: Namespace,
    pub(super) link: Arc<Link>,
    /// The link's epoch when `qp` was allocated.
    pub(super) epoch: u64,
    /// The queue pair failed: nothing goes to it until the link is back.
    pub(super) lost: Rc<Cell<bool>>,
    pub(super) done: Completer,
    /// What callbacks of this queue pair need on a path error.
    pub(super) path: super::revive::PathCtx,
    /// A bdev reset running on a worker: its request and result.
    pub(super) resetting: Option<(IoId, super::worker::Pending<bool>)>,
    bounced: Bounced,
}

impl NvmeChannel {
    /// A channel over `qp` (allocated at the link's `epoch`) for namespace
    /// `ns`; `stats` receives the queue pair's counters when the channel
    /// closes.
    pub(super) fn new(
        qp: QPair,
        ns: Namespace,
        (link, epoch): (Arc<Link>, u64),
        done: Completer,
        stats: Arc<Mutex<PcieStat>>,
    ) -> Self {
        let lost = Rc::new(Cell::new(false));
        NvmeChannel {
            qp,
            stats,
            ns,
            path: super::revive::PathCtx::new(link.clone(), epoch, lost.clone()),
            link,
            epoch,
            lost,
            done,
            resetting: None,
            bounced: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// A bounce copy of a heap buffer (or a vector of buffers): the caller's
    /// data is parked by request index until the completion hands it back.
    fn bounce(&mut self, id: IoId, data: IoData) -> std::result::Result<DmaSlice, IoStatus> {
        let len = data.len() as usize;
        let mut bounce = match crate::env::DmaBuf::alloc(len, 4096) {
            Ok(d) => d,
            Err(e) => {
                log::error!("nvme bdev: bounce buffer of {len} bytes: {e}");
                self.park(id.index() as usize, data);
                return Err(IoStatus::NoMem);
            }
        };
        let mut at = 0;
        data.for_each(0, len, |s| {
            bounce[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        });
        self.park(id.index() as usize, data);
        DmaSlice::new(bounce, 0..len).map_err(|_| IoStatus::Failed)
    }

    fn park(&mut self, i: usize, data: IoData) {
        let mut b = self.bounced.borrow_mut();
        if b.len() <= i {
            b.resize_with(i + 1, || None);
        }
        b[i] = Some(data);
    }

    fn unpark(&self, id: IoId) -> Option<IoData> {
        self.bounced
            .borrow_mut()
            .get_mut(id.index() as usize)
            .and_then(Option::take)
    }

    /// Sends a read, write or compare of one DMA slice; `cb` completes it.
    fn submit_data(
        &mut self,
        t: IoType,
        slice: DmaSlice,
        lba: u64,
        count: u32,
        cb: impl FnOnce(&mut QPair, nvme::IoCompletion) + 'static,
    ) -> std::result::Result<(), nvme::SubmitError> {
        match t {
            IoType::Read => self.qp.read(&self.ns, slice, lba, count, cb),
            IoType::Write => self.qp.write(&self.ns, slice, lba, count, cb),
            _ => self.qp.compare(&self.ns, slice, lba, count, cb),
        }
    }

    /// Read, write or compare. DMA memory goes to the device by address and
    /// stays in the layer's request (the hot path: nothing moves, nothing
    /// is allocated, the completion is the request's tag); anything else
    /// through a bounce copy.
    #[inline]
    fn submit_rw(&mut self, mut io: IoRequest<'_>, count: u32) {
        let (id, lba, t) = (io.id, io.offset_blocks, io.io_type);
        if let Some((buf, range)) = io.dma_range() {
            let op = match t {
                IoType::Read => RwOp::Read,
                IoType::Write => RwOp::Write,
                _ => RwOp::Compare,
            };
            // SAFETY: the bdev layer keeps `buf` allocated and leaves those
            // bytes alone until this request's completion is reported
            // (IoRequest::dma_range). The tag is reported from `poll` once
            // the device completed the command, or failed it in a reset
            // recovery; if the queue pair cannot be deleted, `shutdown`
            // returns false and the layer never frees the buffer.
            #[allow(unsafe_code)] // DMA by address of a buffer the layer keeps
            let r = unsafe {
                self.qp
                    .rw_tagged(&self.ns, op, buf, range, lba, count, id.as_u64())
            };
            if let Err(e) = r {
                self.submit_failed(id, e);
            }
            return;
        }
        let Some(data) = io.take_data() else {
            log::error!("nvme bdev: a split piece of heap memory cannot be bounced");
            self.done.complete(id, IoStatus::Failed);
            return;
        };
        let slice = match self.bounce(id, data) {
            Ok(s) => s,
            Err(st) => {
                let data = self.unpark(id).unwrap_or_default();
                return self.done.complete_with_data(id, st, data);
            }
        };
        let (done, bounced, p) = (self.done.clone(), self.bounced.clone(), self.path_ctx());
        let read = t == IoType::Read;
        let r = self.submit_data(t, slice, lba, count, move |_, c| {
            finish_bounced(&done, &bounced, &p, (id, read), c)
        });
        if let Err(e) = r {
            let st =
                super::revive::path_error_status((&self.link, self.epoch), &self.lost, &e.error)
                    .unwrap_or_else(|| error_status(&e.error));
            let data = self.unpark(id).unwrap_or_default();
            self.done.complete_with_data(id, st, data);
        }
    }
}

/// Completion of a bounced I/O: copy a read into the caller's buffers and
/// hand those back (the bounce buffer is freed).
fn finish_bounced(
    done: &Completer,
    bounced: &Bounced,
    p: &super::revive::PathCtx,
    (id, read): (IoId, bool),
    c: nvme::IoCompletion,
) {
    let st = p.status(&c.result);
    let parked = bounced
        .borrow_mut()
        .get_mut(id.index() as usize)
        .and_then(Option::take);
    let data = match (parked, c.buf.into_single()) {
        (Some(mut orig), Some(slice)) => {
            if read && st == IoStatus::Success {
                let src = slice.as_slice();
                let mut at = 0;
                orig.for_each_mut(0, src.len(), |s| {
                    s.copy_from_slice(&src[at..at + s.len()]);
                    at += s.len();
                });
            }
            orig
        }
        (Some(orig), None) => orig,
        (None, buf) => {
            log::error!("nvme bdev: bounced request {id:?} lost its parked buffer");
            buf.map_or(IoData::None, |s| {
                let r = s.range();
                IoData::Buf(IoBuf::from_dma(s.into_inner(), r.start, r.len()))
            })
        }
    };
    done.complete_with_data(id, st, data);
}

impl NvmeChannel {
    /// Reports every completion the qpair holds; `ring` also rings
    /// submissions queued since the last flush (the qpair's own poll).
    #[inline]
    fn reap(&mut self, ring: bool) -> usize {
        if self.lost.get() {
            return 0;
        }
        let (done, link, lost, epoch) = (&self.done, &self.link, &self.lost, self.epoch);
        let on_tag = |tag, r: Result<(), NvmeError>| match r {
            Ok(()) => done.complete_ok(IoId::from_u64(tag)),
            Err(e) => complete_error(done, (link, epoch), lost, tag, e),
        };
        let r = if ring {
            self.qp.process_completions_tagged(0, on_tag)
        } else {
            self.qp.process_completions_tagged_unflushed(0, on_tag)
        };
        match r {
            Ok(n) => n,
            Err(e) => {
                if super::revive::is_path_error(&e) {
                    self.lose(&e);
                } else if matches!(e, NvmeError::ControllerUnavailable) {
                    // A reset in progress: the queue pair recovers after it.
                    log::debug!("nvme bdev: qpair: {e}");
                } else {
                    log::warn!("nvme bdev: qpair: {e}");
                }
                0
            }
        }
    }
}

impl ModuleChannel for NvmeChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        let (id, lba, n) = (io.id, io.offset_blocks, io.num_blocks);
        if self.lost.get() {
            if let Err(st) = self.revive() {
                self.done.complete(id, st);
                return;
            }
        }
        let Ok(count) = u32::try_from(n) else {
            self.done.complete(id, IoStatus::Failed);
            return;
        };
        // Only commands without data capture the completer (a callback of
        // their own); reads, writes and compares are tagged in submit_rw.
        let done = || self.done.clone();
        let r = match io.io_type {
            IoType::Read | IoType::Write | IoType::Compare => return self.submit_rw(io, count),
            IoType::Flush => {
                let (done, p) = (done(), self.path_ctx());
                self.qp
                    .flush_ns(&self.ns, move |_, c| done.complete(id, p.status(&c.result)))
            }
            IoType::WriteZeroes => {
                let (done, p) = (done(), self.path_ctx());
                self.qp.write_zeroes(&self.ns, lba, count, move |_, c| {
                    done.complete(id, p.status(&c.result))
                })
            }
            IoType::Unmap => {
                let (done, p) = (done(), self.path_ctx());
                self.qp.deallocate(&self.ns, &[(lba, count)], move |_, c| {
                    done.complete(id, p.status(&c.result))
                })
            }
            IoType::Reset => return self.start_reset(id),
            IoType::CompareAndWrite => {
                self.done.complete(id, IoStatus::Failed);
                return;
            }
        };
        if let Err(e) = r {
            self.submit_failed(id, e.error);
        }
    }

    fn poll(&mut self) -> usize {
        if self.resetting.is_some() {
            self.poll_reset();
        }
        self.reap(true)
    }

    /// Reaps without ringing the SQ: the resubmissions of the completions
    /// just run wait for `flush`, with those of what this reap finds.
    fn reap_more(&mut self) -> usize {
        self.reap(false)
    }

    fn flush(&mut self) {
        self.qp.flush();
    }

    fn outstanding(&self) -> usize {
        self.qp.outstanding() + usize::from(self.resetting.is_some())
    }

    fn shutdown(&mut self) -> bool {
        self.qp.shutdown()
    }
}

impl Drop for NvmeChannel {
    fn drop(&mut self) {
        let mine = self.qp.pcie_stat();
        let mut sum = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        *sum += &mine;
    }
}
