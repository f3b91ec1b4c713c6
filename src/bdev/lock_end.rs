//! How LBA range locks end: unlocked, the descriptor that took them
//! closes, the channel that owns them is put, or the bdev is hot-removed.
//! Nothing is left waiting: a lock that will never be granted reports
//! [`BdevError::LockCancelled`] or [`BdevError::Removed`] to its owner,
//! and every channel drops an ended lock and resubmits what it held back.

use super::channel::ChannelInner;
use super::device::Bdev;
use super::lock_walk::{deliver_to, end_lock, kick, start_refresh};
use super::range_lock::{check_range, lock, LockEntry, LockEvent, LockRequest};
use super::{BdevError, Result};
use std::sync::Arc;

/// Asks for a lock owned by channel `owner`; returns its id. The grant
/// (or failure) arrives as an event on the owner channel. When no
/// overlapping lock holds it back, the owner holds it at once (I/O it
/// submits next is ordered behind it) and a walk hands it to the rest.
pub(crate) fn request(owner: &ChannelInner, req: LockRequest) -> Result<u64> {
    let bdev = &owner.bdev;
    check_range(bdev.name(), bdev.num_blocks(), req.offset, req.len)?;
    if bdev.is_removed() {
        return Err(BdevError::Removed(bdev.name().into()));
    }
    let (e, now) = lock(&bdev.locks).add(owner.id, owner.home.handle(), req);
    if now {
        owner.take_range(&e);
        owner
            .home
            .enter(|| super::lock_walk::start_taking(bdev, e.clone()));
    }
    Ok(e.id)
}

/// Releases the granted lock of channel `owner` on exactly
/// `offset..offset+len` with fence `mask` taken through descriptor `desc_id`.
pub(crate) fn unlock_range(
    bdev: &Arc<Bdev>,
    owner: u64,
    offset: u64,
    len: u64,
    mask: u32,
    desc_id: u64,
) -> Result<()> {
    check_range(bdev.name(), bdev.num_blocks(), offset, len)?;
    let found = lock(&bdev.locks).find_granted(owner, offset, len, mask, desc_id);
    match found {
        Some(e) => {
            end_lock(bdev, &e);
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
pub(crate) fn release(bdev: &Arc<Bdev>, id: u64) {
    let e = {
        let mut t = lock(&bdev.locks);
        if t.cancel_pending(id) {
            return;
        }
        t.by_id(id)
    };
    if let Some(e) = e {
        end_lock(bdev, &e);
    }
}

/// Ends every lock matching `doomed`: held ones are released (one still
/// being taken reports `why` when its walk finishes); waiting ones fail
/// with `why`, delivered to their owner channel.
fn end_locks(bdev: &Arc<Bdev>, doomed: impl Fn(&LockEntry) -> bool, why: impl Fn() -> BdevError) {
    let (gone, started, any_held) = {
        let mut t = lock(&bdev.locks);
        let gone = t.drop_pending(&doomed);
        let held = t.held_matching(&doomed);
        let mut started = Vec::new();
        for e in &held {
            started.extend(t.release(e, Some(why())));
        }
        (gone, started, !held.is_empty())
    };
    for e in gone {
        deliver_to(bdev, &e, LockEvent::Failed(e.id, why()));
    }
    if any_held {
        start_refresh(bdev, "end range locks");
    }
    kick(bdev, started);
}

/// A descriptor closed: its locks end.
pub(crate) fn close_desc(bdev: &Arc<Bdev>, desc_id: u64) {
    end_locks(
        bdev,
        |e| e.desc_id == desc_id,
        || BdevError::LockCancelled {
            bdev: bdev.name().into(),
            why: "its descriptor was closed",
        },
    );
}

/// Channel `id` goes away: the locks it owns end.
pub(crate) fn drop_channel(bdev: &Arc<Bdev>, id: u64) {
    end_locks(
        bdev,
        |e| e.owner == id,
        || BdevError::LockCancelled {
            bdev: bdev.name().into(),
            why: "its channel was put",
        },
    );
}

/// The bdev was hot-removed: waiting locks fail and every channel aborts
/// the I/O queued behind its locks.
pub(crate) fn bdev_removed(bdev: &Arc<Bdev>) {
    let gone = lock(&bdev.locks).drop_pending(|_| true);
    for e in gone {
        deliver_to(
            bdev,
            &e,
            LockEvent::Failed(e.id, BdevError::Removed(bdev.name().into())),
        );
    }
    start_refresh(bdev, "abort I/O queued behind locks");
}
