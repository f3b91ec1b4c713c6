//! How LBA range locks reach the channels: `for_each_channel` walks over
//! the bdev's io_device, as SPDK's bdev.c does (`bdev_lock_lba_range_get_channel`,
//! `bdev_unlock_lba_range_get_channel`). Each visit runs on the channel's
//! own thread and touches only that thread's channels; a walk's
//! completion runs on the thread that started it.
//!
//! - taking: each channel adds the lock (its gate now routes fenced I/O to
//!   the slow path); the walk waits on a thread until the overlapping I/O
//!   in flight there drained; the completion, on the owner's thread,
//!   grants the lock (or reports why it ended meanwhile).
//! - releasing: each channel drops the lock and resubmits, in order, the
//!   I/O queued behind it.
//! - bdev removed: each channel aborts the I/O queued behind its locks.

use super::channel::ChannelInner;
use super::device::Bdev;
use super::lock_local::DrainWait;
use super::per_thread::{here, ThreadChannels};
use super::range_lock::{lock, LockEntry, LockEvent};
use crate::thread::{ChannelIter, IoChannel};
use std::rc::Rc;
use std::sync::Arc;

/// The live bdev channels of the thread being visited.
fn chans(io: &IoChannel<ThreadChannels>) -> Vec<Rc<ChannelInner>> {
    io.ctx_mut().live::<ChannelInner>()
}

/// Hands lock `e` to every channel of `bdev`. Must run on the owner's
/// thread (`e.owner_home`): the completion, there, tells the owner.
pub(crate) fn start_taking(bdev: &Arc<Bdev>, e: Arc<LockEntry>) {
    let e1 = e.clone();
    let (b2, e2) = (bdev.clone(), e.clone());
    let r = bdev.io_device.for_each_channel(
        move |io, it| visit_take(&e1, io, it),
        move |_| {
            let ev = match e2.finish_taking() {
                Ok(()) => LockEvent::Granted(e2.id),
                Err(err) => LockEvent::Failed(e2.id, err),
            };
            deliver(&b2, e2.owner, ev);
        },
    );
    if let Err(err) = r {
        log::error!(
            "bdev {}: range lock {} not handed out: {err}",
            bdev.name(),
            e.id
        );
        end_lock(bdev, &e);
    }
}

fn visit_take(e: &Arc<LockEntry>, io: &IoChannel<ThreadChannels>, it: ChannelIter<ThreadChannels>) {
    let mut waiting: Vec<Rc<ChannelInner>> =
        chans(io).into_iter().filter(|c| !c.take_range(e)).collect();
    if waiting.is_empty() {
        return it.continue_with(0);
    }
    let first = waiting.remove(0);
    let rest = waiting
        .iter()
        .map(|c| Rc::downgrade(c) as std::rc::Weak<dyn std::any::Any>)
        .collect();
    first.park(DrainWait {
        iter: it,
        entry: e.clone(),
        rest,
    });
}

/// Walks every channel of `bdev` from the thread here: each drops the
/// locks released so far and resubmits, in order, what they held back
/// (or, once the bdev is removed, aborts it). `what` names the cause in
/// a log line if no walk can start.
pub(crate) fn start_refresh(bdev: &Arc<Bdev>, what: &str) {
    let r = here().enter(|| {
        bdev.io_device.for_each_channel(
            move |io, it| {
                for c in chans(io) {
                    c.drop_released();
                }
                it.continue_with(0);
            },
            |_| {},
        )
    });
    if let Err(e) = r {
        log::error!(
            "bdev {}: cannot walk its channels to {what}: {e}",
            bdev.name()
        );
    }
}

/// Ends held lock `e`: out of the table, dropped by every channel;
/// waiting locks it held back start.
pub(crate) fn end_lock(bdev: &Arc<Bdev>, e: &Arc<LockEntry>) {
    let started = lock(&bdev.locks).release(e, None);
    start_refresh(bdev, "release a range lock");
    kick(bdev, started);
}

/// Starts handing out locks that waited in the table, each from its
/// owner's thread.
pub(crate) fn kick(bdev: &Arc<Bdev>, started: Vec<Arc<LockEntry>>) {
    for e in started {
        let (b, e2) = (bdev.clone(), e.clone());
        if let Err(err) = e.owner_home.send_msg(move || start_taking(&b, e2)) {
            log::warn!(
                "bdev {}: range lock {}'s owner thread is gone ({err}): lock dropped",
                bdev.name(),
                e.id
            );
            end_lock(bdev, &e);
        }
    }
}

/// Tells channel `owner`, on the current thread, about its lock.
pub(crate) fn deliver(bdev: &Bdev, owner: u64, ev: LockEvent) {
    let Some(io) = bdev.io_device.current_channel() else {
        return;
    };
    if let Some(c) = chans(&io).into_iter().find(|c| c.id == owner) {
        c.lock_local.events.borrow_mut().push_back(ev);
        c.lock_local.work.set(true);
    }
}

/// Sends `ev` to channel `owner` on thread `e.owner_home`.
pub(crate) fn deliver_to(bdev: &Arc<Bdev>, e: &LockEntry, ev: LockEvent) {
    let (b, owner) = (bdev.clone(), e.owner);
    if e.owner_home
        .send_msg(move || deliver(&b, owner, ev))
        .is_err()
    {
        log::debug!("bdev {}: lock {}'s owner thread is gone", bdev.name(), e.id);
    }
}
