//! How a reset reaches every channel: the `for_each_channel` walks of the
//! bdev's io_device (SPDK's `bdev_reset_freeze_channel`,
//! `bdev_reset_check_outstanding_io`, `bdev_unfreeze_channel`), what each
//! visit does to a channel, and what each walk's completion does next on
//! the resetting channel's thread. The steps themselves are in `reset`.

use super::channel::ChannelInner;
use super::device::Bdev;
use super::io::IoStatus;
use super::per_thread::{here, ThreadChannels};
use super::pool::State;
use super::reset_local::{Phase, ResetTable};
use crate::thread::{ChannelIter, IoChannel, Thread};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a draining reset checks the channels again (SPDK: every second).
const DRAIN_CHECK_PERIOD: Duration = Duration::from_millis(10);

/// The status a check walk stops with when a channel still has I/O.
const BUSY: i32 = -libc::EBUSY;

/// The live bdev channels of the thread being visited.
pub(super) fn chans(io: &IoChannel<ThreadChannels>) -> Vec<Rc<ChannelInner>> {
    io.ctx_mut().live::<ChannelInner>()
}

/// Channel `id` of `bdev` on the current thread.
pub(super) fn find(bdev: &Bdev, id: u64) -> Option<Rc<ChannelInner>> {
    let io = bdev.io_device.current_channel()?;
    chans(&io).into_iter().find(|c| c.id == id)
}

/// Walks every channel of `bdev` from thread `from` (the resetting
/// channel's) with `visit`, then runs `done(status)` there; `what` names
/// the step in a log line if no walk can start (then `done` runs at once,
/// with status 0).
pub(super) fn walk(
    bdev: &Arc<Bdev>,
    from: &Thread,
    what: &str,
    visit: impl Fn(&IoChannel<ThreadChannels>, ChannelIter<ThreadChannels>) + Send + Sync + 'static,
    done: impl FnOnce(i32) + Send + 'static,
) {
    let done = std::sync::Mutex::new(Some(done));
    let done = Arc::new(done);
    let d2 = done.clone();
    let r = from.enter(|| {
        bdev.io_device.for_each_channel(visit, move |st| {
            if let Some(f) = d2.lock().unwrap_or_else(|e| e.into_inner()).take() {
                f(st)
            }
        })
    });
    if let Err(e) = r {
        log::error!(
            "bdev {}: cannot walk its channels to {what}: {e}",
            bdev.name()
        );
        if let Some(f) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            f(0)
        }
    }
}

impl ChannelInner {
    /// A freeze walk's visit: from now on every submission here is
    /// aborted, and what waits here for the module is aborted now.
    pub(super) fn freeze(&self) {
        let ll = &self.lock_local;
        ll.frozen.set(true);
        ll.recompute_gate();
        self.abort_queued();
        // Splits stop issuing pieces; a parent with none in flight ends now.
        let mut pool = self.pool.borrow_mut();
        for s in pool.slots.iter_mut() {
            if s.state == State::SplitParent && s.status.is_success() {
                s.status = IoStatus::Aborted;
            }
        }
        let waiting: Vec<u32> = self.split_wait.borrow_mut().drain(..).collect();
        for p in waiting {
            self.continue_split(&mut pool, p);
        }
    }

    /// A thaw walk's visit: submissions go through again.
    pub(super) fn thaw(&self) {
        let ll = &self.lock_local;
        ll.frozen.set(false);
        ll.recompute_gate();
    }

    /// True while I/O of this channel is with the module (or being split,
    /// or waiting to be retried): what a draining reset waits for.
    pub(super) fn has_outstanding(&self) -> bool {
        self.pool
            .borrow()
            .slots
            .iter()
            .any(|s| matches!(s.state, State::InModule | State::NoMem | State::SplitParent))
    }

    /// Asks the module channels `rest` (this one first) to give back what
    /// they hold, then moves `it` on; stops at the first whose module is
    /// busy, to go on from its poll.
    pub(super) fn abort_held_then(rest: Vec<Rc<ChannelInner>>, it: ChannelIter<ThreadChannels>) {
        for (i, c) in rest.iter().enumerate() {
            let Ok(mut m) = c.module.try_borrow_mut() else {
                let left = rest[i + 1..]
                    .iter()
                    .map(|c| Rc::downgrade(c) as std::rc::Weak<dyn std::any::Any>)
                    .collect();
                *c.reset.parked.borrow_mut() = Some((left, it));
                c.lock_local.work.set(true);
                return;
            };
            m.abort_held();
        }
        it.continue_with(0)
    }

