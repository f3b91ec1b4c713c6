//! Completing one request: a module's report comes back to its pooled
//! request, which is retried (NOMEM), credited to its split parent or to
//! a compare-and-write step, or finished for its caller — statistics,
//! then the callback or the future's wake.

use super::channel::ChannelInner;
use super::io::{IoCompletion, IoStatus};
use super::ops::Packed;
use super::pool::{Cb, State, NO_PARENT};

impl ChannelInner {
    /// Handles one module completion; returns 1 if a caller's I/O finished.
    #[inline]
    pub(crate) fn finish(&self, d: Packed) -> usize {
        let mut pool = self.pool.borrow_mut();
        let idx = d.id.index();
        // The buffers leave the queue with their report, whatever becomes of it.
        let data = if d.has_data() {
            self.done.pop_data()
        } else {
            None
        };
        let Some(s) = pool.slots.get_mut(idx as usize) else {
            log::error!(
                "bdev {}: completion for unknown request {:?} ignored",
                self.bdev.name(),
                d.id
            );
            return 0;
        };
        if s.gen != d.id.gen() || s.state != State::InModule {
            log::error!(
                "bdev {}: stale or doubled completion {:?} ignored",
                self.bdev.name(),
                d.id
            );
            return 0;
        }
        self.in_module.set(self.in_module.get() - 1);
        let status = d.status();
        let parent = s.parent;
        if let Some(data) = data {
            if parent == NO_PARENT {
                s.data.put(data);
            } else {
                pool.slots[parent as usize].data.put(data);
            }
        }
        let s = &mut pool.slots[idx as usize];
        if status == IoStatus::NoMem {
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
        let now = self.now.get();
        let ok = status.is_success();
        let bytes = s.num_blocks * self.block_size as u64;
        self.stat
            .record(s.io_type, bytes, now.saturating_sub(s.submit_tick), ok);
        match std::mem::replace(&mut s.cb, Cb::None) {
            Cb::Done(cb) => {
                let (io_type, offset_blocks, num_blocks, submit_tick) =
                    (s.io_type, s.offset_blocks, s.num_blocks, s.submit_tick);
                let data = std::mem::take(&mut s.data);
                pool.release(idx);
                drop(pool);
                // Built in the call, from registers: a completion assembled
                // earlier and copied here would be read back wider than its
                // small fields were written (a store-forwarding stall).
                cb.io_done(IoCompletion {
                    status,
                    io_type,
                    offset_blocks,
                    num_blocks,
                    data,
                    submit_tick,
                    complete_tick: now,
                });
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
            Cb::None => pool.release(idx),
        }
        1
    }
}
