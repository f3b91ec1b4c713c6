//! How LBA range locks end other than by unlock: the descriptor that took
//! them closes, the channel that owns them is put, or the bdev is
//! hot-removed. Nothing is left waiting: a lock that will never be granted
//! reports [`BdevError::LockCancelled`] or [`BdevError::Removed`] to its
//! owner, and a channel that goes away stops holding anyone's lock back.

use super::device::Bdev;
use super::range_lock::{ack, lock, ChanLocks, LockEntry, LockEvent};
use super::BdevError;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Ends every lock matching `doomed`: held ones are released; those not
/// granted yet (waiting for another lock, or for I/O to drain) fail with
/// `why`, delivered to their owner channel.
fn end_locks(bdev: &Bdev, doomed: impl Fn(&LockEntry) -> bool, why: impl Fn() -> BdevError) {
    let mut st = bdev.lock();
    let t = &mut st.locks;
    let (gone, keep): (VecDeque<_>, VecDeque<_>) = t.pending.drain(..).partition(|e| doomed(e));
    t.pending = keep;
    for e in gone {
        if let Some(o) = e.owner.upgrade() {
            o.post(LockEvent::Failed(e.id, why()));
        }
    }
    let ended: Vec<Arc<LockEntry>> = t.held.iter().filter(|e| doomed(e)).cloned().collect();
    for e in ended {
        // One still draining will never be granted now: say so.
        if !e.is_granted() {
            if let Some(o) = e.owner.upgrade() {
                o.post(LockEvent::Failed(e.id, why()));
            }
        }
        t.release(e.id);
    }
}

/// A descriptor closed: its locks end.
pub(crate) fn close_desc(bdev: &Bdev, desc_id: u64) {
    end_locks(
        bdev,
        |e| e.desc_id == desc_id,
        || BdevError::LockCancelled {
            bdev: bdev.name().into(),
            why: "its descriptor was closed",
        },
    );
}

/// A channel goes away: the locks it owns end, and it acknowledges every
/// lock still waiting for it (its I/O is gone with it).
pub(crate) fn drop_channel(bdev: &Bdev, me: &Arc<ChanLocks>) {
    // Leave the table first, so no lock handed out from now on waits for us.
    bdev.lock()
        .locks
        .chans
        .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(me)));
    end_locks(
        bdev,
        |e| std::ptr::eq(e.owner.as_ptr(), Arc::as_ptr(me)),
        || BdevError::LockCancelled {
            bdev: bdev.name().into(),
            why: "its channel was put",
        },
    );
    let unacked: Vec<Arc<LockEntry>> = {
        let mut r = lock(&me.ranges);
        let v = r
            .iter()
            .filter(|r| !r.acked)
            .map(|r| r.entry.clone())
            .collect();
        r.clear();
        v
    };
    for e in unacked {
        ack(&e);
    }
}

/// The bdev was hot-removed: waiting locks fail and every channel looks
/// at its queued I/O (which is aborted).
pub(crate) fn bdev_removed(bdev: &Bdev) {
    let mut st = bdev.lock();
    let t = &mut st.locks;
    for e in t.pending.drain(..) {
        if let Some(o) = e.owner.upgrade() {
            o.post(LockEvent::Failed(
                e.id,
                BdevError::Removed(bdev.name().into()),
            ));
        }
    }
    for c in t.live_chans() {
        c.work.store(true, Ordering::Release);
    }
}