    /// The poll's part of a parked abort walk: this channel's module, then
    /// the rest of the thread's, then the walk goes on.
    pub(super) fn resume_abort(self: Rc<Self>) {
        let Some((left, it)) = self.reset.parked.borrow_mut().take() else {
            return;
        };
        let mut rest = vec![self];
        rest.extend(
            left.into_iter()
                .filter_map(|w| w.upgrade()?.downcast::<ChannelInner>().ok()),
        );
        Self::abort_held_then(rest, it);
    }
}

/// An abort walk's visit: every module channel of the thread gives back
/// what it holds.
pub(super) fn visit_abort(io: &IoChannel<ThreadChannels>, it: ChannelIter<ThreadChannels>) {
    ChannelInner::abort_held_then(chans(io), it);
}

/// Freezes every channel of `bdev`; then, on the resetting channel
/// `chan`'s thread, drains or goes to the module.
pub(super) fn start_freeze(bdev: &Arc<Bdev>, from: &Thread, chan: u64) {
    let b = bdev.clone();
    walk(
        bdev,
        from,
        "freeze them for a reset",
        |io, it| {
            for c in chans(io) {
                c.freeze();
            }
            it.continue_with(0)
        },
        move |_| {
            let Some(c) = find(&b, chan) else {
                return lost(&b);
            };
            match b.props.reset_io_drain_timeout {
                0 => c.reset_to_module(),
                secs => {
                    let deadline = Instant::now() + Duration::from_secs(secs.into());
                    c.set_phase(Phase::Draining {
                        deadline,
                        next_check: None,
                    });
                    start_check(&b, &c.home, chan);
                }
            }
        },
    );
}

/// Checks whether any channel of `bdev` still has I/O outstanding (SPDK's
/// `bdev_reset_check_outstanding_io`): none, and the reset succeeds
/// without reaching the module; some, and it checks again later or, its
/// time up, goes to the module.
pub(super) fn start_check(bdev: &Arc<Bdev>, from: &Thread, chan: u64) {
    let b = bdev.clone();
    walk(
        bdev,
        from,
        "check them for outstanding I/O",
        |io, it| {
            let busy = chans(io).iter().any(|c| c.has_outstanding());
            it.continue_with(if busy { BUSY } else { 0 })
        },
        move |st| {
            let Some(c) = find(&b, chan) else {
                return lost(&b);
            };
            let Some(Phase::Draining { deadline, .. }) =
                c.reset.run.borrow().as_ref().map(|r| r.phase)
            else {
                return;
            };
            if st == 0 {
                log::debug!(
                    "bdev {}: no I/O outstanding: reset done without the module",
                    b.name()
                );
                return c.end_reset(IoStatus::Success);
            }
            if Instant::now() >= deadline {
                return c.reset_to_module();
            }
            c.set_phase(Phase::Draining {
                deadline,
                next_check: Some(Instant::now() + DRAIN_CHECK_PERIOD),
            });
            c.lock_local.work.set(true);
        },
    );
}

/// The channels thawed: the reset `chan` drove completes here, and every
/// reset that waited for it completes on its own thread with its status.
pub(super) fn reset_done(bdev: &Arc<Bdev>, chan: u64, status: IoStatus) {
    let waiting = {
        let mut t = bdev.resets();
        t.running = false;
        std::mem::take(&mut t.waiting)
    };
    for w in waiting {
        let (b, chan, id) = (bdev.clone(), w.chan, w.id);
        let r = w.home.send_msg(move || {
            if let Some(c) = find(&b, chan) {
                c.complete_reset(id, status);
            }
        });
        if let Err(e) = r {
            log::warn!(
                "bdev {}: a waiting reset's thread is gone ({e})",
                bdev.name()
            );
        }
    }
    let Some(c) = find(bdev, chan) else {
        return;
    };
    let Some(run) = c.reset.run.borrow_mut().take() else {
        return;
    };
    c.complete_reset(run.id, status);
}

/// The resetting channel is gone (it cannot be while its reset holds it):
/// end the reset so the bdev is not left frozen.
pub(super) fn lost(bdev: &Arc<Bdev>) {
    log::error!(
        "bdev {}: the channel driving a reset is gone; thawing the channels",
        bdev.name()
    );
    let b = bdev.clone();
    walk(
        bdev,
        &here(),
        "thaw them after a reset",
        |io, it| {
            for c in chans(io) {
                c.thaw();
            }
            it.continue_with(0)
        },
        move |_| reset_done(&b, 0, IoStatus::Aborted),
    );
}

impl Bdev {
    /// Its reset table.
    pub(crate) fn resets(&self) -> std::sync::MutexGuard<'_, ResetTable> {
        self.resets.lock().unwrap_or_else(|e| e.into_inner())
    }
}
