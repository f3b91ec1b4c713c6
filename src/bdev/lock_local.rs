//! A channel's own LBA range lock state, touched only on its thread: the
//! gate word its submit path reads, the locks it respects, the I/O queued
//! behind them, the walks waiting for its I/O to drain, and the callbacks
//! of the locks it asked for. (What the channel does with them is in
//! `lock_channel`; how the walks reach it is in `lock_walk`.)

use super::per_thread::ThreadChannels;
use super::range_lock::{LockEntry, LockEvent};
use super::Result;
use crate::thread::ChannelIter;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Weak;
use std::sync::Arc;

/// What to do when a lock this channel owns is granted or fails.
pub(crate) enum LockCb {
    /// A user's callback ([`super::Desc::lock_lba_range`], quiesce).
    User(Box<dyn FnOnce(Result<()>)>),
    /// The layer's compare-and-write in pool slot `.0` waits for it.
    Caw(u32),
}

/// A lock as one channel sees it.
pub(crate) struct ChanRange {
    pub entry: Arc<LockEntry>,
    /// This channel's overlapping in-flight I/O has drained.
    pub acked: bool,
    /// When the channel learnt of it ([`LockLocal::seq`] order).
    pub seq: u64,
}

/// A lock's walk, stopped on this thread until the overlapping in-flight
/// I/O of its channels here has drained (SPDK's
/// `bdev_lock_lba_range_check_io`). It sits with the first channel not
/// drained yet; `rest` are the thread's other channels still to check.
pub(crate) struct DrainWait {
    pub iter: ChannelIter<ThreadChannels>,
    pub entry: Arc<LockEntry>,
    pub rest: Vec<Weak<dyn std::any::Any>>,
}

/// Channel-local lock state (never touched by other threads).
#[derive(Default)]
pub(crate) struct LockLocal {
    /// I/O types that must take the slow path on this channel: the union
    /// of the masks of its locks, plus compare-and-write when the layer
    /// emulates it. Read once per submit.
    pub gate: Cell<u32>,
    pub base_gate: u32,
    /// I/O types that may not take the submit path's common case: the
    /// gate, plus what the channel adds ([`LockLocal::set_extra`]: its
    /// unsupported types, every type while QoS is on). One word read per
    /// submit instead of three.
    pub slow: Cell<u32>,
    /// The channel's part of `slow`.
    extra: Cell<u32>,
    /// The locks this channel respects.
    pub ranges: RefCell<Vec<ChanRange>>,
    /// Ranges handed to this channel so far (each gets the next number).
    pub seq: Cell<u64>,
    /// The poll has lock work: a drain to check or an event to run (or a
    /// reset this channel drives has a timed step due).
    pub work: Cell<bool>,
    /// A reset froze the channel: every I/O type is gated (and aborted).
    pub frozen: Cell<bool>,
    /// Locks ended: the poll resubmits the I/O queued behind them.
    pub resubmit: Cell<bool>,
    /// Walks waiting for this channel's I/O to drain.
    pub drains: RefCell<Vec<DrainWait>>,
    /// Grants and failures of locks this channel owns, for its poll.
    pub events: RefCell<VecDeque<LockEvent>>,
    /// Requests waiting behind a lock, in submission order, each with the
    /// channel's range number when it was queued.
    pub queued: RefCell<VecDeque<(u32, u64)>>,
    /// Callbacks of locks this channel asked for, by lock id.
    pub cbs: RefCell<Vec<(u64, LockCb)>>,
}

impl LockLocal {
    /// A channel's lock state; `base_gate` are the I/O types always gated.
    pub fn new(base_gate: u32) -> LockLocal {
        LockLocal {
            gate: Cell::new(base_gate),
            base_gate,
            slow: Cell::new(base_gate),
            seq: Cell::new(1),
            ..LockLocal::default()
        }
    }

    /// Recomputes the gate from the ranges (everything while frozen).
    pub fn recompute_gate(&self) {
        if self.frozen.get() {
            let all = super::IoType::ALL.iter().fold(0, |m, t| m | t.bit());
            self.gate.set(all);
            self.slow.set(all);
            return;
        }
        let g = self
            .ranges
            .borrow()
            .iter()
            .fold(self.base_gate, |g, r| g | r.entry.mask);
        self.gate.set(g);
        self.slow.set(g | self.extra.get());
    }

    /// Sets the channel's part of `slow` (the types it sends to the
    /// general path whatever the locks).
    pub fn set_extra(&self, extra: u32) {
        self.extra.set(extra);
        self.slow.set(self.gate.get() | extra);
    }

    /// The number the next range will get: an I/O queued now records it.
    pub fn seq(&self) -> u64 {
        self.seq.get()
    }

    /// Takes the next range number.
    pub fn next_seq(&self) -> u64 {
        let s = self.seq.get();
        self.seq.set(s + 1);
        s
    }

    /// True when a new I/O on channel `ch` must wait behind one of its locks.
    pub fn is_blocked(&self, ch: u64, io_type: super::IoType, off: u64, n: u64) -> bool {
        self.ranges
            .borrow()
            .iter()
            .any(|r| r.entry.blocks(ch, io_type, off, n))
    }

    /// True when an I/O queued at `seq` must go on waiting: a lock it
    /// overlaps was known when it was queued, or has drained here since.
    /// A lock handed out later and still draining does not hold it back:
    /// that lock waits for it instead, as in SPDK, where queued I/O is
    /// resubmitted before a waiting lock is tried.
    pub fn still_blocked(
        &self,
        ch: u64,
        io_type: super::IoType,
        off: u64,
        n: u64,
        seq: u64,
    ) -> bool {
        self.ranges
            .borrow()
            .iter()
            .any(|r| (r.acked || r.seq < seq) && r.entry.blocks(ch, io_type, off, n))
    }
}
