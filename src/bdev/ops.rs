//! What a bdev module implements for each bdev it creates: SPDK's
//! `spdk_bdev_fn_table` ([`BdevOps`]) and the per-thread channel that
//! receives I/O ([`ModuleChannel`]).
//!
//! A module never calls a completion callback itself: it reports through
//! its [`Completer`], and the bdev layer runs the callback from the
//! channel's poll on the submitting thread. Completing inside
//! `submit_request` is therefore allowed and never recursive.

use super::buf::IoData;
use super::io::{IoId, IoStatus, IoType};
use super::Result;
use crate::util::prefault;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

/// The function table of one bdev (SPDK's `spdk_bdev_fn_table`).
pub trait BdevOps: Send + Sync + 'static {
    /// Whether the bdev handles `io_type` (`io_type_supported`).
    fn io_type_supported(&self, io_type: IoType) -> bool;

    /// Creates this thread's channel for the bdev (`get_io_channel`);
    /// the channel reports completions through `completer`.
    fn get_io_channel(&self, completer: Completer) -> Result<Box<dyn ModuleChannel>>;

    /// Whether the bdev layer may emulate compare-and-write for this bdev
    /// when [`BdevOps::io_type_supported`] says it has no native one: lock
    /// the range, compare (native Compare, or Read and memcmp), write,
    /// unlock. True by default; false for bdevs that keep no data (null),
    /// where a compare means nothing.
    fn emulate_compare_and_write(&self) -> bool {
        true
    }

    /// Releases the bdev's resources once it is unregistered and every
    /// descriptor is closed (`destruct`).
    fn destruct(&self) {}

    /// Module-specific information for `bdev_get_bdevs` (`dump_info_json`).
    fn dump_info_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The JSON-RPC call that recreates this bdev, as `{"method":..,"params":..}`
    /// (`write_config_json`); `None` for bdevs not created by config.
    fn write_config_json(&self) -> Option<serde_json::Value> {
        None
    }
}

/// A module's per-thread channel: receives requests, and is polled by the
/// bdev channel that owns it.
pub trait ModuleChannel {
    /// Starts one request (`submit_request`). The request completes through
    /// the channel's [`Completer`], now or later.
    fn submit_request(&mut self, io: IoRequest<'_>);

    /// Whether the channel has work to reap or publish: `false` for a
    /// module that completes every request inside
    /// [`ModuleChannel::submit_request`] and keeps the defaults of
    /// [`ModuleChannel::poll`], [`ModuleChannel::reap_more`] and
    /// [`ModuleChannel::flush`] (null, malloc). The layer asks once, when
    /// the channel is made, and then never calls those three: a channel
    /// poll costs such a module nothing. `true` by default.
    fn needs_poll(&self) -> bool {
        true
    }

    /// Reaps finished work (a device's completion queue, an io_uring CQ)
    /// and reports it through the completer; returns how many completed.
    fn poll(&mut self) -> usize {
        0
    }

    /// Reaps again within the same channel poll, after the completions of
    /// [`ModuleChannel::poll`] ran and before [`ModuleChannel::flush`]:
    /// reports work that finished meanwhile without telling the device
    /// about new submissions yet. Returns how many completed; the default
    /// reaps nothing.
    fn reap_more(&mut self) -> usize {
        0
    }

    /// Whether [`ModuleChannel::reap_more`] does the work submitted since
    /// the last reap itself and reports it (a memory copy: malloc), so
    /// reaping again completes the I/O that the last completions'
    /// callbacks resubmitted. The layer then keeps reaping, round after
    /// round, within one poll's budget. `false` by default: a device's
    /// queue is reaped once more per poll at most. Asked once, when the
    /// channel is made.
    fn completes_on_reap(&self) -> bool {
        false
    }

    /// Publishes work the module queued without telling its device yet
    /// (an NVMe SQ tail doorbell held back by `delay_cmd_submit`). The
    /// layer calls it after a poll's completions have run, so the I/O their
    /// callbacks resubmitted reaches the device in the same poll, once, as
    /// SPDK rings at the end of a qpair's completion processing.
    fn flush(&mut self) {}

    /// A reset of the bdev is about to reach the module: report, as
    /// [`IoStatus::Aborted`], the requests this channel holds back on
    /// purpose (the error module's pending I/O). The bdev layer calls it
    /// on every channel of the bdev, each on its own thread, before it
    /// hands the reset to the module on the resetting channel, as SPDK's
    /// modules that hold I/O walk their own channels on a reset. Nothing
    /// by default.
    fn abort_held(&mut self) {}

    /// In-flight requests the module still holds (diagnostics).
    fn outstanding(&self) -> usize {
        0
    }

    /// Stops the channel's device work; called once, just before the
    /// channel is dropped. Returns `false` when a device may still read or
    /// write the buffers of requests the module has not completed (an NVMe
    /// queue that could not be deleted): the layer then never frees the
    /// buffers it still holds for this channel. `true` by default.
    fn shutdown(&mut self) -> bool {
        true
    }
}

/// One request handed to a module: the blocks, the type and a window into
/// the submitter's buffers.
pub struct IoRequest<'a> {
    /// Its handle, for the completer.
    pub id: IoId,
    /// What to do.
    pub io_type: IoType,
    /// First block.
    pub offset_blocks: u64,
    /// Number of blocks.
    pub num_blocks: u64,
    /// Block size in bytes.
    pub block_size: u32,
    pub(crate) data: &'a mut IoData,
    pub(crate) data_off: usize,
    pub(crate) whole: bool,
    /// When the layer took the I/O (its statistics' start): a request
    /// passed through to a base keeps it there too.
    pub(crate) submit_tick: u64,
}

