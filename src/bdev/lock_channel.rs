//! The channel's side of LBA range locks: I/O that a lock fences waits in
//! the channel's locked queue (SPDK's `io_locked`); the channel's poll
//! acknowledges new locks once its overlapping in-flight I/O drained, runs
//! the callbacks of locks it owns, and resubmits queued I/O, in order,
//! when a lock goes.
//!
//! None of this runs unless the channel's gate word says so: with no lock
//! anywhere on the bdev a submit pays one load and one branch.

use super::buf::IoData;
use super::channel::ChannelInner;
use super::io::{IoCompletion, IoId, IoStatus, IoType};
use super::ops::Done;
use super::pool::{Cb, Pool, State};
use super::range_lock::{self, LockEntry, LockEvent};
use super::{BdevError, Result};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;

/// What to do when a lock this channel owns is granted or fails.
pub(crate) enum LockCb {
    /// A user's callback ([`super::Desc::lock_lba_range`], quiesce).
    User(Box<dyn FnOnce(Result<()>)>),
    /// The layer's compare-and-write in pool slot `.0` waits for it.
    Caw(u32),
}

/// Channel-local lock state (never touched by other threads).
#[derive(Default)]
pub(crate) struct LockLocal {
    /// Requests waiting behind a lock, in submission order, each with the
    /// channel's range number when it was queued.
    pub queued: RefCell<VecDeque<(u32, u64)>>,
    /// Callbacks of locks this channel asked for, by lock id.
    pub cbs: RefCell<Vec<(u64, LockCb)>>,
}

impl ChannelInner {
    /// The slow submit path, taken when the gate word names this I/O type:
    /// a lock is held or being taken somewhere on the bdev, or the layer
    /// emulates compare-and-write.
    // The error tuple is large but only built when a submission is refused.
    #[allow(clippy::result_large_err)]
    #[cold]
    pub(crate) fn start_gated(
        &self,
        io_type: IoType,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        if io_type == IoType::CompareAndWrite && self.emulate_caw {
            return self.start_caw(off, n, data, cb);
        }
        if !self.locks.is_blocked(io_type, off, n) {
            return self.start(io_type, off, n, data, cb);
        }
        let mut pool = self.pool.borrow_mut();
        let Some(idx) = pool.alloc() else {
            return Err((BdevError::NoMem, data, cb));
        };
        let now = self.now.get();
        let s = &mut pool.slots[idx as usize];
        s.arm(io_type, off, n, data, cb, now);
        let id = IoId::new(idx, s.gen);
        s.state = State::Locked;
        let seq = self.locks.seq();
        self.lock_local.queued.borrow_mut().push_back((idx, seq));
        // Unlocking raises this channel's work flag; its poll drops the
        // lock and resubmits this request.
        Ok(id)
    }

    /// Starts a request already filled in (a queued one): split or to the module.
    pub(crate) fn dispatch(&self, pool: &mut Pool, idx: u32) {
        let s = &mut pool.slots[idx as usize];
        let (io_type, off, n) = (s.io_type, s.offset_blocks, s.num_blocks);
        let split = io_type.has_data()
            && ((self.max_rw != 0 && n > self.max_rw)
                || (self.boundary != 0 && off % self.boundary + n > self.boundary));
        if split {
            s.state = State::SplitParent;
            s.split_next = off;
            s.split_end = off + n;
            s.split_outstanding = 0;
            self.continue_split(pool, idx);
        } else {
            self.to_module(pool, idx);
        }
    }

    /// Finishes request `idx` with `status` through the completion queue
    /// (so its callback runs from poll, never inside the caller).
    pub(crate) fn complete_internal(&self, pool: &mut Pool, idx: u32, status: IoStatus) {
        let id = pool.id(idx);
        pool.slots[idx as usize].state = State::InModule;
        self.in_module.set(self.in_module.get() + 1);
        self.done.push(Done {
            id,
            status,
            has_data: false,
        });
    }

    /// True while I/O of this channel that `e` fences, overlapping it, is
    /// with the module (or being split). Queued and lock-waiting requests
    /// do not count: they have not touched the blocks.
    fn in_flight_overlapping(&self, pool: &Pool, e: &LockEntry) -> bool {
        pool.slots.iter().any(|s| {
            matches!(s.state, State::InModule | State::NoMem | State::SplitParent)
                && e.mask & s.io_type.bit() != 0
                && e.overlaps(s.offset_blocks, s.num_blocks)
        })
    }

