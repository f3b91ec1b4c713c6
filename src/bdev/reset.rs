//! A bdev reset (SPDK's `spdk_bdev_reset`), done as SPDK's bdev.c does it,
//! with `for_each_channel` walks of the bdev's io_device:
//!
//! 1. freeze: every channel, on its own thread, is marked frozen (its gate
//!    word sends every submission to the slow path) and aborts what it
//!    queued and had not handed to the module: I/O waiting for NOMEM
//!    retry, for QoS quota, or for a request to split into;
//! 2. with [`BdevProps::reset_io_drain_timeout`](super::BdevProps) set,
//!    walks check every channel until the I/O outstanding there drained
//!    (the reset then succeeds without reaching the module) or the time is
//!    up; with it 0 (the default) the reset goes on at once;
//! 3. every module channel gives back, aborted, what it holds on purpose
//!    ([`ModuleChannel::abort_held`](super::ModuleChannel::abort_held)),
//!    then the reset goes to the module on the resetting channel; a module
//!    that does not complete it within
//!    [`BdevProps::module_reset_timeout`](super::BdevProps) fails it;
//! 4. thaw: every channel takes I/O again; the reset completes, and so do
//!    the resets asked for meanwhile, with its status.
//!
//! I/O submitted to a frozen channel completes `Aborted` (from the
//! channel's poll), as SPDK completes I/O submitted while
//! `BDEV_CH_RESET_IN_PROGRESS`. The resetting channel's poll drives the
//! timed steps; the channel lives until its resets complete.

use super::buf::IoData;
use super::channel::ChannelInner;
use super::device::Bdev;
use super::io::{IoId, IoStatus, IoType};
use super::ops::IoRequest;
use super::per_thread::{here, ThreadChannels};
use super::pool::{Cb, State};
use super::reset_local::{Phase, Run, Waiting};
use super::BdevError;
use crate::thread::{ChannelIter, IoChannel};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a draining reset checks the channels again (SPDK: every second).
const DRAIN_CHECK_PERIOD: Duration = Duration::from_millis(10);

/// The status a check walk stops with when a channel still has I/O.
const BUSY: i32 = -libc::EBUSY;

/// The live bdev channels of the thread being visited.
fn chans(io: &IoChannel<ThreadChannels>) -> Vec<Rc<ChannelInner>> {
    io.ctx_mut().live::<ChannelInner>()
}

/// Channel `id` of `bdev` on the current thread.
fn find(bdev: &Bdev, id: u64) -> Option<Rc<ChannelInner>> {
    let io = bdev.io_device.current_channel()?;
    chans(&io).into_iter().find(|c| c.id == id)
}