impl IoRequest<'_> {
    /// Bytes the request moves.
    pub fn len_bytes(&self) -> usize {
        (self.num_blocks * self.block_size as u64) as usize
    }

    /// Byte offset on the bdev.
    pub fn offset_bytes(&self) -> u64 {
        self.offset_blocks * self.block_size as u64
    }

    /// Calls `f` on each piece of this request's data, in order (mutable:
    /// reads fill it).
    pub fn for_each_mut(&mut self, f: impl FnMut(&mut [u8])) {
        let len = self.len_bytes();
        self.data.for_each_mut(self.data_off, len, f)
    }

    /// Calls `f` on each piece of this request's data, in order.
    pub fn for_each(&self, f: impl FnMut(&[u8])) {
        self.data.for_each(self.data_off, self.len_bytes(), f)
    }

    /// The compare half of a compare-and-write.
    pub fn compare_half(&self) -> Option<&[u8]> {
        match &*self.data {
            IoData::CompareWrite(b) => Some(&b[0][..]),
            _ => None,
        }
    }

    /// The DMA buffer holding this request's bytes and their range in it,
    /// when they are one window of DMA memory (a whole [`IoData::Buf`] of
    /// DMA memory, or a piece of one split by the layer); `None` otherwise.
    ///
    /// A module may hand that range to a device by address instead of
    /// taking the buffer ([`IoRequest::take_data`]): until the module
    /// reports this request complete, the layer neither frees the buffer
    /// nor touches those bytes, and if the module's
    /// [`ModuleChannel::shutdown`] returns `false` it never frees it.
    #[inline]
    pub fn dma_range(&self) -> Option<(&crate::env::DmaBuf, std::ops::Range<usize>)> {
        match &*self.data {
            IoData::Buf(b) => {
                let (d, off) = b.dma_window()?;
                let start = off + self.data_off;
                let end = start + self.len_bytes();
                (end <= off + b.len()).then_some((d, start..end))
            }
            _ => None,
        }
    }

    /// The write half of a compare-and-write.
    pub fn write_half(&self) -> Option<&[u8]> {
        self.data.write_half().map(|b| &b[..])
    }

    /// Takes the submitter's buffers to forward them to another bdev (a
    /// virtual bdev's way); give them back with
    /// [`Completer::complete_with_data`]. `None` for a piece of a split
    /// I/O, whose buffers are shared with its siblings.
    pub fn take_data(&mut self) -> Option<IoData> {
        if self.whole {
            Some(std::mem::take(self.data))
        } else {
            None
        }
    }
}

/// One completion report: two words, so queueing it is cheap.
#[derive(Clone, Copy)]
pub(crate) struct Done {
    pub id: IoId,
    pub status: IoStatus,
    /// Buffers come back through the data queue, found by the request id.
    pub has_data: bool,
}

/// `Done` as it sits in the queue: whole words only (no partial-width
/// stores to forward).
#[derive(Clone, Copy)]
pub(crate) struct Packed {
    pub id: IoId,
    word: u64,
}

impl Packed {
    #[inline]
    fn pack(d: Done) -> Packed {
        let (tag, sct, sc) = match d.status {
            IoStatus::Success => (0u64, 0u64, 0u64),
            IoStatus::Failed => (1, 0, 0),
            IoStatus::Miscompare => (2, 0, 0),
            IoStatus::Aborted => (3, 0, 0),
            IoStatus::NoMem => (4, 0, 0),
            IoStatus::NvmeError { sct, sc } => (5, sct as u64, sc as u64),
        };
        Packed {
            id: d.id,
            word: tag | sct << 8 | sc << 16 | (d.has_data as u64) << 32,
        }
    }

    /// A success without buffers: what `pack` makes of it, with nothing to
    /// encode.
    #[inline]
    fn success(id: IoId) -> Packed {
        Packed { id, word: 0 }
    }

    /// An empty queue of reports with room for `n`, its memory written
    /// once (see [`prefault`]).
    pub(crate) fn queue(n: usize) -> Vec<Packed> {
        prefault::vec_with_capacity(n, || Packed::success(IoId::new(0, 0)))
    }

