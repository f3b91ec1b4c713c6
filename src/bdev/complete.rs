//! Completing one request: a module's report comes back to its pooled
//! request, which is retried (NOMEM), credited to its split parent or to
//! a compare-and-write step, or finished for its caller — statistics,
//! then the callback, the future's wake, or the virtual bdev a request
//! passed through to this channel came from.

use super::buf::IoData;
use super::channel::ChannelInner;
use super::io::{IoCompletion, IoStatus};
use super::ops::Packed;
use super::pool::{Cb, Pool, State, NO_PARENT};
use std::cell::RefMut;

impl ChannelInner {
    /// Handles one module completion; returns 1 if a caller's I/O finished.
    ///
    /// The common report (a success without buffers for a caller's own
    /// request) is handled here with constants; the others go through
    /// [`ChannelInner::finish_other`].
    // Always inlined into the poll's one call: left to the heuristics it
    // was not, once the channel had reset code (+13 instructions per I/O).
    #[inline(always)]
    pub(crate) fn finish(&self, d: Packed) -> usize {
        if !d.is_plain_success() {
            return self.finish_report(d);
        }
        let mut pool = self.pool.borrow_mut();
        let idx = d.id.index();
        let Some(s) = pool.slots.get_mut(idx as usize) else {
            drop(pool);
            return self.unknown(d);
        };
        if s.gen != d.id.gen() || s.state != State::InModule {
            drop(pool);
            self.not_in_module(d);
            return 0;
        }
        self.in_module.set(self.in_module.get() - 1);
        if s.parent != NO_PARENT {
            return self.finish_other(pool, idx, IoStatus::Success, None);
        }
        self.progressed.set(true);
        self.deliver(pool, idx, IoStatus::Success)
    }

    /// [`ChannelInner::finish`] for a report with a status other than
    /// success, or one that hands buffers back (a copying module's read, a
    /// virtual bdev's forwarded request). Out of the plain success's way,
    /// so that one carries no buffers to drop.
    #[inline(never)]
    fn finish_report(&self, d: Packed) -> usize {
        // The buffers leave the queue with their report, whatever becomes of it.
        let data = if d.has_data() {
            self.done.take_data(d.id)
        } else {
            None
        };
        let mut pool = self.pool.borrow_mut();
        let idx = d.id.index();
        let Some(s) = pool.slots.get_mut(idx as usize) else {
            drop(pool);
            return self.unknown(d);
        };
        if s.gen != d.id.gen() || s.state != State::InModule {
            drop(pool);
            self.not_in_module(d);
            return 0;
        }
        self.in_module.set(self.in_module.get() - 1);
        // A caller's own request that succeeded and hands its buffers
        // back (a copying module's read, a virtual bdev's request
        // forwarded to its base): as common as the plain success.
        if s.parent == NO_PARENT && d.status().is_success() {
            if let Some(data) = data {
                s.data.put(data);
            }
            self.progressed.set(true);
            return self.deliver(pool, idx, IoStatus::Success);
        }
        self.finish_other(pool, idx, d.status(), data)
    }

    /// A report for a request id beyond the pool: logged and ignored.
    #[cold]
    #[inline(never)]
    fn unknown(&self, d: Packed) -> usize {
        log::error!(
            "bdev {}: completion for unknown request {:?} ignored",
            self.bdev.name(),
            d.id
        );
        0
    }

