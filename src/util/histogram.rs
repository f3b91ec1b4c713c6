//! A latency histogram in SPDK's buckets (`include/spdk/histogram_data.h`,
//! granularity 7), so summaries print the same rows as SPDK's tools.
//!
//! Values below 128 get a bucket each; above, each power of two is a range
//! of 128 equal buckets (each under 1 % of its values wide). The bucket of
//! a value comes from its count of leading zeros and one shift; every
//! counter is allocated when the histogram is made (58 ranges of 128
//! counters: 58 KiB, as SPDK's `spdk_histogram_data_alloc`), so counting a
//! value ([`Histogram::tally`]) allocates nothing, takes no lock and costs a
//! few instructions. The unit is the caller's (nanoseconds in the tools and
//! the bdev layer).

/// log2 of the buckets per range (SPDK's default granularity).
const GRANULARITY: u32 = 7;
/// Buckets per range.
const PER_RANGE: usize = 1 << GRANULARITY;
/// Ranges: 0 (values below 128) to 64 − granularity.
const RANGES: usize = (64 - GRANULARITY) as usize + 1;
/// Counters in a histogram.
const COUNTERS: usize = RANGES * PER_RANGE;

/// The cut-offs SPDK's bdevperf and spdk_nvme_perf print in their latency
/// summary (`g_latency_cutoffs`), as fractions.
pub const CUTOFFS: [f64; 15] = [
    0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 0.99999, 0.999999,
    0.9999999,
];

/// One non-empty bucket as SPDK's `spdk_histogram_data_iterate` reports it:
/// values in `start..end`, `count` of them, `so_far` counted up to and
/// including it out of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// First value of the bucket (the previous bucket's end).
    pub start: u64,
    /// End of the bucket, exclusive.
    pub end: u64,
    /// Values in the bucket.
    pub count: u64,
    /// Values in this bucket and every lower one.
    pub so_far: u64,
    /// Values in the histogram.
    pub total: u64,
}

/// A histogram of values in SPDK's buckets, with the exact minimum and
/// maximum beside them.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
    min: u64,
    max: u64,
}

/// The counter index of value `v`, as `spdk_histogram_data_tally` picks
/// its (range, index).
#[inline(always)]
fn slot(v: u64) -> usize {
    let lsb = 64 - GRANULARITY;
    let range = lsb.saturating_sub(v.leading_zeros());
    let shift = range.saturating_sub(1);
    range as usize * PER_RANGE + ((v >> shift) as usize & (PER_RANGE - 1))
}

