//! Bdev-to-bdev pass-through: a virtual bdev hands a request it received
//! straight to its base bdev's module channel, as one cheap request of
//! the base's channel, instead of submitting a second full I/O through the
//! base's descriptor.
//!
//! The request keeps its buffers where they are (in the virtual bdev's
//! request: the base's module works on them in place), and the base's
//! channel keeps what it owes its bdev: the request takes one of its pooled
//! slots (so the base module sees a dense, unique id), counts as in flight
//! there (a reset of the base drains and aborts it, a range lock waits for
//! it), and is recorded in the base's statistics when it completes. Its
//! completion goes to the virtual bdev's [`PassDone`] instead of a
//! callback; NOMEM from the base's module is handed up too (the virtual
//! bdev's channel retries it), since the buffers to resubmit with are not
//! the base's.
//!
//! Whatever the base channel would treat specially is not passed: a frozen
//! channel (reset), a range lock or an emulated compare-and-write (its
//! gate), QoS, a split, a type it lacks, a write through a read-only
//! descriptor, a removed bdev, an empty pool. [`PassThrough::submit`] then
//! returns `false` and the caller takes the ordinary path.

use super::buf::{put_into, IoData};
use super::channel::Channel;
use super::desc::Desc;
use super::io::{IoId, IoStatus};
use super::ops::{Completer, IoRequest};
use super::pool::{Cb, State};
use super::{BdevError, Result};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the completion of a passed request goes: the virtual bdev's side.
/// Called once per passed request, on the thread, from the base channel's
/// poll, never inside [`PassThrough::submit`].
pub trait PassDone: 'static {
    /// Request `id` (the virtual bdev's own) finished at the base with
    /// `status`; `data` holds the buffers if the base's module took them
    /// ([`IoRequest::take_data`]), else [`IoData::None`] (they never
    /// left the request). `status` may be [`IoStatus::NoMem`]: the base
    /// had no resources, and the request should be retried.
    fn pass_done(&self, id: IoId, status: IoStatus, data: IoData);
}

/// The plain virtual bdev: the base's status is the request's.
impl PassDone for Completer {
    #[inline]
    fn pass_done(&self, id: IoId, status: IoStatus, data: IoData) {
        match data {
            IoData::None if status.is_success() => self.complete_ok(id),
            IoData::None => self.complete(id, status),
            d => self.complete_with_data(id, status, d),
        }
    }
}

/// What a passed request's base slot points back to: the virtual bdev's
/// completion and the count of its requests in flight at the base.
pub(crate) struct PassLink {
    up: Box<dyn PassDone>,
    inflight: Cell<u32>,
}

impl PassLink {
    /// The base finished upper request `id`.
    #[inline]
    pub(crate) fn done(&self, id: IoId, status: IoStatus, data: IoData) {
        self.inflight.set(self.inflight.get() - 1);
        self.up.pass_done(id, status, data);
    }
}

/// One thread's pass-through from a virtual bdev to its base: the base's
/// descriptor and this thread's channel to it. Made once per virtual-bdev
/// channel; submitting through it allocates nothing.
pub struct PassThrough {
    ch: Channel,
    link: Rc<PassLink>,
    write: bool,
}

impl PassThrough {
    /// A pass-through to `desc`'s bdev on `ch` (a channel of that bdev on
    /// this thread); completions go to `up`.
    pub fn new(desc: &Desc, ch: Channel, up: Box<dyn PassDone>) -> Result<PassThrough> {
        if !Arc::ptr_eq(&ch.0.bdev, &desc.inner.bdev) {
            return Err(BdevError::WrongChannel {
                desc: desc.inner.bdev.name().into(),
                channel: ch.0.bdev.name().into(),
            });
        }
        Ok(PassThrough {
            ch,
            write: desc.inner.write,
            link: Rc::new(PassLink {
                up,
                inflight: Cell::new(0),
            }),
        })
    }

