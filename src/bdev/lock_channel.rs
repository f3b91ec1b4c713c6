//! The channel's side of LBA range locks: I/O that a lock fences waits in
//! the channel's locked queue (SPDK's `io_locked`); a lock walk's visit
//! adds a lock (and waits here until the overlapping in-flight I/O
//! drained) or drops ended ones and resubmits queued I/O, in order; the
//! channel's poll moves waiting walks on and runs the callbacks of locks
//! it owns.
//!
//! None of this runs unless the channel's own gate word says so: with no
//! lock on the bdev a submit pays one load of a field of its channel and
//! one branch, and a poll one flag of its channel.

use super::buf::IoData;
use super::channel::ChannelInner;
use super::io::{IoCompletion, IoId, IoStatus, IoType};
use super::lock_local::LockCb;
use super::lock_local::{ChanRange, DrainWait};
use super::ops::Done;
use super::pool::{Cb, Pool, State};
use super::range_lock::{LockEntry, LockEvent};
use super::BdevError;
use std::sync::Arc;

impl ChannelInner {
    /// The slow submit path, taken when the gate word names this I/O type:
    /// a lock is held or being taken somewhere on the bdev, or the layer
    /// emulates compare-and-write.
    // The error tuple is large but only built when a submission is refused.
    #[allow(clippy::result_large_err)]
    #[cold]
    pub(crate) fn start_gated(
        self: &std::rc::Rc<Self>,
        io_type: IoType,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        if io_type == IoType::Reset || self.lock_local.frozen.get() {
            return self.start_reset_or_abort(io_type, off, n, data, cb);
        }
        if io_type == IoType::CompareAndWrite && self.emulate_caw {
            return self.start_caw(off, n, data, cb);
        }
        if !self.lock_local.is_blocked(self.id, io_type, off, n) {
            return self.start(io_type, off, n, data, cb);
        }
        let (idx, id) = self.take_waiting(io_type, off, n, data, cb, State::Locked)?;
        let seq = self.lock_local.seq();
        self.lock_local.queued.borrow_mut().push_back((idx, seq));
        // Unlocking raises this channel's work flag; its poll drops the
        // lock and resubmits this request.
        Ok(id)
    }