    /// The status, decoded in registers (never through memory).
    #[inline]
    pub fn status(self) -> IoStatus {
        // Success is tag 0: one test, no table.
        if self.word & 0xff == 0 {
            return IoStatus::Success;
        }
        self.unpack().status
    }

    /// A success that hands no buffers back: the common report, one test.
    #[inline]
    pub fn is_plain_success(self) -> bool {
        self.word == 0
    }

    #[inline]
    pub fn has_data(self) -> bool {
        self.word >> 32 != 0
    }

    #[inline]
    fn unpack(self) -> Done {
        let w = self.word;
        let status = match w & 0xff {
            0 => IoStatus::Success,
            1 => IoStatus::Failed,
            2 => IoStatus::Miscompare,
            3 => IoStatus::Aborted,
            4 => IoStatus::NoMem,
            _ => IoStatus::NvmeError {
                sct: (w >> 8) as u8,
                sc: (w >> 16) as u8,
            },
        };
        Done {
            id: self.id,
            status,
            has_data: w >> 32 != 0,
        }
    }
}

/// The completion queues: one packed report per completion, and the
/// buffers handed back by the completions that carry them, with their
/// request's id. Most completions carry none (the buffers stayed in the
/// request), so the common report is two words pushed. The channel's poll
/// takes every queued report at once ([`Completer::take_all`]) and walks
/// them as a slice: no queue arithmetic, no borrow per report. Buffers are
/// found by id, so a poll nested in a callback, which handles newer
/// reports before the rest of its outer poll's batch, gets the right ones.
pub(crate) struct Queues {
    pub done: RefCell<Vec<Packed>>,
    pub data: RefCell<VecDeque<(IoId, IoData)>>,
}

/// A module's handle for reporting completions to its bdev channel.
/// Cloning it (once, when a channel is created) is cheap; completing is a
/// push onto a preallocated queue.
#[derive(Clone)]
pub struct Completer(pub(crate) Rc<Queues>);

impl Completer {
    /// Queues with room for `n` reports, their memory written once so the
    /// first batches of a run fault no page in.
    pub(crate) fn with_capacity(n: usize) -> Self {
        let data = prefault::vec_with_capacity(n, || (IoId::new(0, 0), IoData::None));
        Completer(Rc::new(Queues {
            done: RefCell::new(Packed::queue(n)),
            data: RefCell::new(VecDeque::from(data)),
        }))
    }

    /// Reports that `id` finished with `status`.
    #[inline]
    pub fn complete(&self, id: IoId, status: IoStatus) {
        self.push(Done {
            id,
            status,
            has_data: false,
        });
    }

    /// Reports that `id` succeeded (the same as `complete(id, IoStatus::Success)`,
    /// with nothing to encode).
    #[inline]
    pub fn complete_ok(&self, id: IoId) {
        self.push_packed(Packed::success(id));
    }

    /// Reports completion and returns buffers taken with [`IoRequest::take_data`].
    #[inline]
    pub fn complete_with_data(&self, id: IoId, status: IoStatus, data: IoData) {
        self.0.data.borrow_mut().push_back((id, data));
        self.push(Done {
            id,
            status,
            has_data: true,
        });
    }

    #[inline]
    pub(crate) fn push(&self, d: Done) {
        self.push_packed(Packed::pack(d));
    }

    /// Queues one report. The queue was made with room for a pool's worth
    /// and is swapped, not freed, by the poll: growing it is out of line,
    /// so a module's submit that completes at once (null) stays a leaf
    /// with nothing to save.
    #[inline(always)]
    fn push_packed(&self, p: Packed) {
        let mut q = self.0.done.borrow_mut();
        if q.len() < q.capacity() {
            q.push(p);
        } else {
            drop(q);
            self.push_grow(p);
        }
    }

    #[cold]
    #[inline(never)]
    fn push_grow(&self, p: Packed) {
        self.0.done.borrow_mut().push(p);
    }

    /// Moves every queued report into `batch` (which must be empty), in
    /// arrival order, and leaves `batch`'s storage as the queue: reports
    /// pushed while the batch is handled wait for the next take.
    #[inline]
    pub(crate) fn take_all(&self, batch: &mut Vec<Packed>) {
        debug_assert!(batch.is_empty());
        std::mem::swap(&mut *self.0.done.borrow_mut(), batch);
    }

    /// The buffers queued with a report for `id`, which said it carries
    /// them: the oldest such entry (almost always the front).
    #[inline]
    pub(crate) fn take_data(&self, id: IoId) -> Option<IoData> {
        let mut q = self.0.data.borrow_mut();
        // Reports are handled in arrival order: the front, almost always.
        if q.front().is_some_and(|(i, _)| *i == id) {
            return q.pop_front().map(|(_, d)| d);
        }
        let at = q.iter().position(|(i, _)| *i == id)?;
        q.remove(at).map(|(_, d)| d)
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.done.borrow().is_empty()
    }
}