/// Walks every channel of `bdev` from the thread here with `visit`, then
/// runs `done(status)` here; `what` names the step in a log line if no
/// walk can start (then `done` runs at once, with status 0).
fn walk(
    bdev: &Arc<Bdev>,
    what: &str,
    visit: impl Fn(&IoChannel<ThreadChannels>, ChannelIter<ThreadChannels>) + Send + Sync + 'static,
    done: impl FnOnce(i32) + Send + 'static,
) {
    let done = std::sync::Mutex::new(Some(done));
    let done = Arc::new(done);
    let d2 = done.clone();
    let r = here().enter(|| {
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
    /// The slow submit path while frozen, and every reset: a reset starts
    /// (or waits for the one running); anything else completes `Aborted`.
    // The error tuple is large but only built when the pool is empty.
    #[allow(clippy::result_large_err)]
    #[cold]
    pub(crate) fn start_reset_or_abort(
        self: &Rc<Self>,
        io_type: IoType,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        let mut pool = self.pool.borrow_mut();
        let Some(idx) = pool.alloc() else {
            return Err((BdevError::NoMem, data, cb));
        };
        let now = self.stamp();
        let s = &mut pool.slots[idx as usize];
        s.arm(io_type, off, n, data, cb, now);
        let id = IoId::new(idx, s.gen);
        if io_type != IoType::Reset {
            self.complete_internal(&mut pool, idx, IoStatus::Aborted);
            return Ok(id);
        }
        s.state = State::Reset;
        drop(pool);
        self.reset
            .holds
            .borrow_mut()
            .push(self.clone() as Rc<dyn std::any::Any>);
        let first = {
            let mut t = self.bdev.resets();
            if t.running {
                t.waiting.push(Waiting {
                    home: self.home.handle(),
                    chan: self.id,
                    id,
                });
                false
            } else {
                t.running = true;
                true
            }
        };
        if first {
            *self.reset.run.borrow_mut() = Some(Run {
                id,
                phase: Phase::Freezing,
            });
            start_freeze(&self.bdev, self.id);
        }
        Ok(id)
    }

    /// A freeze walk's visit: from now on every submission here is
    /// aborted, and what waits here for the module is aborted now.
    fn freeze(&self) {
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
    fn thaw(&self) {
        let ll = &self.lock_local;
        ll.frozen.set(false);
        ll.recompute_gate();
    }

    /// True while I/O of this channel is with the module (or being split,
    /// or waiting to be retried): what a draining reset waits for.
    fn has_outstanding(&self) -> bool {
        self.pool
            .borrow()
            .slots
            .iter()
            .any(|s| matches!(s.state, State::InModule | State::NoMem | State::SplitParent))
    }

    /// The module reported on the reset it was handed (from the channel's
    /// completion handling): the channels thaw, then it completes.
    #[cold]
    pub(crate) fn reset_module_done(&self, idx: u32, status: IoStatus) {
        self.in_module.set(self.in_module.get() - 1);
        self.pool.borrow_mut().slots[idx as usize].state = State::Reset;
        // A module's NOMEM for a reset is not retried: the reset failed.
        let status = match status {
            IoStatus::NoMem => IoStatus::Failed,
            s => s,
        };
        self.end_reset(status);
    }

    /// The reset this channel drives ends with `status`: the thaw walk.
    fn end_reset(&self, status: IoStatus) {
        if let Some(r) = self.reset.run.borrow_mut().as_mut() {
            r.phase = Phase::Thawing;
        }
        let (b, chan) = (self.bdev.clone(), self.id);
        walk(
            &self.bdev,
            "thaw them after a reset",
            |io, it| {
                for c in chans(io) {
                    c.thaw();
                }
                it.continue_with(0)
            },
            move |_| reset_done(&b, chan, status),
        );
    }

    /// Completes this channel's reset request `id` with `status` (through
    /// the completion queue) and lets go of the reference it held.
    fn complete_reset(self: &Rc<Self>, id: IoId, status: IoStatus) {
        {
            let mut pool = self.pool.borrow_mut();
            let idx = id.index();
            match pool.slots.get(idx as usize) {
                Some(s) if s.gen == id.gen() && s.state == State::Reset => {
                    pool.slots[idx as usize].status = status;
                    self.complete_internal(&mut pool, idx, status);
                }
                _ => log::error!(
                    "bdev {}: reset {id:?} to complete is not pending",
                    self.bdev.name()
                ),
            }
        }
        let hold = self.reset.holds.borrow_mut().pop();
        // Only the resets' own references (and `self`) left: nobody polls
        // the channel any more, so its completions run now, before it goes.
        if Rc::strong_count(self) <= self.reset.holds.borrow().len() + 2
            && self.module.try_borrow_mut().is_ok()
        {
            drop(hold);
            self.poll();
        }
    }

    /// The resetting channel's timed steps, from its poll (lock work):
    /// the next drain check, the end of the drain wait, the module's
    /// deadline. Keeps the poll's work flag up while one is due.
    #[cold]
    pub(crate) fn reset_tick(&self) {
        if self.reset.parked.borrow().is_some() {
            if let Some(me) = self.me() {
                me.resume_abort();
            }
        }
        let Some((id, phase)) = self.reset.run.borrow().as_ref().map(|r| (r.id, r.phase)) else {
            return;
        };
        let now = Instant::now();
        match phase {
            Phase::Draining {
                deadline,
                next_check: Some(at),
            } => {
                if now >= deadline {
                    self.reset_to_module();
                } else if now >= at {
                    self.set_phase(Phase::Draining {
                        deadline,
                        next_check: None,
                    });
                    start_check(&self.bdev, self.id);
                } else {
                    self.lock_local.work.set(true);
                }
            }
            Phase::InModule {
                deadline: Some(deadline),
            } => {
                if now < deadline {
                    self.lock_local.work.set(true);
                    return;
                }
                log::error!(
                    "bdev {}: the module did not complete a reset within {:?}; failing it (its late completion will be ignored)",
                    self.bdev.name(),
                    self.bdev.props.module_reset_timeout.unwrap_or_default()
                );
                // Its late report finds the request no longer with the
                // module (or already completed) and is ignored as stale.
                self.pool.borrow_mut().slots[id.index() as usize].state = State::Reset;
                self.in_module.set(self.in_module.get() - 1);
                self.end_reset(IoStatus::Failed);
            }
            Phase::Submit => self.submit_reset(),
            _ => {}
        }
    }

    /// This channel, counted (found through its thread's io_channel, which
    /// works outside any thread too).
    fn me(&self) -> Option<Rc<ChannelInner>> {
        let io = self.io_ch.borrow();
        chans(io.as_ref()?).into_iter().find(|c| c.id == self.id)
    }

    fn set_phase(&self, phase: Phase) {
        if let Some(r) = self.reset.run.borrow_mut().as_mut() {
            r.phase = phase;
        }
    }

    /// After the freeze (or the drain wait): every module channel gives
    /// back what it holds, then the module gets the reset here.
    fn reset_to_module(&self) {
        self.set_phase(Phase::Aborting);
        let (b, chan) = (self.bdev.clone(), self.id);
        walk(
            &self.bdev,
            "abort what their modules hold",
            visit_abort,
            move |_| match find(&b, chan) {
                Some(c) => {
                    c.set_phase(Phase::Submit);
                    c.lock_local.work.set(true);
                }
                None => lost(&b),
            },
        );
    }

    /// Asks the module channels `rest` (this one first) to give back what
    /// they hold, then moves `it` on; stops at the first whose module is
    /// busy, to go on from its poll.
    fn abort_held_then(rest: Vec<Rc<ChannelInner>>, it: ChannelIter<ThreadChannels>) {
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
    fn resume_abort(self: Rc<Self>) {
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

    /// Hands the running reset to the module.
    fn submit_reset(&self) {
        let Some(id) = self.reset.run.borrow().as_ref().map(|r| r.id) else {
            return;
        };
        let deadline = self
            .bdev
            .props
            .module_reset_timeout
            .map(|d| Instant::now() + d);
        self.set_phase(Phase::InModule { deadline });
        if deadline.is_some() {
            self.lock_local.work.set(true);
        }
        let mut pool = self.pool.borrow_mut();
        let s = &mut pool.slots[id.index() as usize];
        s.state = State::ResetInModule;
        self.in_module.set(self.in_module.get() + 1);
        self.module.borrow_mut().submit_request(IoRequest {
            id,
            io_type: IoType::Reset,
            offset_blocks: 0,
            num_blocks: 0,
            block_size: self.block_size,
            data: &mut s.data,
            data_off: 0,
            whole: true,
        });
    }
}

/// An abort walk's visit: every module channel of the thread gives back
/// what it holds.
fn visit_abort(io: &IoChannel<ThreadChannels>, it: ChannelIter<ThreadChannels>) {
    ChannelInner::abort_held_then(chans(io), it);
}

/// Freezes every channel of `bdev`; then, on the resetting channel
/// `chan`'s thread, drains or goes to the module.
fn start_freeze(bdev: &Arc<Bdev>, chan: u64) {
    let b = bdev.clone();
    walk(
        bdev,
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
                    start_check(&b, chan);
                }
            }
        },
    );
}

/// Checks whether any channel of `bdev` still has I/O outstanding (SPDK's
/// `bdev_reset_check_outstanding_io`): none, and the reset succeeds
/// without reaching the module; some, and it checks again later or, its
/// time up, goes to the module.
fn start_check(bdev: &Arc<Bdev>, chan: u64) {
    let b = bdev.clone();
    walk(
        bdev,
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
fn reset_done(bdev: &Arc<Bdev>, chan: u64, status: IoStatus) {
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
fn lost(bdev: &Arc<Bdev>) {
    log::error!(
        "bdev {}: the channel driving a reset is gone; thawing the channels",
        bdev.name()
    );
    let b = bdev.clone();
    walk(
        bdev,
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
    pub(crate) fn resets(&self) -> std::sync::MutexGuard<'_, super::reset_local::ResetTable> {
        self.resets.lock().unwrap_or_else(|e| e.into_inner())
    }
}
