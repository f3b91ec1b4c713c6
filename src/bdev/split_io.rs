//! Splitting: an I/O larger than the module's `max_rw_size`, or crossing
//! its optimal boundary, becomes a parent request whose pieces (children,
//! each a pooled request over a window of the parent's buffers) are issued
//! while requests are free; the rest follow as pieces complete. The parent
//! completes once, after its last piece, with the first error if any.

use super::channel::ChannelInner;
use super::io::IoStatus;
use super::ops::Done;
use super::pool::{Cb, Pool, State};

impl ChannelInner {
    /// Issues children of split parent `p` while requests are free.
    pub(crate) fn continue_split(&self, pool: &mut Pool, p: u32) {
        if pool.slots[p as usize].state != State::SplitParent {
            return;
        }
        loop {
            let ps = &pool.slots[p as usize];
            if ps.split_next >= ps.split_end || !ps.status.is_success() {
                break;
            }
            let (next, end, io_type, start) =
                (ps.split_next, ps.split_end, ps.io_type, ps.offset_blocks);
            let Some(c) = pool.alloc() else {
                let mut w = self.split_wait.borrow_mut();
                if !w.contains(&p) {
                    w.push_back(p);
                }
                return;
            };
            let mut n = end - next;
            if self.max_rw != 0 {
                n = n.min(self.max_rw);
            }
            if self.boundary != 0 {
                n = n.min(self.boundary - next % self.boundary);
            }
            let cs = &mut pool.slots[c as usize];
            cs.io_type = io_type;
            cs.offset_blocks = next;
            cs.num_blocks = n;
            cs.parent = p;
            cs.data_off = ((next - start) * self.block_size as u64) as usize;
            cs.cb = Cb::None;
            cs.status = IoStatus::Success;
            let ps = &mut pool.slots[p as usize];
            ps.split_next = next + n;
            ps.split_outstanding += 1;
            self.to_module(pool, c);
        }
        let ps = &pool.slots[p as usize];
        if ps.split_outstanding == 0 {
            // Nothing in flight and nothing more to issue (or an error stopped
            // it): the parent is finished. Complete it through the queue so
            // the callback never runs inside a submit call.
            let st = ps.status;
            let id = pool.id(p);
            pool.slots[p as usize].state = State::InModule;
            self.in_module.set(self.in_module.get() + 1);
            self.done.push(Done {
                id,
                status: st,
                has_data: false,
            });
        }
    }

    pub(crate) fn retry_split(&self) {
        let n = self.split_wait.borrow().len();
        for _ in 0..n {
            if self.pool.borrow().free_count() == 0 {
                return;
            }
            let Some(p) = self.split_wait.borrow_mut().pop_front() else {
                break;
            };
            let mut pool = self.pool.borrow_mut();
            self.continue_split(&mut pool, p);
        }
    }
}
