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
use super::io::{IoId, IoStatus, IoType};
use super::ops::IoRequest;
use super::pool::{Cb, State};
use super::reset_local::{Phase, Run, Waiting};
use super::reset_walk::{
    chans, find, lost, reset_done, start_check, start_freeze, visit_abort, walk,
};
use super::BdevError;
use std::rc::Rc;
use std::time::Instant;

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
            start_freeze(&self.bdev, &self.home, self.id);
        }
        Ok(id)
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
    pub(super) fn end_reset(&self, status: IoStatus) {
        if let Some(r) = self.reset.run.borrow_mut().as_mut() {
            r.phase = Phase::Thawing;
        }
        let (b, chan) = (self.bdev.clone(), self.id);
        walk(
            &self.bdev,
            &self.home,
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
    pub(super) fn complete_reset(self: &Rc<Self>, id: IoId, status: IoStatus) {
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
                    start_check(&self.bdev, &self.home, self.id);
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

    pub(super) fn set_phase(&self, phase: Phase) {
        if let Some(r) = self.reset.run.borrow_mut().as_mut() {
            r.phase = phase;
        }
    }

    /// After the freeze (or the drain wait): every module channel gives
    /// back what it holds, then the module gets the reset here.
    pub(super) fn reset_to_module(&self) {
        self.set_phase(Phase::Aborting);
        let (b, chan) = (self.bdev.clone(), self.id);
        walk(
            &self.bdev,
            &self.home,
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
            submit_tick: s.submit_tick,
        });
    }
}
