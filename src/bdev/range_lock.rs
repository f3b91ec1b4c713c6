//! LBA range locks (SPDK's `bdev_lock_lba_range` / `bdev_unlock_lba_range`
//! and the quiesce calls built on them): the bdev-wide table of locks.
//!
//! A lock is granted in two stages, as in SPDK's bdev.c. First it waits, in
//! the bdev's table, until no overlapping lock is held. Then a
//! `for_each_channel` walk (`lock_walk`) hands it to every channel of the
//! bdev, on each channel's own thread: from that moment new overlapping I/O
//! of the fenced types is queued on that channel, and the walk moves on
//! once the channel's overlapping in-flight I/O has completed. The walk's
//! completion, back on the owner channel's thread, grants the lock.
//!
//! Unlocking removes the lock from the table at once (a waiting lock may
//! start) and walks the channels again: each drops it and resubmits, in
//! order, the I/O it had queued behind it. A channel made while locks are
//! held starts with them (it has nothing in flight).
//!
//! Nothing here is read on the I/O path: a channel's gate word and ranges
//! are its own, set only on its thread (`lock_local`). Locks are rare, so
//! this file may allocate and take a mutex.

use super::io::IoType;
use super::{BdevError, Result};
use crate::thread::ThreadHandle;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

/// Being handed to the channels (or waiting in the table).
const TAKING: u8 = 0;
/// Every channel holds it: granted.
const GRANTED: u8 = 1;
/// Unlocked or ended: channels drop it.
const RELEASED: u8 = 2;

/// One lock, held or waiting.
pub(crate) struct LockEntry {
    pub id: u64,
    pub offset: u64,
    pub len: u64,
    /// The I/O types it fences ([`WRITE_MASK`] or [`QUIESCE_MASK`]).
    pub mask: u32,
    /// The channel that asked for it (its id): gets the grant, may unlock it.
    pub owner: u64,
    /// The lightweight thread of the owner channel: the walks for this
    /// lock start there, and its grant is delivered there.
    pub owner_home: ThreadHandle,
    /// I/O submitted on the owner channel passes the lock (a user's
    /// `lock_lba_range`); false for quiesce and the layer's compare-and-write.
    pub owner_passes: bool,
    /// The descriptor that took it (0: the layer itself).
    pub desc_id: u64,
    state: AtomicU8,
    /// Why it ended before it was granted (what the owner is told).
    failure: Mutex<Option<BdevError>>,
}

impl LockEntry {
    /// True when blocks `off..off+n` intersect the locked range.
    pub fn overlaps(&self, off: u64, n: u64) -> bool {
        off < self.offset + self.len && self.offset < off + n
    }

    fn overlaps_entry(&self, o: &LockEntry) -> bool {
        self.overlaps(o.offset, o.len)
    }

    /// True once every channel holds it.
    pub fn is_granted(&self) -> bool {
        self.state.load(Ordering::Acquire) == GRANTED
    }

    /// True once unlocked or ended (channels drop it at their next visit).
    pub fn is_released(&self) -> bool {
        self.state.load(Ordering::Acquire) == RELEASED
    }

    /// Whether an I/O of `io_type` on blocks `off..off+n`, submitted on
    /// the channel with id `ch`, must wait for this lock.
    pub fn blocks(&self, ch: u64, io_type: IoType, off: u64, n: u64) -> bool {
        self.mask & io_type.bit() != 0
            && self.overlaps(off, n)
            && !(self.owner_passes && self.owner == ch)
    }

    /// The walk handing it out finished: granted, unless it was ended
    /// meanwhile (then the failure its owner is told).
    pub fn finish_taking(&self) -> std::result::Result<(), BdevError> {
        match self
            .state
            .compare_exchange(TAKING, GRANTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(lock(&self.failure)
                .take()
                .unwrap_or(BdevError::LockCancelled {
                    bdev: String::new(),
                    why: "it was released before it was granted",
                })),
        }
    }

