//! Monotonic ticks for pollers and statistics (SPDK's `spdk_get_ticks`):
//! nanoseconds since the first call in this process.
//!
//! A poll reads the clock once: [`poll_ticks`] gives everything a poll
//! runs (pollers, messages, channels stamping I/O) the tick it started at,
//! as SPDK hands `now` to `spdk_thread_poll` and keeps it as the thread's
//! last TSC.

use std::cell::Cell;

/// Ticks per second (ticks are nanoseconds).
pub const TICKS_HZ: u64 = 1_000_000_000;

/// The current tick count: nanoseconds since the process first asked
/// (the env's clock, [`crate::env::now_ns`]: the TSC where the kernel
/// trusts it).
#[inline]
pub fn ticks() -> u64 {
    crate::env::now_ns()
}

/// Marks "no poll running" in [`POLL_NOW`].
const NOT_POLLING: u64 = u64::MAX;

thread_local! {
    /// The start tick of the poll running on this OS thread.
    static POLL_NOW: Cell<u64> = const { Cell::new(NOT_POLLING) };
}

/// The tick at which the current lightweight thread's poll started
/// (SPDK's `spdk_thread_get_last_tsc(spdk_get_thread())`), so work done
/// inside one poll shares one clock read; outside a poll, [`ticks`] now.
#[inline]
pub fn poll_ticks() -> u64 {
    match POLL_NOW.with(Cell::get) {
        NOT_POLLING => ticks(),
        now => now,
    }
}

/// Sets the poll start tick for the guard's lifetime (restores the previous
/// value, so a poll nested in another keeps the outer one's afterwards).
pub(crate) struct PollNow(u64);

impl PollNow {
    #[inline]
    pub(crate) fn enter(now: u64) -> PollNow {
        PollNow(POLL_NOW.with(|c| c.replace(now.min(NOT_POLLING - 1))))
    }
}

impl Drop for PollNow {
    #[inline]
    fn drop(&mut self) {
        let prev = self.0;
        let _ = POLL_NOW.try_with(|c| c.set(prev));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread::{poller_register, PollerStatus, Thread};
    use std::rc::Rc;

    #[test]
    fn pollers_see_the_tick_their_poll_started_at_and_the_clock_outside() {
        let t = Thread::new("poll_ticks");
        let seen = Rc::new(Cell::new(0u64));
        let s = seen.clone();
        let p = t
            .enter(|| {
                poller_register("probe", 0, move || {
                    s.set(poll_ticks());
                    PollerStatus::Idle
                })
            })
            .unwrap();
        t.poll_at(0, 12_345);
        assert_eq!(seen.get(), 12_345);
        let before = ticks();
        let outside = poll_ticks();
        assert!(outside >= before, "outside a poll it is the clock now");
        p.unregister();
        t.exit();
        while !t.is_exited() {
            t.poll(0);
        }
        t.destroy().unwrap();
    }
}
