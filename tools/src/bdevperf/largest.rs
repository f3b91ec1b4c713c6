//! The few largest values of a run, each with the clock reading it was
//! seen at: where a job's maximum latency came from, found by matching
//! its time against what else ran on the core then (a scheduler or
//! interrupt trace taken on `CLOCK_MONOTONIC`).

use spdk_io::thread::ticks;

/// How many values a [`Largest`] keeps.
pub(crate) const KEEP: usize = 8;

/// One kept value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The value (ns).
    pub(crate) value: u64,
    /// The clock ([`spdk_io::thread::ticks`]) when it was seen.
    pub(crate) at: u64,
    /// `at` on `CLOCK_MONOTONIC` (ns), converted when the value was kept:
    /// both clocks read together then, so the two clocks' rates, which
    /// differ slightly, cannot move it by more than the time since `at`.
    pub(crate) mono: u64,
    /// What the caller knew about it (a class index).
    pub(crate) tag: u8,
}

/// The [`KEEP`] largest values offered, largest first; costs one compare
/// per value below the smallest kept. A fixed array: nothing to allocate
/// or free.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Largest {
    kept: [Seen; KEEP],
    len: usize,
}

impl Largest {
    /// An empty record.
    pub(crate) fn new() -> Largest {
        Largest::default()
    }

    /// Keeps `value`, seen at clock `at` (a class `tag`), if it is among
    /// the largest so far. One value per `at`, the largest: the I/Os
    /// completed in one batch share their clock reading, and one stall
    /// would otherwise fill every place.
    #[inline]
    pub(crate) fn offer(&mut self, value: u64, at: u64, tag: u8) {
        if self.len == KEEP && self.kept[KEEP - 1].value >= value {
            return;
        }
        if let Some(i) = self.values().iter().position(|k| k.at == at) {
            if self.kept[i].value >= value {
                return;
            }
            self.kept.copy_within(i + 1..self.len, i);
            self.len -= 1;
        }
        let (now, mono_now) = (ticks(), monotonic_ns());
        let s = Seen {
            value,
            at,
            mono: mono_now.saturating_sub(now.saturating_sub(at)),
            tag,
        };
        let i = self.values().partition_point(|k| k.value >= value);
        // Shift the smaller ones down one place (the last falls off when full).
        let end = self.len.min(KEEP - 1);
        self.kept.copy_within(i..end, i + 1);
        self.kept[i] = s;
        self.len = (self.len + 1).min(KEEP);
    }

    /// The kept values, largest first.
    pub(crate) fn values(&self) -> &[Seen] {
        &self.kept[..self.len]
    }
}

/// `CLOCK_MONOTONIC` in ns (the clock `perf record -k mono` and ftrace's
/// `mono` clock stamp their events with), 0 where unavailable.
pub(crate) fn monotonic_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_values_are_kept_largest_first_with_their_times() {
        let mut l = Largest::new();
        for v in 0..100u64 {
            // A permutation of 0..100, so the largest come at any time.
            let x = (v * 37) % 100;
            l.offer(x, 1000 + x, 0);
        }
        let got: Vec<_> = l.values().iter().map(|s| (s.value, s.at)).collect();
        let want: Vec<_> = (92..100u64).rev().map(|x| (x, 1000 + x)).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn one_value_is_kept_per_time_the_largest() {
        let mut l = Largest::new();
        l.offer(5, 100, 0);
        l.offer(9, 100, 1);
        l.offer(7, 100, 0);
        l.offer(3, 200, 0);
        let got: Vec<_> = l.values().iter().map(|s| (s.value, s.at, s.tag)).collect();
        assert_eq!(got, vec![(9, 100, 1), (3, 200, 0)]);
    }

    #[test]
    fn equal_values_keep_the_first_seen_and_fewer_than_keep_are_all_kept() {
        let mut l = Largest::new();
        l.offer(5, 1, 0);
        l.offer(5, 2, 0);
        l.offer(9, 3, 0);
        let got: Vec<_> = l.values().iter().map(|s| (s.value, s.at)).collect();
        assert_eq!(got, vec![(9, 3), (5, 1), (5, 2)]);
        for i in 0..20 {
            l.offer(5, 10 + i, 0);
        }
        assert_eq!(l.values().len(), KEEP);
        assert_eq!(
            l.values()[1].at,
            1,
            "an equal later value does not displace"
        );
        assert!(l.values().iter().skip(1).all(|s| s.value == 5));
    }

    #[test]
    fn a_kept_value_gets_its_monotonic_time_at_most_now() {
        let mut l = Largest::new();
        let before = monotonic_ns();
        let t = ticks();
        l.offer(7, t, 2);
        let after = monotonic_ns();
        let s = l.values()[0];
        assert_eq!((s.value, s.at, s.tag), (7, t, 2));
        assert!(s.mono <= after, "{} > {after}", s.mono);
        // Seen at `t`, converted a moment later: close to the read before.
        assert!(s.mono + 1_000_000_000 >= before, "{} vs {before}", s.mono);
    }
}