    /// Marks it released; `why` is what its owner hears if it was not
    /// granted yet. Returns the state it had.
    fn end(&self, why: Option<BdevError>) -> u8 {
        if let Some(w) = why {
            let mut f = lock(&self.failure);
            if f.is_none() {
                *f = Some(w);
            }
        }
        self.state.swap(RELEASED, Ordering::AcqRel)
    }
}

/// What the owner channel learns about its lock.
pub(crate) enum LockEvent {
    /// Every channel holds it: the lock is granted.
    Granted(u64),
    /// The lock will never be granted (bdev removed, descriptor closed).
    Failed(u64, BdevError),
}

/// A bdev's locks: held (being handed out, or granted) and waiting.
#[derive(Default)]
pub(crate) struct LockTable {
    next_id: u64,
    /// Handed to the channels: being taken or granted.
    pub(super) held: Vec<Arc<LockEntry>>,
    /// Waiting for an overlapping held lock to go, in request order.
    pub(super) pending: VecDeque<Arc<LockEntry>>,
}

/// What a lock request asks for.
pub(crate) struct LockRequest {
    pub offset: u64,
    pub len: u64,
    pub mask: u32,
    pub owner_passes: bool,
    pub desc_id: u64,
}

impl LockTable {
    /// Enters a new lock owned by channel `owner` (on thread `home`).
    /// Returns it and whether it may be handed out now (no overlapping
    /// lock is held or waiting); otherwise it waits in the table.
    pub(super) fn add(
        &mut self,
        owner: u64,
        home: ThreadHandle,
        req: LockRequest,
    ) -> (Arc<LockEntry>, bool) {
        self.next_id += 1;
        let e = Arc::new(LockEntry {
            id: self.next_id,
            offset: req.offset,
            len: req.len,
            mask: req.mask,
            owner,
            owner_home: home,
            owner_passes: req.owner_passes,
            desc_id: req.desc_id,
            state: AtomicU8::new(TAKING),
            failure: Mutex::new(None),
        });
        let busy = self
            .held
            .iter()
            .chain(self.pending.iter())
            .any(|h| h.overlaps_entry(&e));
        if busy {
            self.pending.push_back(e.clone());
        } else {
            self.held.push(e.clone());
        }
        (e, !busy)
    }

    /// Ends held lock `e` (`why`: what its owner hears if it was still
    /// being taken) and returns the waiting locks that may now be handed
    /// out, in request order (they are held from now on).
    pub(super) fn release(
        &mut self,
        e: &Arc<LockEntry>,
        why: Option<BdevError>,
    ) -> Vec<Arc<LockEntry>> {
        e.end(why);
        self.held.retain(|h| !Arc::ptr_eq(h, e));
        let mut start = Vec::new();
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
                self.held.push(p.clone());
                start.push(p);
            }
        }
        self.pending = still;
        start
    }

    /// The granted lock of channel `owner` on exactly `offset..offset+len`
    /// with fence `mask`, taken through descriptor `desc_id`.
    pub(super) fn find_granted(
        &self,
        owner: u64,
        offset: u64,
        len: u64,
        mask: u32,
        desc_id: u64,
    ) -> Option<Arc<LockEntry>> {
        self.held
            .iter()
            .find(|e| {
                e.offset == offset
                    && e.len == len
                    && e.mask == mask
                    && e.desc_id == desc_id
                    && e.owner == owner
                    && e.is_granted()
            })
            .cloned()
    }

    /// Takes the waiting locks matching `doomed` out of the table; each is
    /// marked ended (its owner is to be told `Failed`).
    pub(super) fn drop_pending(
        &mut self,
        doomed: impl Fn(&LockEntry) -> bool,
    ) -> Vec<Arc<LockEntry>> {
        let (gone, keep): (VecDeque<_>, VecDeque<_>) =
            self.pending.drain(..).partition(|e| doomed(e));
        self.pending = keep;
        for e in &gone {
            e.end(None);
        }
        gone.into()
    }

    /// The held locks matching `doomed`.
    pub(super) fn held_matching(&self, doomed: impl Fn(&LockEntry) -> bool) -> Vec<Arc<LockEntry>> {
        self.held.iter().filter(|e| doomed(e)).cloned().collect()
    }

    /// Lock `id` (held or waiting).
    pub(super) fn by_id(&self, id: u64) -> Option<Arc<LockEntry>> {
        self.held
            .iter()
            .chain(self.pending.iter())
            .find(|e| e.id == id)
            .cloned()
    }

    /// Removes waiting lock `id`; true if it was waiting.
    pub(super) fn cancel_pending(&mut self, id: u64) -> bool {
        let before = self.pending.len();
        self.pending.retain(|e| {
            if e.id == id {
                e.end(None);
            }
            e.id != id
        });
        self.pending.len() != before
    }
}