    /// Takes a request from the pool for an I/O that waits before it
    /// starts (for a range lock, for QoS quota): arms it and leaves it in
    /// `state`; returns its index and id. With the pool empty the I/O is
    /// handed back with `NoMem`.
    // The error tuple is large but only built when the pool is empty.
    #[allow(clippy::result_large_err)]
    pub(crate) fn take_waiting(
        &self,
        io_type: IoType,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
        state: State,
    ) -> std::result::Result<(u32, IoId), (BdevError, IoData, Cb)> {
        let mut pool = self.pool.borrow_mut();
        let Some(idx) = pool.alloc() else {
            return Err((BdevError::NoMem, data, cb));
        };
        let now = self.stamp();
        let s = &mut pool.slots[idx as usize];
        s.arm(io_type, off, n, data, cb, now);
        s.state = state;
        Ok((idx, IoId::new(idx, s.gen)))
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
    fn in_flight_overlapping(&self, e: &LockEntry) -> bool {
        self.pool.borrow().slots.iter().any(|s| {
            matches!(s.state, State::InModule | State::NoMem | State::SplitParent)
                && e.mask & s.io_type.bit() != 0
                && e.overlaps(s.offset_blocks, s.num_blocks)
        })
    }

    /// A lock walk's visit: this channel holds lock `e` from now on (its
    /// gate sends fenced I/O to the slow path). Returns true when none of
    /// its overlapping I/O is in flight (the walk may go on).
    pub(crate) fn take_range(&self, e: &Arc<LockEntry>) -> bool {
        self.drop_released();
        if e.is_released() {
            return true;
        }
        let ll = &self.lock_local;
        let drained = !self.in_flight_overlapping(e);
        {
            let mut r = ll.ranges.borrow_mut();
            match r.iter_mut().find(|x| Arc::ptr_eq(&x.entry, e)) {
                // Got at creation from the table: it has nothing older in flight.
                Some(x) => x.acked |= drained,
                None => {
                    let seq = ll.next_seq();
                    r.push(ChanRange {
                        entry: e.clone(),
                        acked: drained,
                        seq,
                    });
                }
            }
        }
        ll.recompute_gate();
        drained
    }

    /// Keeps a lock walk here until this channel's overlapping I/O drained.
    pub(crate) fn park(&self, w: DrainWait) {
        self.lock_local.drains.borrow_mut().push(w);
        self.lock_local.work.set(true);
    }

    /// Lock `e` no longer waits for this channel's I/O: true when drained
    /// (or ended); marks the range drained here.
    fn drained_for(&self, e: &Arc<LockEntry>) -> bool {
        if !e.is_released() && self.in_flight_overlapping(e) {
            return false;
        }
        if let Some(x) = self
            .lock_local
            .ranges
            .borrow_mut()
            .iter_mut()
            .find(|x| Arc::ptr_eq(&x.entry, e))
        {
            x.acked = true;
        }
        true
    }

    /// Moves a drained walk on: to the next channel of this thread still
    /// draining, or to the next thread.
    fn move_on(w: DrainWait) {
        let DrainWait { iter, entry, rest } = w;
        let mut rest = rest.into_iter();
        while let Some(c) = rest.next() {
            let Some(c) = c.upgrade().and_then(|c| c.downcast::<ChannelInner>().ok()) else {
                continue;
            };
            if !c.drained_for(&entry) {
                c.park(DrainWait {
                    iter,
                    entry,
                    rest: rest.collect(),
                });
                return;
            }
        }
        iter.continue_with(0);
    }

    /// Drops the locks that ended; the channel's next poll resubmits, in
    /// order, the I/O queued behind them (or aborts it all once the bdev
    /// is removed).
    pub(crate) fn drop_released(&self) {
        let ll = &self.lock_local;
        let dropped = {
            let mut r = ll.ranges.borrow_mut();
            let before = r.len();
            r.retain(|x| !x.entry.is_released());
            r.len() != before
        };
        if dropped {
            ll.recompute_gate();
        }
        if (dropped || self.bdev.is_removed()) && !ll.queued.borrow().is_empty() {
            ll.resubmit.set(true);
            ll.work.set(true);
        }
    }

    /// The poll's lock step, taken only when a visit or a delivery left
    /// work: resubmit I/O whose locks ended, move on the walks whose
    /// overlapping I/O drained, run owned locks' callbacks.
    #[cold]
    pub(crate) fn lock_work(&self) {
        let ll = &self.lock_local;
        ll.work.set(false);
        if ll.resubmit.replace(false) {
            self.resubmit_locked();
        }
        if self.reset.run.borrow().is_some() || self.reset.parked.borrow().is_some() {
            self.reset_tick();
        }
        let parked = std::mem::take(&mut *ll.drains.borrow_mut());
        for w in parked {
            if self.drained_for(&w.entry) {
                Self::move_on(w);
            } else {
                ll.drains.borrow_mut().push(w);
            }
        }
        if !ll.drains.borrow().is_empty() {
            ll.work.set(true);
        }
        loop {
            let Some(ev) = ll.events.borrow_mut().pop_front() else {
                break;
            };
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
            if removed || self.lock_local.frozen.get() {
                self.complete_internal(&mut pool, idx, IoStatus::Aborted);
                continue;
            }
            let s = &pool.slots[idx as usize];
            if self
                .lock_local
                .still_blocked(self.id, s.io_type, s.offset_blocks, s.num_blocks, seq)
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
        super::lock_end::drop_channel(&self.bdev, self.id);
        self.lock_local.events.borrow_mut().clear();
        // Walks waiting here go on: this channel's I/O goes with it.
        let parked = std::mem::take(&mut *self.lock_local.drains.borrow_mut());
        for w in parked {
            Self::move_on(w);
        }
        self.lock_local.ranges.borrow_mut().clear();
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
            let cb = s.take_cb();
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
