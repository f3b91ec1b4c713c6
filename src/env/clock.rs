//! A cheap monotonic clock for pollers and I/O statistics (SPDK's
//! `spdk_get_ticks`, which reads the CPU's time-stamp counter).
//!
//! On x86-64 the clock is the TSC scaled to nanoseconds — a few ns per
//! read instead of ~25 for `clock_gettime` in a VM — when the kernel
//! itself keeps time with the TSC (its clocksource is `tsc`, so it found
//! the counter invariant and in step on every CPU), and also when the
//! kernel keeps time with a device the vDSO cannot read (`hpet`,
//! `acpi_pm`, jiffies): there every OS clock read is a system call plus a
//! device register read (in an emulated guest, an exit to the emulator),
//! which a polling loop that reads the clock several times per iteration
//! cannot afford; SPDK reads the TSC in every case (and, like SPDK, a
//! machine whose TSCs really differ between CPUs then gets ticks that
//! differ between reactors: each reactor stays on its core, and ticks are
//! compared on the thread that took them). The rate is measured
//! against `CLOCK_MONOTONIC` over 5 ms on first use. Elsewhere (a
//! paravirtual clock the vDSO reads, another architecture, user-mode
//! RDTSC forbidden) it is [`std::time::Instant`].

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

/// The TSC is the better clock here (see [`tsc_preferred`]) and user
/// mode may read it.
#[cfg(target_arch = "x86_64")]
fn tsc_usable() -> bool {
    let source =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default();
    if !tsc_preferred(source.trim()) {
        return false;
    }
    let mut mode: libc::c_int = 0;
    // SAFETY: PR_GET_TSC writes one int through the pointer, which is valid.
    let r = unsafe { libc::prctl(libc::PR_GET_TSC, &mut mode as *mut libc::c_int) };
    r == 0 && mode == libc::PR_TSC_ENABLE
}

/// Whether the TSC beats the OS clock, given the kernel's clocksource:
/// yes when the kernel keeps time with it too (`tsc`), and when the
/// kernel's own source is a device the vDSO cannot read, so that every
/// `clock_gettime` is a system call and a device read (`hpet`, `acpi_pm`,
/// the jiffies counters, the PIT): a Linux guest under an emulator that
/// found its virtual TSCs out of step keeps time with the HPET, and each
/// read then exits to the emulator. Any other source (`kvm-clock`, a
/// hypervisor's TSC page, an unknown name) is read by the vDSO cheaply,
/// and keeps its accuracy.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn tsc_preferred(clocksource: &str) -> bool {
    matches!(
        clocksource,
        "tsc" | "hpet" | "acpi_pm" | "jiffies" | "refined-jiffies" | "pit"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tsc_is_preferred_to_clocksources_the_vdso_cannot_read() {
        for s in [
            "tsc",
            "hpet",
            "acpi_pm",
            "jiffies",
            "refined-jiffies",
            "pit",
        ] {
            assert!(tsc_preferred(s), "{s}");
        }
        for s in [
            "kvm-clock",
            "hyperv_clocksource_tsc_page",
            "xen",
            "arch_sys_counter",
            "",
        ] {
            assert!(!tsc_preferred(s), "{s}");
        }
    }
}
