//! Compare-and-write emulated by the bdev layer, as SPDK does for modules
//! without a native one: lock the blocks on every channel of the bdev,
//! compare (the module's Compare, or a Read and a memcmp), write when
//! equal, unlock. A difference completes with `IoStatus::Miscompare` and
//! writes nothing. Because the lock fences every writer of every thread
//! (including this channel's own other writes), the sequence is atomic
//! against all writes and compare-and-writes to those blocks.
//!
//! The request occupies two pool slots from submission on: the parent,
//! which holds the caller's `[compare, write]` buffers and callback, and
//! one step request that carries a buffer to the module for each step and
//! brings it back. The parent's `split_next` holds the step's slot index
//! and `split_end` the lock id (a compare-and-write is never split).
//! The steps are real requests of the channel, so its statistics count
//! them (a compare or read, then a write) besides the compare-and-write.

use super::buf::{IoBuf, IoData};
use super::channel::ChannelInner;
use super::io::{IoId, IoStatus, IoType};
use super::lock_end;
use super::lock_local::LockCb;
use super::pool::{Cb, Pool, State, NO_PARENT};
use super::range_lock::{LockRequest, WRITE_MASK};
use super::BdevError;

fn empty() -> IoBuf {
    IoBuf::from_vec(Vec::new())
}

/// Moves half `i` (0 compare, 1 write) out of a compare-and-write's data.
fn take_half(data: &mut IoData, i: usize) -> IoBuf {
    match data {
        IoData::CompareWrite(b) => std::mem::replace(&mut b[i], empty()),
        _ => empty(),
    }
}

fn put_half(data: &mut IoData, i: usize, buf: IoBuf) {
    if let IoData::CompareWrite(b) = data {
        b[i] = buf;
    }
}

impl ChannelInner {
    /// Starts an emulated compare-and-write: reserves its two requests and
    /// asks for the range lock; the rest runs from poll.
    // The error tuple is large but only built when a submission is refused.
    #[allow(clippy::result_large_err)]
    pub(crate) fn start_caw(
        &self,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        if !matches!(data, IoData::CompareWrite(_)) {
            let e = BdevError::InvalidParam(format!(
                "compare-and-write on '{}' needs [compare, write] buffers (IoData::CompareWrite)",
                self.bdev.name()
            ));
            return Err((e, data, cb));
        }
        let mut pool = self.pool.borrow_mut();
        if pool.free_count() < 2 {
            return Err((BdevError::NoMem, data, cb));
        }
        let (Some(p), Some(c)) = (pool.alloc(), pool.alloc()) else {
            return Err((BdevError::NoMem, data, cb));
        };
        pool.slots[c as usize].state = State::Reserved;
        let now = self.stamp();
        let s = &mut pool.slots[p as usize];
        s.arm(IoType::CompareAndWrite, off, n, data, cb, now);
        let id = IoId::new(p, s.gen);
        s.state = State::CawParent;
        s.split_next = c as u64;
        drop(pool);
        let req = LockRequest {
            offset: off,
            len: n,
            mask: WRITE_MASK,
            owner_passes: false,
            desc_id: 0,
        };
        match lock_end::request(self, req) {
            Ok(lock_id) => {
                self.pool.borrow_mut().slots[p as usize].split_end = lock_id;
                self.lock_local
                    .cbs
                    .borrow_mut()
                    .push((lock_id, LockCb::Caw(p)));
                Ok(id)
            }
            Err(e) => {
                let mut pool = self.pool.borrow_mut();
                let s = &mut pool.slots[p as usize];
                let (data, cb) = (std::mem::take(&mut s.data), s.take_cb());
                pool.release(c);
                pool.release(p);
                Err((e, data, cb))
            }
        }
    }

    /// The lock of parent `p` is held: start the compare step.
    pub(crate) fn caw_granted(&self, p: u32) {
        let mut pool = self.pool.borrow_mut();
        let ps = &mut pool.slots[p as usize];
        let (c, off, n) = (ps.split_next as u32, ps.offset_blocks, ps.num_blocks);
        let (io_type, buf) = if self.native_compare {
            (IoType::Compare, take_half(&mut ps.data, 0))
        } else {
            let len = (n * self.block_size as u64) as usize;
            (IoType::Read, IoBuf::new(len))
        };
        self.caw_issue(&mut pool, p, c, io_type, off, n, buf);
    }

    #[allow(clippy::too_many_arguments)]
    fn caw_issue(
        &self,
        pool: &mut Pool,
        p: u32,
        c: u32,
        io_type: IoType,
        off: u64,
        n: u64,
        buf: IoBuf,
    ) {
        let now = self.now.get();
        let cs = &mut pool.slots[c as usize];
        cs.io_type = io_type;
        cs.offset_blocks = off;
        cs.num_blocks = n;
        cs.data = IoData::Buf(buf);
        cs.cb = Cb::Step(p);
        cs.submit_tick = now;
        cs.batch_stamped = true;
        cs.status = IoStatus::Success;
        cs.parent = NO_PARENT;
        self.to_module(pool, c);
    }

    /// Step request `c` of parent `p` finished with `status`; its buffer is
    /// `data`. Called by the completion path with `c` still allocated.
    pub(crate) fn caw_step_done(
        &self,
        pool: &mut Pool,
        c: u32,
        p: u32,
        status: IoStatus,
        data: IoData,
    ) {
        let step = pool.slots[c as usize].io_type;
        let buf = data.into_buf().unwrap_or_else(empty);
        let ps = &mut pool.slots[p as usize];
        let (off, n) = (ps.offset_blocks, ps.num_blocks);
        let next = match step {
            IoType::Compare => {
                put_half(&mut ps.data, 0, buf);
                status
            }
            IoType::Read if status.is_success() => {
                let equal = match &ps.data {
                    IoData::CompareWrite(b) => b[0][..] == buf[..],
                    _ => false,
                };
                if equal {
                    IoStatus::Success
                } else {
                    IoStatus::Miscompare
                }
            }
            IoType::Write => {
                put_half(&mut ps.data, 1, buf);
                self.caw_finish(pool, p, c, status);
                return;
            }
            _ => status,
        };
        if next.is_success() {
            let w = take_half(&mut pool.slots[p as usize].data, 1);
            pool.slots[c as usize].state = State::Reserved;
            self.caw_issue(pool, p, c, IoType::Write, off, n, w);
        } else {
            self.caw_finish(pool, p, c, next);
        }
    }

    /// Unlocks and completes parent `p` with `status`.
    fn caw_finish(&self, pool: &mut Pool, p: u32, c: u32, status: IoStatus) {
        lock_end::release(&self.bdev, pool.slots[p as usize].split_end);
        pool.release(c);
        self.complete_internal(pool, p, status);
    }

    /// The lock of parent `p` will never come (bdev removed): complete it
    /// with `Aborted`, having written nothing.
    pub(crate) fn caw_abort(&self, p: u32) {
        let mut pool = self.pool.borrow_mut();
        let c = pool.slots[p as usize].split_next as u32;
        pool.release(c);
        self.complete_internal(&mut pool, p, IoStatus::Aborted);
    }
}