    /// The base channel.
    pub fn channel(&self) -> &Channel {
        &self.ch
    }

    /// Passed requests the base has not finished yet.
    pub fn in_flight(&self) -> u32 {
        self.link.inflight.get()
    }

    /// Hands `io` to the base's module as `num_blocks` base blocks at
    /// `offset_blocks` (the same bytes as `io`), with `io`'s own buffers,
    /// and returns `true`: its completion goes to this pass-through's
    /// [`PassDone`] with `io.id`. Returns `false`, touching nothing, when
    /// the base channel must see the I/O whole (see the module's notes) or
    /// the geometry does not match: the caller then submits it through the
    /// base's descriptor, which applies every rule.
    #[must_use]
    #[inline]
    pub fn submit(&self, io: &mut IoRequest<'_>, offset_blocks: u64, num_blocks: u64) -> bool {
        let c = &*self.ch.0;
        let t = io.io_type;
        if c.lock_local.gate.get() & t.bit() != 0
            || c.qos_on.get()
            || c.supported & t.bit() == 0
            || (t.is_write() && !self.write)
        {
            return false;
        }
        if t.has_data()
            && ((c.max_rw != 0 && num_blocks > c.max_rw)
                || (c.boundary != 0 && offset_blocks % c.boundary + num_blocks > c.boundary))
        {
            return false;
        }
        let end = offset_blocks.checked_add(num_blocks);
        if num_blocks == 0
            || end.map_or(true, |e| e > c.bdev.num_blocks())
            || num_blocks * c.block_size as u64 != io.num_blocks * io.block_size as u64
            || c.bdev.is_removed()
        {
            return false;
        }
        let Ok(mut module) = c.module.try_borrow_mut() else {
            return false;
        };
        let id = {
            let Ok(mut pool) = c.pool.try_borrow_mut() else {
                return false;
            };
            let Some(idx) = pool.alloc() else {
                return false;
            };
            let s = &mut pool.slots[idx as usize];
            s.io_type = t;
            s.offset_blocks = offset_blocks;
            s.num_blocks = num_blocks;
            put_into(&mut s.cb, Cb::Up(self.link.clone(), io.id), |old| {
                matches!(old, Cb::None)
            });
            // Timed from the virtual bdev's submission (no clock read of
            // its own), to the start of the base's poll that reaps it: that
            // read is never older than this submission.
            s.submit_tick = io.submit_tick;
            s.batch_stamped = true;
            s.status = IoStatus::Success;
            s.state = State::InModule;
            IoId::new(idx, s.gen)
        };
        c.in_module.set(c.in_module.get() + 1);
        self.link.inflight.set(self.link.inflight.get() + 1);
        module.submit_request(IoRequest {
            id,
            io_type: t,
            offset_blocks,
            num_blocks,
            block_size: c.block_size,
            data: &mut *io.data,
            data_off: io.data_off,
            whole: io.whole,
            submit_tick: io.submit_tick,
        });
        true
    }

    /// For the virtual bdev's [`ModuleChannel::shutdown`](super::ModuleChannel::shutdown):
    /// polls the base channel until every passed request is finished (a
    /// bounded number of times, for at most a second). Returns `false` if
    /// some are not: the base's device may still use their buffers, which
    /// the virtual bdev's channel must then never free.
    pub fn drain(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(1);
        for _ in 0..100_000 {
            if self.in_flight() == 0 {
                return true;
            }
            // Not from inside the base channel's own poll or submit.
            let c = &*self.ch.0;
            let busy = c.module.try_borrow_mut().is_err() || c.pool.try_borrow_mut().is_err();
            if busy || Instant::now() > deadline {
                break;
            }
            self.ch.poll();
        }
        let left = self.in_flight();
        if left > 0 {
            log::error!(
                "bdev {}: {left} passed-through requests still in flight as the virtual bdev's channel closes",
                self.ch.0.bdev.name()
            );
        }
        left == 0
    }
}
