//! The public face of LBA range locks: `lock_lba_range` /
//! `unlock_lba_range` (SPDK's `bdev_lock_lba_range` /
//! `bdev_unlock_lba_range`) and `quiesce_range` / `unquiesce_range`
//! (`spdk_bdev_quiesce_range` / `spdk_bdev_unquiesce_range`, and `quiesce` /
//! `unquiesce` for the whole bdev).
//!
//! Both lock blocks on every channel of the bdev, on every thread. They
//! differ in what they fence:
//!
//! | call | fenced I/O | the owner channel's own I/O |
//! |---|---|---|
//! | `lock_lba_range` | writes: Write, WriteZeroes, Unmap, CompareAndWrite | passes |
//! | `quiesce_range` | every data I/O, reads included | waits too |
//!
//! Fenced I/O submitted while the lock is held (or being taken) waits on
//! its channel and is resubmitted, in order, when the lock goes. The lock
//! is granted — its callback runs, from a poll of the owner channel — only
//! after every channel's overlapping in-flight I/O of the fenced types has
//! completed, and after any overlapping lock taken earlier was released.
//! A lock ends when it is unlocked, when its descriptor closes, or when
//! its owner channel is put; a lock still waiting then completes with
//! [`BdevError::LockCancelled`] (or [`BdevError::Removed`] on hot remove).

use super::channel::Channel;
use super::desc::Desc;
use super::lock_end;
use super::lock_local::LockCb;
use super::range_lock::{LockRequest, QUIESCE_MASK, WRITE_MASK};
use super::{BdevError, IoType, Result};
use std::sync::Arc;

impl Desc {
    fn lock_checks(&self, ch: &Channel) -> Result<()> {
        let bdev = self.bdev();
        if !Arc::ptr_eq(ch.bdev(), bdev) {
            return Err(BdevError::WrongChannel {
                desc: bdev.name().into(),
                channel: ch.bdev().name().into(),
            });
        }
        if !self.is_writable() {
            return Err(BdevError::ReadOnly {
                bdev: bdev.name().into(),
                io_type: IoType::Write,
            });
        }
        Ok(())
    }

    fn take_lock(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        quiesce: bool,
        cb: impl FnOnce(Result<()>) + 'static,
    ) -> Result<()> {
        self.lock_checks(ch)?;
        let req = LockRequest {
            offset: offset_blocks,
            len: num_blocks,
            mask: if quiesce { QUIESCE_MASK } else { WRITE_MASK },
            owner_passes: !quiesce,
            desc_id: self.inner.id,
        };
        let id = lock_end::request(&ch.0, req)?;
        ch.0.lock_local
            .cbs
            .borrow_mut()
            .push((id, LockCb::User(Box::new(cb))));
        Ok(())
    }

    /// Locks blocks `offset_blocks..offset_blocks+num_blocks` against
    /// writes from every other channel of the bdev (SPDK's
    /// `bdev_lock_lba_range`); `ch` becomes the lock's owner, and writes
    /// submitted on it pass. `cb(Ok(()))` runs from a poll of `ch` once the
    /// lock is held: no overlapping write of any channel is in flight and
    /// new ones wait until [`Desc::unlock_lba_range`].
    ///
    /// Errors at once (and `cb` is not called) for a range beyond the bdev
    /// or of zero blocks, a removed bdev, a read-only descriptor, or a
    /// channel of another bdev.
    pub fn lock_lba_range(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        cb: impl FnOnce(Result<()>) + 'static,
    ) -> Result<()> {
        self.take_lock(ch, offset_blocks, num_blocks, false, cb)
    }

    /// Releases a lock taken with [`Desc::lock_lba_range`] on the same
    /// channel and exactly the same range (SPDK's `bdev_unlock_lba_range`).
    /// Writes queued behind it are resubmitted, in order, from the next
    /// poll of their channels. Unlocking a range that is not held (or not
    /// granted yet) is [`BdevError::RangeNotLocked`].
    pub fn unlock_lba_range(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<()> {
        self.lock_checks(ch)?;
        lock_end::unlock_range(
            self.bdev(),
            ch.0.id,
            offset_blocks,
            num_blocks,
            WRITE_MASK,
            self.inner.id,
        )
    }

    /// Quiesces blocks `offset_blocks..offset_blocks+num_blocks` (SPDK's
    /// `spdk_bdev_quiesce_range`): once `cb(Ok(()))` runs (from a poll of
    /// `ch`), no I/O touching those blocks is in flight on any channel, and
    /// every new one — reads too, and on `ch` as well — waits until
    /// [`Desc::unquiesce_range`]. For a module that must hold a range still
    /// (to copy or rebuild it underneath) and do its own I/O below the bdev.
    pub fn quiesce_range(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        cb: impl FnOnce(Result<()>) + 'static,
    ) -> Result<()> {
        self.take_lock(ch, offset_blocks, num_blocks, true, cb)
    }

    /// Ends a quiesce taken with [`Desc::quiesce_range`] on the same channel
    /// and exactly the same range (SPDK's `spdk_bdev_unquiesce_range`).
    pub fn unquiesce_range(&self, ch: &Channel, offset_blocks: u64, num_blocks: u64) -> Result<()> {
        self.lock_checks(ch)?;
        lock_end::unlock_range(
            self.bdev(),
            ch.0.id,
            offset_blocks,
            num_blocks,
            QUIESCE_MASK,
            self.inner.id,
        )
    }
}

impl Desc {
    /// Quiesces the whole bdev (SPDK's `spdk_bdev_quiesce`): see
    /// [`Desc::quiesce_range`].
    pub fn quiesce(&self, ch: &Channel, cb: impl FnOnce(Result<()>) + 'static) -> Result<()> {
        self.quiesce_range(ch, 0, self.bdev().num_blocks(), cb)
    }

    /// Ends a whole-bdev quiesce (SPDK's `spdk_bdev_unquiesce`).
    pub fn unquiesce(&self, ch: &Channel) -> Result<()> {
        self.unquiesce_range(ch, 0, self.bdev().num_blocks())
    }
}

impl Channel {
    /// I/O of this channel waiting behind an LBA range lock.
    pub fn queued_behind_locks(&self) -> usize {
        self.0.lock_local.queued.borrow().len()
    }
}
