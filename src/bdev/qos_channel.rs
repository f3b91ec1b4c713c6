//! The channel's side of QoS: a read or write over its bdev's quota waits
//! in the channel's QoS queue, in order, and the channel's poll releases
//! it once a new slice gives quota (see `qos`). Also the bdev's calls to
//! set and read the limits.

use super::buf::IoData;
use super::channel::ChannelInner;
use super::device::Bdev;
use super::io::{IoId, IoStatus, IoType};
use super::per_thread;
use super::pool::{Cb, State};
use super::qos::QosLimits;
use super::ticks::ticks;
use super::BdevError;
use crate::thread::Thread;
use std::sync::atomic::Ordering;

impl Bdev {
    /// Sets the bdev's rate limits (`spdk_bdev_set_qos_rate_limits`):
    /// `None` keeps a limit, `Some(0)` removes it. IOPS limits are rounded
    /// up to a multiple of 1000 as SPDK rounds them; MiB/s limits are
    /// whole MiB already. Returns the limits in force.
    ///
    /// Each channel learns whether the bdev has limits from a walk over
    /// its channels (on their own threads), as SPDK's `bdev_enable_qos`
    /// and `bdev_disable_qos` set the channels' QoS flag; the submit path
    /// reads only its channel's switch. The channels of the calling thread
    /// (and those made outside any thread on this OS thread) switch at
    /// once, so I/O the caller submits next is limited.
    pub fn set_qos_limits(&self, limits: [Option<u64>; 4]) -> QosLimits {
        let was = self.qos.enabled.load(Ordering::Relaxed);
        let now = self.qos.set(limits, ticks());
        let on = self.qos.enabled.load(Ordering::Relaxed);
        if on != was {
            let mut local = vec![per_thread::host_thread()];
            local.extend(Thread::current());
            for t in local {
                if let Some(io) = t.enter(|| self.io_device.current_channel()) {
                    for c in io.ctx_mut().live::<ChannelInner>() {
                        c.set_qos_on(on);
                    }
                }
            }
            let r = per_thread::here().enter(|| {
                self.io_device.for_each_channel(
                    |io, it| {
                        for c in io.ctx_mut().live::<ChannelInner>() {
                            c.set_qos_on(c.bdev.qos.enabled.load(Ordering::Relaxed));
                        }
                        it.continue_with(0)
                    },
                    |_| {},
                )
            });
            if let Err(e) = r {
                log::error!(
                    "bdev {}: QoS switch not sent to its channels: {e}",
                    self.name()
                );
            }
        }
        now
    }

    /// The rate limits in force (0 = none), as `bdev_get_bdevs` shows them.
    pub fn qos_limits(&self) -> QosLimits {
        self.qos.limits()
    }
}

impl ChannelInner {
    /// The submit path while the bdev has rate limits: the I/O starts now
    /// if nothing waits before it and the quota allows; otherwise it waits
    /// in the QoS queue.
    // The error tuple is large but only built when the pool is empty.
    #[allow(clippy::result_large_err)]
    #[cold]
    pub(crate) fn start_qos(
        &self,
        io_type: IoType,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        let bytes = n.saturating_mul(u64::from(self.block_size));
        let queued = !self.qos_queue.borrow().is_empty();
        if !queued && self.bdev.qos.try_take(io_type, bytes) {
            return self.start_now(io_type, off, n, data, cb);
        }
        let (idx, id) = self.take_waiting(io_type, off, n, data, cb, State::QosQueued)?;
        self.qos_queue.borrow_mut().push_back(idx);
        if queued {
            // Older requests get the quota first, then this one.
            self.qos_release();
        }
        Ok(id)
    }

    /// The poll's QoS step: refills the bdev's quota when a slice ended,
    /// then starts the queued requests the quota allows, oldest first; a
    /// request held by one limit does not hold back one that limit does not
    /// apply to (a read behind a write under `w_mbytes_per_sec`), as in
    /// SPDK. All go once the limits are removed; none, aborted, once the
    /// bdev is removed. Returns how many it started.
    #[cold]
    pub(crate) fn qos_poll(&self) -> usize {
        if self.bdev.is_removed() {
            self.abort_qos_queued();
            return 0;
        }
        if self.bdev.qos.enabled.load(Ordering::Relaxed) {
            // The clock itself: the channel's `now` is only read when a poll
            // completes something, and with every I/O held here none does.
            self.bdev.qos.refill(ticks());
        }
        let started = self.qos_release();
        if started > 0 {
            self.progressed.set(true);
        }
        started
    }

    /// One pass over the QoS queue: starts what the quota allows, keeps
    /// the rest in order.
    fn qos_release(&self) -> usize {
        let qos = &self.bdev.qos;
        let enabled = qos.enabled.load(Ordering::Relaxed);
        let mut started = 0;
        let n = self.qos_queue.borrow().len();
        for _ in 0..n {
            let Some(idx) = self.qos_queue.borrow_mut().pop_front() else {
                break;
            };
            let mut pool = self.pool.borrow_mut();
            let s = &pool.slots[idx as usize];
            let (t, off, nb) = (s.io_type, s.offset_blocks, s.num_blocks);
            let bytes = nb.saturating_mul(u64::from(self.block_size));
            if enabled && !qos.try_take(t, bytes) {
                self.qos_queue.borrow_mut().push_back(idx);
                continue;
            }
            if self.lock_local.gate.get() & t.bit() != 0
                && self.lock_local.is_blocked(self.id, t, off, nb)
            {
                // A range lock came while it waited: it waits behind the lock now.
                pool.slots[idx as usize].state = State::Locked;
                let seq = self.lock_local.seq();
                self.lock_local.queued.borrow_mut().push_back((idx, seq));
            } else {
                self.dispatch(&mut pool, idx);
            }
            started += 1;
        }
        started
    }

    /// Completes every request in the QoS queue with `Aborted` (reset, hot
    /// remove); their callbacks run from the poll.
    pub(crate) fn abort_qos_queued(&self) {
        loop {
            let Some(idx) = self.qos_queue.borrow_mut().pop_front() else {
                break;
            };
            let mut pool = self.pool.borrow_mut();
            self.complete_internal(&mut pool, idx, IoStatus::Aborted);
        }
    }
}