    /// The poll's lock step: drop released locks and resubmit the queued
    /// I/O they held back, acknowledge new locks whose overlapping I/O
    /// drained, run owned locks' callbacks.
    #[cold]
    pub(crate) fn lock_work(&self) {
        let dropped = {
            let mut r = self.locks.ranges.lock().unwrap_or_else(|e| e.into_inner());
            let before = r.len();
            r.retain(|x| !x.entry.is_released());
            self.locks.recompute_gate(&r);
            r.len() != before
        };
        if dropped || self.bdev.is_removed() {
            self.resubmit_locked();
        }
        let mut acks = Vec::new();
        let waiting = {
            let mut r = self.locks.ranges.lock().unwrap_or_else(|e| e.into_inner());
            let pool = self.pool.borrow();
            let mut waiting = false;
            for x in r.iter_mut().filter(|x| !x.acked) {
                if self.in_flight_overlapping(&pool, &x.entry) {
                    waiting = true;
                } else {
                    x.acked = true;
                    acks.push(x.entry.clone());
                }
            }
            waiting
        };
        for e in &acks {
            range_lock::ack(e);
        }
        if waiting {
            self.locks.work.store(true, Ordering::Release);
        }
        for ev in self.locks.take_events() {
            self.lock_event(ev);
        }
    }

    fn lock_event(&self, ev: LockEvent) {
        let (id, res) = match ev {
            LockEvent::Granted(id) => (id, Ok(())),
            LockEvent::Failed(id, e) => (id, Err(e)),
        };
        let cb = {
            let mut cbs = self.lock_local.cbs.borrow_mut();
            cbs.iter()
                .position(|(i, _)| *i == id)
                .map(|i| cbs.swap_remove(i).1)
        };
        match cb {
            Some(LockCb::User(f)) => f(res),
            Some(LockCb::Caw(p)) => match res {
                Ok(()) => self.caw_granted(p),
                Err(_) => self.caw_abort(p),
            },
            None => log::warn!(
                "bdev {}: event for unknown range lock {id} ignored",
                self.bdev.name()
            ),
        }
    }

    /// Resubmits queued requests no lock fences any more, in order; aborts
    /// them all once the bdev is removed.
    fn resubmit_locked(&self) {
        let removed = self.bdev.is_removed();
        let n = self.lock_local.queued.borrow().len();
        for _ in 0..n {
            let Some((idx, seq)) = self.lock_local.queued.borrow_mut().pop_front() else {
                break;
            };
            let mut pool = self.pool.borrow_mut();
            if removed {
                self.complete_internal(&mut pool, idx, IoStatus::Aborted);
                continue;
            }
            let s = &pool.slots[idx as usize];
            if self
                .locks
                .still_blocked(s.io_type, s.offset_blocks, s.num_blocks, seq)
            {
                self.lock_local.queued.borrow_mut().push_back((idx, seq));
            } else {
                self.dispatch(&mut pool, idx);
            }
        }
    }

    /// The channel is going away: its locks end, lock callbacks it still
    /// holds get [`BdevError::LockCancelled`], and every request queued
    /// behind a lock, for QoS quota or in the layer's compare-and-write
    /// completes now with `Aborted` (its module channel, and any step in
    /// it, goes too).
    pub(crate) fn locks_on_drop(&self) {
        super::lock_end::drop_channel(&self.bdev, &self.locks);
        drop(self.locks.take_events());
        let cbs: Vec<(u64, LockCb)> = self.lock_local.cbs.borrow_mut().drain(..).collect();
        for (_, cb) in cbs {
            if let LockCb::User(f) = cb {
                f(Err(BdevError::LockCancelled {
                    bdev: self.bdev.name().into(),
                    why: "its channel was put",
                }));
            }
        }
        let mut doomed: Vec<u32> = self
            .lock_local
            .queued
            .borrow_mut()
            .drain(..)
            .map(|(idx, _)| idx)
            .collect();
        doomed.extend(
            self.pool
                .borrow()
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.state, State::CawParent | State::QosQueued))
                .map(|(i, _)| i as u32),
        );
        for idx in doomed {
            let mut pool = self.pool.borrow_mut();
            let s = &mut pool.slots[idx as usize];
            let cb = std::mem::replace(&mut s.cb, Cb::None);
            let (io_type, offset_blocks, num_blocks, submit_tick) =
                (s.io_type, s.offset_blocks, s.num_blocks, s.submit_tick);
            let data = std::mem::take(&mut s.data);
            pool.release(idx);
            drop(pool);
            match cb {
                Cb::Done(cb) => cb.io_done(IoCompletion {
                    status: IoStatus::Aborted,
                    io_type,
                    offset_blocks,
                    num_blocks,
                    data,
                    submit_tick,
                    complete_tick: self.now.get(),
                }),
                Cb::Waker(Some(w)) => w.wake(),
                _ => {}
            }
        }
    }
}
