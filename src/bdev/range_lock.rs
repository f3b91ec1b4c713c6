//! LBA range locks (SPDK's `bdev_lock_lba_range` / `bdev_unlock_lba_range`
//! and the quiesce calls built on them): the bdev-wide table of locks and
//! the part of each channel that other threads may touch.
//!
//! A lock is granted in two stages. First it waits, in the bdev's table,
//! until no overlapping lock is held. Then it is handed to every channel of
//! the bdev (each a [`ChanLocks`] reachable from any thread): from that
//! moment new overlapping I/O of the fenced types is queued on its channel,
//! and each channel acknowledges the range from its own poll once its
//! overlapping in-flight I/O has completed. The last acknowledgement grants
//! the lock: an event for the owner channel, whose poll runs the callback.
//!
//! Unlocking marks the lock released; each channel drops it at its next
//! poll and resubmits, in order, the I/O it had queued behind it. A channel
//! made while locks are held starts with them (it has nothing in flight).
//!
//! Locks are rare, so this file may allocate and take mutexes; the I/O
//! path only reads [`ChanLocks::gate`], one atomic word.

use super::device::Bdev;
use super::io::IoType;
use super::{BdevError, Result};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// I/O types a write lock fences: everything that modifies data.
pub(crate) const WRITE_MASK: u32 = 1 << IoType::Write as u8
    | 1 << IoType::Unmap as u8
    | 1 << IoType::WriteZeroes as u8
    | 1 << IoType::CompareAndWrite as u8;

/// I/O types a quiesce fences: every I/O that touches data.
pub(crate) const QUIESCE_MASK: u32 =
    WRITE_MASK | 1 << IoType::Read as u8 | 1 << IoType::Compare as u8;

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One lock, held or waiting.
pub(crate) struct LockEntry {
    pub id: u64,
    pub offset: u64,
    pub len: u64,
    /// The I/O types it fences ([`WRITE_MASK`] or [`QUIESCE_MASK`]).
    pub mask: u32,
    /// The channel that asked for it: gets the grant, may unlock it.
    pub owner: Weak<ChanLocks>,
    /// I/O submitted on the owner channel passes the lock (a user's
    /// `lock_lba_range`); false for quiesce and the layer's compare-and-write.
    pub owner_passes: bool,
    /// The descriptor that took it (0: the layer itself).
    pub desc_id: u64,
    /// Channels that have not acknowledged it yet; 0 = granted.
    waiting: AtomicUsize,
    released: AtomicBool,
}

impl LockEntry {
    /// True when blocks `off..off+n` intersect the locked range.
    pub fn overlaps(&self, off: u64, n: u64) -> bool {
        off < self.offset + self.len && self.offset < off + n
    }

    fn overlaps_entry(&self, o: &LockEntry) -> bool {
        self.overlaps(o.offset, o.len)
    }

    /// True once every channel acknowledged it.
    pub fn is_granted(&self) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
    }

    /// True once unlocked (channels drop it at their next poll).
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Whether an I/O of `io_type` on blocks `off..off+n`, submitted on
    /// channel `ch`, must wait for this lock.
    pub fn blocks(&self, ch: &Arc<ChanLocks>, io_type: IoType, off: u64, n: u64) -> bool {
        self.mask & io_type.bit() != 0
            && self.overlaps(off, n)
            && !(self.owner_passes && std::ptr::eq(self.owner.as_ptr(), Arc::as_ptr(ch)))
    }
}

/// What the owner channel learns about its lock.
pub(crate) enum LockEvent {
    /// Every channel acknowledged: the lock is held.
    Granted(u64),
    /// The lock will never be granted (bdev removed, descriptor closed).
    Failed(u64, BdevError),
}

/// A lock as one channel sees it.
pub(crate) struct ChanRange {
    pub entry: Arc<LockEntry>,
    /// This channel's overlapping in-flight I/O has drained.
    pub acked: bool,
    /// When the channel learnt of it ([`ChanLocks::seq`] order).
    pub seq: u64,
}

/// The part of a channel other threads reach: the locks it must respect
/// and the events for locks it owns.
pub(crate) struct ChanLocks {
    /// I/O types that must take the slow path on this channel: the union of
    /// the masks of its locks, plus compare-and-write when the layer
    /// emulates it. Read once per submit.
    pub gate: AtomicU32,
    base_gate: u32,
    /// Set when the channel's poll has lock work (a new or released range,
    /// an event); cleared by that poll.
    pub work: AtomicBool,
    pub ranges: Mutex<Vec<ChanRange>>,
    /// Ranges handed to this channel so far (each gets the next number).
    seq: AtomicU64,
    events: Mutex<VecDeque<LockEvent>>,
}