/// A lock covers at least one block, all inside a bdev of `blocks` blocks.
pub(crate) fn check_range(name: &str, blocks: u64, offset: u64, len: u64) -> Result<()> {
    if len == 0 || offset.checked_add(len).map_or(true, |e| e > blocks) {
        return Err(BdevError::OutOfRange {
            bdev: name.into(),
            offset_blocks: offset,
            num_blocks: len,
            bdev_blocks: blocks,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread::Thread;

    fn req(offset: u64, len: u64, mask: u32, owner_passes: bool) -> LockRequest {
        LockRequest {
            offset,
            len,
            mask,
            owner_passes,
            desc_id: 0,
        }
    }

    #[test]
    fn adjacent_ranges_do_not_overlap_and_touching_blocks_do() {
        let t = Thread::unlisted("t");
        let mut tab = LockTable::default();
        let (e, now) = tab.add(1, t.handle(), req(8, 8, WRITE_MASK, false));
        assert!(now);
        assert!(!e.overlaps(0, 8));
        assert!(!e.overlaps(16, 4));
        assert!(e.overlaps(7, 2));
        assert!(e.overlaps(15, 1));
        assert!(e.overlaps(0, 100));
    }

    #[test]
    fn a_write_lock_fences_writes_of_others_but_not_reads_or_its_owner() {
        let t = Thread::unlisted("t");
        let mut tab = LockTable::default();
        let (owner, other) = (1, 2);
        let (e, _) = tab.add(owner, t.handle(), req(0, 8, WRITE_MASK, true));
        for ty in [
            IoType::Write,
            IoType::Unmap,
            IoType::WriteZeroes,
            IoType::CompareAndWrite,
        ] {
            assert!(e.blocks(other, ty, 0, 1), "{ty:?}");
            assert!(!e.blocks(owner, ty, 0, 1), "{ty:?} on the owner");
        }
        for ty in [IoType::Read, IoType::Compare, IoType::Flush, IoType::Reset] {
            assert!(!e.blocks(other, ty, 0, 1), "{ty:?}");
        }
        let (q, _) = tab.add(owner, t.handle(), req(100, 8, QUIESCE_MASK, false));
        assert!(q.blocks(owner, IoType::Read, 100, 1));
        assert!(q.blocks(other, IoType::Compare, 107, 1));
        assert!(!q.blocks(other, IoType::Flush, 100, 1));
    }

    #[test]
    fn an_overlapping_lock_waits_in_the_table_until_the_first_is_released() {
        let t = Thread::unlisted("t");
        let mut tab = LockTable::default();
        let (a, now_a) = tab.add(1, t.handle(), req(0, 8, WRITE_MASK, true));
        let (b, now_b) = tab.add(2, t.handle(), req(4, 8, WRITE_MASK, true));
        let (_, now_c) = tab.add(3, t.handle(), req(100, 1, WRITE_MASK, true));
        assert!(now_a && !now_b && now_c);
        assert!(a.finish_taking().is_ok());
        let started = tab.release(&a, None);
        assert_eq!(started.len(), 1);
        assert!(Arc::ptr_eq(&started[0], &b));
        assert!(a.is_released());
    }

    #[test]
    fn a_lock_ended_while_being_taken_reports_why_when_its_walk_finishes() {
        let t = Thread::unlisted("t");
        let mut tab = LockTable::default();
        let (a, _) = tab.add(1, t.handle(), req(0, 8, WRITE_MASK, true));
        tab.release(&a, Some(BdevError::Removed("b".into())));
        assert!(matches!(a.finish_taking(), Err(BdevError::Removed(_))));
    }
}
