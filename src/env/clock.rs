//! A cheap monotonic clock for pollers and I/O statistics (SPDK's
//! `spdk_get_ticks`, which reads the CPU's time-stamp counter).
//!
//! On x86-64, when the kernel itself keeps time with the TSC (its
//! clocksource is `tsc`, so it found the counter invariant and in step on
//! every CPU) the clock is the TSC scaled to nanoseconds: a few ns per
//! read instead of ~25 for `clock_gettime` in a VM. The rate is measured
//! against `CLOCK_MONOTONIC` over 5 ms on first use. Elsewhere it is
//! [`std::time::Instant`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

enum Source {
    /// ns = (tsc - tsc0) * mult >> 32.
    #[cfg(target_arch = "x86_64")]
    Tsc {
        tsc0: u64,
        mult: u64,
    },
    Os(Instant),
}

static CLOCK: OnceLock<Source> = OnceLock::new();

/// Nanoseconds since the clock was set up (on its first read in this
/// process): monotonic, cheap (see the module docs), the same on every
/// thread. The first call takes about 5 ms (it measures the TSC rate).
#[inline]
pub fn now_ns() -> u64 {
    match CLOCK.get_or_init(Source::pick) {
        #[cfg(target_arch = "x86_64")]
        Source::Tsc { tsc0, mult } => {
            ((rdtsc().saturating_sub(*tsc0) as u128 * *mult as u128) >> 32) as u64
        }
        Source::Os(base) => base.elapsed().as_nanos() as u64,
    }
}

/// Whether [`now_ns`] reads the CPU's time-stamp counter (else the OS clock).
pub fn clock_is_tsc() -> bool {
    #[cfg(target_arch = "x86_64")]
    if let Source::Tsc { .. } = CLOCK.get_or_init(Source::pick) {
        return true;
    }
    false
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn rdtsc() -> u64 {
    // SAFETY: RDTSC reads a counter and touches no memory. It is only called
    // once `tsc_usable` has checked that user-mode RDTSC is allowed
    // (PR_GET_TSC), so it cannot fault.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Source {
    fn pick() -> Source {
        #[cfg(target_arch = "x86_64")]
        if tsc_usable() {
            if let Some(s) = Source::calibrate() {
                return s;
            }
        }
        Source::Os(Instant::now())
    }

    /// Measures the TSC rate against the OS clock over 5 ms.
    #[cfg(target_arch = "x86_64")]
    fn calibrate() -> Option<Source> {
        // A TSC value and an Instant taken together: the TSC bracket around
        // the Instant read, narrowest of a few tries (preemption widens it).
        fn sample() -> (u64, Instant) {
            let mut best = (u64::MAX, 0, Instant::now());
            for _ in 0..8 {
                let a = rdtsc();
                let i = Instant::now();
                let b = rdtsc();
                if b >= a && b - a < best.0 {
                    best = (b - a, a + (b - a) / 2, i);
                }
            }
            (best.1, best.2)
        }
        let (c0, i0) = sample();
        std::thread::sleep(Duration::from_millis(5));
        let (c1, i1) = sample();
        let ns = i1.duration_since(i0).as_nanos();
        let cycles = c1.checked_sub(c0)? as u128;
        if ns == 0 {
            return None;
        }
        let hz = cycles * 1_000_000_000 / ns;
        if !(100_000_000..=20_000_000_000).contains(&hz) {
            log::warn!("TSC rate measured as {hz} Hz: implausible, using the OS clock");
            return None;
        }
        let mult = u64::try_from((1_000_000_000u128 << 32) / hz).ok()?;
        Some(Source::Tsc { tsc0: c0, mult })
    }
}

/// The kernel keeps time with the TSC and lets user mode read it.
#[cfg(target_arch = "x86_64")]
fn tsc_usable() -> bool {
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    if source.trim() != "tsc" {
        return false;
    }
    let mut mode: libc::c_int = 0;
    // SAFETY: PR_GET_TSC writes one int through the pointer, which is valid.
    let r = unsafe { libc::prctl(libc::PR_GET_TSC, &mut mode as *mut libc::c_int) };
    r == 0 && mode == libc::PR_TSC_ENABLE
}