/// The exclusive end of counter `slot`'s bucket (SPDK's
/// `__spdk_histogram_data_get_bucket_start` of the bucket after it).
fn bucket_end(slot: usize) -> u64 {
    let (range, i) = ((slot / PER_RANGE) as u32, (slot % PER_RANGE) as u64 + 1);
    if range == 0 {
        i
    } else {
        (1u64 << (range + GRANULARITY - 1)).saturating_add(i << (range - 1))
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    /// An empty histogram, every counter allocated (and written, so no
    /// page of it faults in later while values are counted).
    pub fn new() -> Histogram {
        let mut counts = vec![0u64; COUNTERS].into_boxed_slice();
        // Zeroed memory may be pages not yet mapped: write one counter per
        // page now, so counting never waits for a page fault.
        for c in counts.iter_mut().step_by(4096 / 8) {
            *c = std::hint::black_box(0);
        }
        Histogram {
            counts,
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Bytes of counters a histogram holds.
    pub const BYTES: usize = COUNTERS * 8;

    /// Counts one value `v` (SPDK's `spdk_histogram_data_tally`).
    #[inline]
    pub fn tally(&mut self, v: u64) {
        self.tally_n(v, 1);
    }

    /// Counts `n` values equal to `v`.
    #[inline]
    pub fn tally_n(&mut self, v: u64, n: u64) {
        // `slot` is below COUNTERS for every u64, so the check never fails.
        if let Some(c) = self.counts.get_mut(slot(v)) {
            *c += n;
        }
        self.total += n;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Adds every count of `other` (SPDK's `spdk_histogram_data_merge`).
    pub fn merge(&mut self, other: &Histogram) {
        for (d, s) in self.counts.iter_mut().zip(other.counts.iter()) {
            *d += s;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Forgets every value (SPDK's `spdk_histogram_data_reset`).
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.min = u64::MAX;
        self.max = 0;
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The smallest value counted (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest value counted (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The non-empty buckets in ascending order, as
    /// `spdk_histogram_data_iterate` hands them to a printer that skips
    /// empty ones (SPDK's `print_bucket`).
    pub fn buckets(&self) -> impl Iterator<Item = Bucket> + '_ {
        let total = self.total;
        let mut so_far = 0;
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(move |(i, &count)| {
                so_far += count;
                Bucket {
                    start: if i == 0 { 0 } else { bucket_end(i - 1) },
                    end: bucket_end(i),
                    count,
                    so_far,
                    total,
                }
            })
    }

    /// For each cut-off of [`CUTOFFS`], the end of the first bucket at
    /// which the share counted so far reaches it (SPDK's `check_cutoff`);
    /// cut-offs no bucket reaches are left out. Empty when nothing was
    /// counted.
    pub fn percentiles(&self) -> Vec<(f64, u64)> {
        let mut out = Vec::new();
        let mut cut = CUTOFFS.iter().peekable();
        for b in self.buckets() {
            let share = b.so_far as f64 / b.total as f64;
            while let Some(&&c) = cut.peek() {
                if share < c {
                    break;
                }
                out.push((c, b.end));
                cut.next();
            }
        }
        out
    }

    /// The end of the first bucket at which the share counted so far
    /// reaches `fraction` (0 when empty): the same value the summary
    /// prints for that cut-off.
    pub fn value_at(&self, fraction: f64) -> u64 {
        self.buckets()
            .find(|b| b.so_far as f64 / b.total as f64 >= fraction)
            .map_or(0, |b| b.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_spdks_buckets() {
        // Below 128: one bucket per value.
        assert_eq!(slot(0), 0);
        assert_eq!(slot(127), 127);
        assert_eq!(bucket_end(127), 128);
        // 128..256: range 1, buckets of width 1; 256..512: width 2.
        assert_eq!(slot(128), PER_RANGE);
        assert_eq!(bucket_end(PER_RANGE), 129);
        assert_eq!(slot(256), 2 * PER_RANGE);
        assert_eq!(slot(259), 2 * PER_RANGE + 1);
        assert_eq!(bucket_end(2 * PER_RANGE + 1), 260);
        // The largest value lands in the last counter's range.
        assert_eq!(slot(u64::MAX) / PER_RANGE, RANGES - 1);
        assert!(slot(u64::MAX) < COUNTERS);
    }

    #[test]
    fn every_value_lies_inside_the_bucket_it_is_counted_in() {
        for v in [0u64, 1, 77, 128, 1000, 54_321, 1 << 40, u64::MAX / 3] {
            let mut h = Histogram::new();
            h.tally(v);
            let b: Vec<_> = h.buckets().collect();
            assert_eq!(b.len(), 1);
            assert!(b[0].start <= v && v < b[0].end, "{v}: {b:?}");
        }
    }

    #[test]
    fn percentiles_are_bucket_ends_where_the_share_is_reached() {
        let mut h = Histogram::new();
        h.tally_n(10, 50);
        h.tally_n(20, 49);
        h.tally_n(100, 1);
        let p = h.percentiles();
        assert_eq!(p[0], (0.01, 11));
        assert_eq!(p[3], (0.50, 11));
        assert_eq!(p[4], (0.75, 21));
        assert_eq!(p[8], (0.99, 21));
        assert_eq!(p.last().copied(), Some((0.9999999, 101)));
        assert_eq!(p.len(), CUTOFFS.len());
        assert_eq!(h.value_at(0.999), 101);
        assert!(Histogram::new().percentiles().is_empty());
        assert_eq!(Histogram::new().value_at(0.5), 0);
    }

    #[test]
    fn the_exact_minimum_and_maximum_are_kept() {
        let mut h = Histogram::new();
        assert_eq!((h.min(), h.max()), (0, 0));
        h.tally(54_321);
        h.tally(777);
        assert_eq!((h.min(), h.max()), (777, 54_321));
        h.reset();
        assert_eq!((h.total(), h.min(), h.max()), (0, 0, 0));
        assert_eq!(h.buckets().count(), 0);
    }

    #[test]
    fn merged_histograms_add_their_counts() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        a.tally_n(1000, 3);
        b.tally_n(1000, 2);
        b.tally(5);
        a.merge(&b);
        assert_eq!(a.total(), 6);
        assert_eq!((a.min(), a.max()), (5, 1000));
        let bs: Vec<_> = a.buckets().collect();
        assert_eq!(bs.len(), 2);
        assert_eq!((bs[1].count, bs[1].so_far), (5, 6));
    }

    #[test]
    fn a_histogram_is_sized_as_spdks() {
        assert_eq!(Histogram::BYTES, 58 * 128 * 8);
    }
}