impl ChanLocks {
    /// Recomputes the gate from the ranges (caller holds the ranges lock).
    pub fn recompute_gate(&self, ranges: &[ChanRange]) {
        let g = ranges.iter().fold(self.base_gate, |g, r| g | r.entry.mask);
        self.gate.store(g, Ordering::Release);
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The number the next range will get: an I/O queued now records it.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// True when a new I/O must wait behind one of this channel's locks.
    pub fn is_blocked(self: &Arc<Self>, io_type: IoType, off: u64, n: u64) -> bool {
        lock(&self.ranges)
            .iter()
            .any(|r| r.entry.blocks(self, io_type, off, n))
    }

    /// True when an I/O queued at `seq` must go on waiting: a lock it
    /// overlaps was known when it was queued, or has been acknowledged
    /// since. A lock handed out later and not yet acknowledged does not
    /// hold it back: that lock waits for it instead, as in SPDK, where
    /// queued I/O is resubmitted before a waiting lock is tried.
    pub fn still_blocked(self: &Arc<Self>, io_type: IoType, off: u64, n: u64, seq: u64) -> bool {
        lock(&self.ranges)
            .iter()
            .any(|r| (r.acked || r.seq < seq) && r.entry.blocks(self, io_type, off, n))
    }

    /// Takes the events for locks this channel owns.
    pub fn take_events(&self) -> VecDeque<LockEvent> {
        std::mem::take(&mut *lock(&self.events))
    }

    pub(super) fn post(&self, ev: LockEvent) {
        lock(&self.events).push_back(ev);
        self.work.store(true, Ordering::Release);
    }
}

/// A bdev's locks and the lock side of its channels (in the bdev's state).
#[derive(Default)]
pub(crate) struct LockTable {
    next_id: u64,
    /// Handed to the channels: draining or granted.
    pub(super) held: Vec<Arc<LockEntry>>,
    /// Waiting for an overlapping held lock to go, in request order.
    pub(super) pending: VecDeque<Arc<LockEntry>>,
    pub(super) chans: Vec<Weak<ChanLocks>>,
}

impl LockTable {
    pub(super) fn live_chans(&mut self) -> Vec<Arc<ChanLocks>> {
        self.chans.retain(|w| w.strong_count() > 0);
        self.chans.iter().filter_map(Weak::upgrade).collect()
    }

    /// Hands `e` to every channel; grants it at once if there is none.
    fn distribute(&mut self, e: Arc<LockEntry>) {
        let chans = self.live_chans();
        e.waiting.store(chans.len(), Ordering::Release);
        for c in &chans {
            let mut r = lock(&c.ranges);
            let seq = c.next_seq();
            r.push(ChanRange {
                entry: e.clone(),
                acked: false,
                seq,
            });
            c.recompute_gate(&r);
            drop(r);
            c.work.store(true, Ordering::Release);
        }
        self.held.push(e.clone());
        if chans.is_empty() {
            grant(&e);
        }
    }