    /// A report for a request that is not with the module as an I/O: a
    /// reset the module completed, or a stale or doubled report (ignored).
    /// Out of line, so the common completion stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn not_in_module(&self, d: Packed) {
        let idx = d.id.index();
        let reset = {
            let pool = self.pool.borrow();
            let s = &pool.slots[idx as usize];
            s.gen == d.id.gen() && s.state == State::ResetInModule
        };
        if reset {
            self.reset_module_done(idx, d.status());
        } else {
            log::error!(
                "bdev {}: stale or doubled completion {:?} ignored",
                self.bdev.name(),
                d.id
            );
        }
    }

    /// The rest of [`ChannelInner::finish`] for a report that hands buffers
    /// back, comes from a split child, or says NOMEM: the buffers go back
    /// to their owner, then the request is queued for retry, credited to
    /// its parent, or finished as usual.
    #[cold]
    #[inline(never)]
    fn finish_other(
        &self,
        mut pool: RefMut<'_, Pool>,
        idx: u32,
        status: IoStatus,
        data: Option<IoData>,
    ) -> usize {
        let parent = pool.slots[idx as usize].parent;
        if let Some(data) = data {
            let owner = if parent == NO_PARENT { idx } else { parent };
            pool.slots[owner as usize].data.put(data);
        }
        let s = &mut pool.slots[idx as usize];
        if status == IoStatus::NoMem {
            if let Cb::Up(..) = s.cb {
                // Passed through: the virtual bdev's channel retries it (the
                // buffers to resubmit with are its own).
                return self.pass_nomem(pool, idx);
            }
            s.state = State::NoMem;
            self.nomem.borrow_mut().push_back(idx);
            return 0;
        }
        self.progressed.set(true);
        if parent != NO_PARENT {
            pool.release(idx);
            let ps = &mut pool.slots[parent as usize];
            ps.split_outstanding -= 1;
            if !status.is_success() && ps.status.is_success() {
                ps.status = status;
            }
            self.continue_split(&mut pool, parent);
            return 0;
        }
        self.deliver(pool, idx, status)
    }

    /// Finishes a caller's own request `idx` with `status`: statistics,
    /// then its callback, its future's wake or its compare-and-write step.
    #[inline(always)]
    fn deliver(&self, mut pool: RefMut<'_, Pool>, idx: u32, status: IoStatus) -> usize {
        let (slots, free) = pool.parts();
        let s = &mut slots[idx as usize];
        let now = self.completion_tick(s.batch_stamped);
        let bytes = s.num_blocks * self.block_size as u64;
        self.stat.record(
            s.io_type,
            bytes,
            now.saturating_sub(s.submit_tick),
            status.is_success(),
        );
        // The callback object first, kept apart from the other waiters:
        // one pointer test, where a match of every kind jumps through a table.
        if let Some(cb) = s.done.take() {
            // The slot is freed and the pool let go before the callback
            // runs (it may submit again). The completion is built where
            // the call reads it, field by field: nothing assembled
            // elsewhere is copied.
            s.release_own();
            free.push(idx, s);
            let c = IoCompletion {
                status,
                io_type: s.io_type,
                offset_blocks: s.offset_blocks,
                num_blocks: s.num_blocks,
                data: std::mem::take(&mut s.data),
                submit_tick: s.submit_tick,
                complete_tick: now,
            };
            drop(pool);
            cb.io_done(c);
            return 1;
        }
        let cb = std::mem::replace(&mut s.cb, Cb::None);
        match cb {
            Cb::Done(cb) => {
                // Never stored in `cb` (see `Slot::done`); handled the
                // same way all the same.
                pool.release(idx);
                let s = &mut pool.slots[idx as usize];
                let c = IoCompletion {
                    status,
                    io_type: s.io_type,
                    offset_blocks: s.offset_blocks,
                    num_blocks: s.num_blocks,
                    data: std::mem::take(&mut s.data),
                    submit_tick: s.submit_tick,
                    complete_tick: now,
                };
                drop(pool);
                cb.io_done(c)
            }
            Cb::Waker(w) => {
                s.status = status;
                s.state = State::AsyncDone;
                s.submit_tick = now.saturating_sub(s.submit_tick);
                drop(pool);
                if let Some(w) = w {
                    w.wake();
                }
            }
            Cb::Step(p) => {
                let data = std::mem::take(&mut s.data);
                self.caw_step_done(&mut pool, idx, p, status, data);
                return 0;
            }
            Cb::Up(link, up) => {
                let data = std::mem::take(&mut s.data);
                pool.release(idx);
                drop(pool);
                link.done(up, status, data);
            }
            Cb::None => pool.release(idx),
        }
        1
    }

    /// The base's module said NOMEM for a request passed through to it:
    /// freed here, not counted, and handed up for the virtual bdev's
    /// channel to retry.
    #[cold]
    #[inline(never)]
    fn pass_nomem(&self, mut pool: RefMut<'_, Pool>, idx: u32) -> usize {
        let s = &mut pool.slots[idx as usize];
        let cb = s.take_cb();
        let data = std::mem::take(&mut s.data);
        pool.release(idx);
        drop(pool);
        if let Cb::Up(link, up) = cb {
            link.done(up, IoStatus::NoMem, data);
        }
        0
    }
}
