//! Data buffers of commands: a small transfer (up to the larger of the
//! in-capsule data size and [`OWN_BUF_MIN`]) uses its slot's own buffer; a
//! larger one on an I/O queue borrows a buffer of the transport's shared
//! pool through the poll group's cache (SPDK's `num_shared_buffers` /
//! `buf_cache_size`). When none is free the command waits in the group's
//! queue — it does not fail — and the commands waiting are resumed in
//! arrival order as buffers come back. A pooled buffer goes back when its
//! slot is released (its data sent or written) or its connection dropped.

use super::conn::Conn;
use super::slot::SlotState;
use crate::bdev::IoBuf;
use crate::nvme::spec::status::generic;
use crate::nvmf::{BufCache, BufPool, Completion};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::sync::Arc;

/// The smallest transfer a slot's own buffer serves (SPDK's small iobuf
/// buffers are 8 KiB).
pub const OWN_BUF_MIN: usize = 8192;

/// A command waiting for a buffer.
struct Waiter {
    conn: Weak<RefCell<Conn>>,
    slot: u16,
    seq: u64,
}

/// A poll group's cache of shared buffers and its queue of waiting commands.
pub(super) struct GroupBufs {
    cache: BufCache,
    waiters: VecDeque<Waiter>,
    next_seq: u64,
}

impl GroupBufs {
    /// The group's side of `pool`.
    pub fn new(pool: Arc<BufPool>) -> Rc<RefCell<GroupBufs>> {
        Rc::new(RefCell::new(GroupBufs {
            cache: BufCache::new(pool),
            waiters: VecDeque::new(),
            next_seq: 1,
        }))
    }

    /// True when commands wait for a buffer.
    pub fn has_waiters(&self) -> bool {
        !self.waiters.is_empty()
    }

    /// Gives a pooled buffer back.
    pub fn put(&mut self, b: IoBuf) {
        self.cache.put(b);
    }
}

/// What asking for a command's data buffer came to.
pub(super) enum BufGot {
    /// The slot has its buffer.
    Ready,
    /// The command waits in the group's queue.
    Wait,
    /// No memory: the command fails.
    Failed,
}

impl Conn {
    /// Whether slot `i`'s transfer of `len` bytes takes a shared buffer:
    /// larger than the slot's own buffer serves, on an I/O queue, not
    /// half of a fused pair (whose halves must not wait on each other).
    fn takes_pooled(&self, i: u16, len: usize) -> bool {
        let own = (self.opts.in_capsule_data_size as usize).max(OWN_BUF_MIN);
        len > own
            && self.queue.as_ref().is_some_and(|q| q.qid != 0)
            && self.slots[i as usize].sqe.fuse() == 0
    }

    /// Gives slot `i` a data buffer of `len` bytes, or queues it for one.
    pub(super) fn data_buf(&mut self, i: u16, len: usize) -> BufGot {
        if !self.takes_pooled(i, len) {
            return match self.slots[i as usize].ensure_buf(len) {
                Ok(()) => BufGot::Ready,
                Err(_) => BufGot::Failed,
            };
        }
        let mut g = self.bufs.borrow_mut();
        if g.waiters.is_empty() {
            match g.cache.get() {
                Ok(Some(b)) => {
                    drop(g);
                    return match self.slots[i as usize].install_pooled(b, len) {
                        Ok(()) => BufGot::Ready,
                        Err(_) => BufGot::Failed,
                    };
                }
                Ok(None) => {}
                Err(e) => {
                    log::error!(
                        "nvmf/tcp: {}: no memory for a data buffer: {e}",
                        self.peer()
                    );
                    return BufGot::Failed;
                }
            }
        }
        let seq = g.next_seq;
        g.next_seq += 1;
        g.waiters.push_back(Waiter {
            conn: self.me.clone(),
            slot: i,
            seq,
        });
        g.cache.set_waiting(true);
        self.stats
            .pending_data_buffer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = &mut self.slots[i as usize];
        s.wait_seq = seq;
        s.state = SlotState::NeedBuffer;
        BufGot::Wait
    }

    /// A shared buffer for slot `i`, which waited for it: the command goes on.
    fn buffer_ready(&mut self, i: u16, b: IoBuf) {
        let s = &mut self.slots[i as usize];
        let len = s.xfer_len;
        if s.install_pooled(b, len).is_err() {
            return self.respond(i, Completion::generic(generic::INTERNAL_ERROR));
        }
        self.have_buffer(i);
    }

    /// Gives back slot `i`'s shared buffer, if it holds one.
    pub(super) fn return_pooled(&mut self, i: u16) {
        if let Some(b) = self.slots.get_mut(i as usize).and_then(|s| s.take_pooled()) {
            match self.bufs.try_borrow_mut() {
                Ok(mut g) => g.put(b),
                Err(_) => log::error!("nvmf/tcp: buffer cache busy; a shared buffer is freed"),
            }
        }
    }
}

/// Resumes the group's waiting commands, in order, while buffers are
/// free (at most as many as wait now); lets other groups have this
/// group's cached buffers while they wait. True when anything moved.
pub(super) fn resume_waiters(bufs: &Rc<RefCell<GroupBufs>>) -> bool {
    let mut busy = false;
    let n = bufs.borrow().waiters.len();
    for _ in 0..n {
        let Some((conn, slot, seq)) = bufs
            .borrow()
            .waiters
            .front()
            .map(|w| (w.conn.clone(), w.slot, w.seq))
        else {
            break;
        };
        let Some(conn) = conn.upgrade() else {
            bufs.borrow_mut().waiters.pop_front();
            continue;
        };
        let Ok(mut c) = conn.try_borrow_mut() else {
            break;
        };
        let live = !c.is_closed()
            && c.slots
                .get(slot as usize)
                .is_some_and(|s| s.state == SlotState::NeedBuffer && s.wait_seq == seq);
        if !live {
            bufs.borrow_mut().waiters.pop_front();
            continue;
        }
        let got = bufs.borrow_mut().cache.get();
        match got {
            Ok(Some(b)) => {
                bufs.borrow_mut().waiters.pop_front();
                c.buffer_ready(slot, b);
                busy = true;
            }
            Ok(None) => break,
            Err(e) => {
                bufs.borrow_mut().waiters.pop_front();
                log::error!("nvmf/tcp: {}: no memory for a data buffer: {e}", c.peer());
                c.respond(slot, Completion::generic(generic::INTERNAL_ERROR));
                busy = true;
            }
        }
    }
    let mut g = bufs.borrow_mut();
    if g.waiters.is_empty() {
        g.cache.set_waiting(false);
    }
    busy | g.cache.share_if_others_wait()
}