    /// Removes held lock `id`, tells the channels, promotes waiting locks.
    pub(super) fn release(&mut self, id: u64) {
        let Some(i) = self.held.iter().position(|e| e.id == id) else {
            return;
        };
        let e = self.held.remove(i);
        e.released.store(true, Ordering::Release);
        for c in self.live_chans() {
            c.work.store(true, Ordering::Release);
        }
        let mut still = VecDeque::new();
        while let Some(p) = self.pending.pop_front() {
            // Request order among overlapping locks is kept: one waits
            // behind an earlier waiting one too.
            let blocked = self
                .held
                .iter()
                .chain(still.iter())
                .any(|h| h.overlaps_entry(&p));
            if blocked {
                still.push_back(p);
            } else {
                self.distribute(p);
            }
        }
        self.pending = still;
    }
}

fn grant(e: &LockEntry) {
    if let Some(o) = e.owner.upgrade() {
        o.post(LockEvent::Granted(e.id));
    }
}

/// One channel acknowledges `e`: its overlapping I/O drained.
pub(crate) fn ack(e: &LockEntry) {
    if e.waiting.fetch_sub(1, Ordering::AcqRel) == 1 && !e.is_released() {
        grant(e);
    }
}

/// What a lock request asks for.
pub(crate) struct LockRequest {
    pub offset: u64,
    pub len: u64,
    pub mask: u32,
    pub owner_passes: bool,
    pub desc_id: u64,
}

/// Registers a new channel's lock side; it starts with every held lock.
pub(crate) fn register_channel(bdev: &Bdev, base_gate: u32) -> Arc<ChanLocks> {
    let mut st = bdev.lock();
    let ranges: Vec<ChanRange> = st
        .locks
        .held
        .iter()
        .map(|e| ChanRange {
            entry: e.clone(),
            acked: true,
            seq: 0,
        })
        .collect();
    let c = Arc::new(ChanLocks {
        gate: AtomicU32::new(0),
        base_gate,
        work: AtomicBool::new(false),
        ranges: Mutex::new(Vec::new()),
        seq: AtomicU64::new(1),
        events: Mutex::new(VecDeque::new()),
    });
    c.recompute_gate(&ranges);
    *lock(&c.ranges) = ranges;
    st.locks.chans.push(Arc::downgrade(&c));
    c
}

/// Asks for a lock owned by channel `owner`; returns its id. The grant (or
/// failure) arrives as an event on the owner channel.
pub(crate) fn request(bdev: &Bdev, owner: &Arc<ChanLocks>, req: LockRequest) -> Result<u64> {
    check_range(bdev, req.offset, req.len)?;
    if bdev.is_removed() {
        return Err(BdevError::Removed(bdev.name().into()));
    }
    let mut st = bdev.lock();
    let t = &mut st.locks;
    t.next_id += 1;
    let e = Arc::new(LockEntry {
        id: t.next_id,
        offset: req.offset,
        len: req.len,
        mask: req.mask,
        owner: Arc::downgrade(owner),
        owner_passes: req.owner_passes,
        desc_id: req.desc_id,
        waiting: AtomicUsize::new(usize::MAX),
        released: AtomicBool::new(false),
    });
    let id = e.id;
    let busy = t
        .held
        .iter()
        .chain(t.pending.iter())
        .any(|h| h.overlaps_entry(&e));
    if busy {
        t.pending.push_back(e);
    } else {
        t.distribute(e);
    }
    Ok(id)
}

/// A lock covers at least one block, all inside the bdev.
fn check_range(bdev: &Bdev, offset: u64, len: u64) -> Result<()> {
    if len == 0
        || offset
            .checked_add(len)
            .map_or(true, |e| e > bdev.num_blocks())
    {
        return Err(BdevError::OutOfRange {
            bdev: bdev.name().into(),
            offset_blocks: offset,
            num_blocks: len,
            bdev_blocks: bdev.num_blocks(),
        });
    }
    Ok(())
}

/// Releases the granted lock of `owner` on exactly `offset..offset+len`
/// with fence `mask` taken through descriptor `desc_id`.
pub(crate) fn unlock_range(
    bdev: &Bdev,
    owner: &Arc<ChanLocks>,
    offset: u64,
    len: u64,
    mask: u32,
    desc_id: u64,
) -> Result<()> {
    check_range(bdev, offset, len)?;
    let mut st = bdev.lock();
    let found = st.locks.held.iter().find(|e| {
        e.offset == offset
            && e.len == len
            && e.mask == mask
            && e.desc_id == desc_id
            && e.is_granted()
            && std::ptr::eq(e.owner.as_ptr(), Arc::as_ptr(owner))
    });
    match found.map(|e| e.id) {
        Some(id) => {
            st.locks.release(id);
            Ok(())
        }
        None => Err(BdevError::RangeNotLocked {
            bdev: bdev.name().into(),
            offset_blocks: offset,
            num_blocks: len,
        }),
    }
}

/// Releases lock `id` whatever its state (the layer's own locks).
pub(crate) fn release(bdev: &Bdev, id: u64) {
    let mut st = bdev.lock();
    st.locks.pending.retain(|e| e.id != id);
    st.locks.release(id);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        offset: u64,
        len: u64,
        mask: u32,
        owner_passes: bool,
        owner: &Arc<ChanLocks>,
    ) -> LockEntry {
        LockEntry {
            id: 1,
            offset,
            len,
            mask,
            owner: Arc::downgrade(owner),
            owner_passes,
            desc_id: 0,
            waiting: AtomicUsize::new(1),
            released: AtomicBool::new(false),
        }
    }

    fn chan() -> Arc<ChanLocks> {
        Arc::new(ChanLocks {
            gate: AtomicU32::new(0),
            base_gate: 0,
            work: AtomicBool::new(false),
            ranges: Mutex::new(Vec::new()),
            seq: AtomicU64::new(1),
            events: Mutex::new(VecDeque::new()),
        })
    }

    #[test]
    fn adjacent_ranges_do_not_overlap_and_touching_blocks_do() {
        let c = chan();
        let e = entry(8, 8, WRITE_MASK, false, &c);
        assert!(!e.overlaps(0, 8));
        assert!(!e.overlaps(16, 4));
        assert!(e.overlaps(7, 2));
        assert!(e.overlaps(15, 1));
        assert!(e.overlaps(0, 100));
    }

    #[test]
    fn a_write_lock_fences_writes_of_others_but_not_reads_or_its_owner() {
        let (owner, other) = (chan(), chan());
        let e = entry(0, 8, WRITE_MASK, true, &owner);
        for t in [
            IoType::Write,
            IoType::Unmap,
            IoType::WriteZeroes,
            IoType::CompareAndWrite,
        ] {
            assert!(e.blocks(&other, t, 0, 1), "{t:?}");
            assert!(!e.blocks(&owner, t, 0, 1), "{t:?} on the owner");
        }
        for t in [IoType::Read, IoType::Compare, IoType::Flush, IoType::Reset] {
            assert!(!e.blocks(&other, t, 0, 1), "{t:?}");
        }
        let q = entry(0, 8, QUIESCE_MASK, false, &owner);
        assert!(q.blocks(&owner, IoType::Read, 0, 1));
        assert!(q.blocks(&other, IoType::Compare, 7, 1));
        assert!(!q.blocks(&other, IoType::Flush, 0, 1));
    }
}
