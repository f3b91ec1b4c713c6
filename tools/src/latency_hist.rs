//! Latency histogram with SPDK's buckets (`include/spdk/histogram_data.h`,
//! granularity 7): values below 128 get a bucket each; above, each power
//! of two is a range of 128 equal buckets (under 1 % wide). The summary and
//! detailed histogram print from the same buckets as SPDK's tools, so the
//! rows compare line by line.
//!
//! A range's 128 counters (1 KiB) are allocated when its first value lands
//! there: a job whose latencies span a few powers of two holds a few KiB,
//! and none holds more than the 58 ranges' 58 KiB.

/// log2 of the buckets per range (SPDK's default granularity).
const GRANULARITY: u32 = 7;
/// Buckets per range.
const PER_RANGE: usize = 1 << GRANULARITY;
/// Ranges: 0 (values below 128) to 64 − granularity.
const RANGES: usize = (64 - GRANULARITY) as usize + 1;

/// The cut-offs SPDK's bdevperf and spdk_nvme_perf print in their latency
/// summary, as fractions.
pub const CUTOFFS: [f64; 15] = [
    0.01, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999, 0.99999, 0.999999,
    0.9999999,
];

/// One non-empty bucket: values in `start..end`, `count` of them, `so_far`
/// counted up to and including it out of `total`.
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

/// A latency histogram in SPDK's buckets (values in nanoseconds here).
#[derive(Clone, Debug)]
pub struct LatencyHistogram {
    ranges: Vec<Option<Box<[u64; PER_RANGE]>>>,
    total: u64,
}

/// The (range, index) of value `v`, as `spdk_histogram_data_tally` picks it.
fn locate(v: u64) -> (usize, usize) {
    let lsb = 64 - GRANULARITY;
    let clz = v.leading_zeros();
    let range = lsb.saturating_sub(clz);
    let shift = range.saturating_sub(1);
    (range as usize, ((v >> shift) as usize) & (PER_RANGE - 1))
}

/// The exclusive end of bucket (range, index) (SPDK's
/// `__spdk_histogram_data_get_bucket_start` of the bucket after it).
fn bucket_end(range: usize, index: usize) -> u64 {
    let i = index as u64 + 1;
    if range == 0 {
        i
    } else {
        let r = range as u32;
        (1u64 << (r + GRANULARITY - 1)).saturating_add(i << (r - 1))
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram: no counters allocated yet.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            ranges: vec![None; RANGES],
            total: 0,
        }
    }

    /// Counts `n` values equal to `v`.
    #[inline]
    pub fn tally_n(&mut self, v: u64, n: u64) {
        let (r, i) = locate(v);
        let range = self.ranges[r].get_or_insert_with(|| Box::new([0; PER_RANGE]));
        range[i] += n;
        self.total += n;
    }

    /// Adds every count of `other` (SPDK's `spdk_histogram_data_merge`).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (r, src) in other.ranges.iter().enumerate() {
            if let Some(src) = src {
                let dst = self.ranges[r].get_or_insert_with(|| Box::new([0; PER_RANGE]));
                for (d, s) in dst.iter_mut().zip(src.iter()) {
                    *d += s;
                }
            }
        }
        self.total += other.total;
    }

    /// Values counted.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes of counters held (the ranges touched so far).
    #[cfg(test)]
    pub fn counter_bytes(&self) -> usize {
        self.ranges.iter().flatten().count() * PER_RANGE * 8
    }

    /// The non-empty buckets in ascending order, as
    /// `spdk_histogram_data_iterate` hands them to a printer that skips
    /// empty ones.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::new();
        let mut so_far = 0;
        let mut prev_end = 0;
        for (r, range) in self.ranges.iter().enumerate() {
            let Some(range) = range else {
                prev_end = bucket_end(r, PER_RANGE - 1);
                continue;
            };
            for (i, &count) in range.iter().enumerate() {
                let end = bucket_end(r, i);
                if count > 0 {
                    so_far += count;
                    out.push(Bucket {
                        start: prev_end,
                        end,
                        count,
                        so_far,
                        total: self.total,
                    });
                }
                prev_end = end;
            }
        }
        out
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_spdks_buckets() {
        // Below 128: one bucket per value.
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(127), (0, 127));
        assert_eq!(bucket_end(0, 127), 128);
        // 128..256: range 1, buckets of width 1; 256..512: width 2.
        assert_eq!(locate(128), (1, 0));
        assert_eq!(bucket_end(1, 0), 129);
        assert_eq!(locate(256), (2, 0));
        assert_eq!(locate(259), (2, 1));
        assert_eq!(bucket_end(2, 1), 260);
        // The largest value lands in the last range.
        assert_eq!(locate(u64::MAX).0, RANGES - 1);
    }

    #[test]
    fn every_value_lies_inside_the_bucket_it_is_counted_in() {
        let mut h = LatencyHistogram::new();
        for v in [1u64, 77, 128, 1000, 54_321, 1 << 40] {
            h.tally_n(v, 1);
            let b = h.buckets();
            assert!(b.iter().any(|b| b.start <= v && v < b.end), "{v}: {b:?}");
            h = LatencyHistogram::new();
        }
    }

    #[test]
    fn percentiles_are_bucket_ends_where_the_share_is_reached() {
        let mut h = LatencyHistogram::new();
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
        assert!(LatencyHistogram::new().percentiles().is_empty());
    }

    #[test]
    fn a_histogram_holds_only_the_ranges_its_values_touch() {
        let mut h = LatencyHistogram::new();
        for v in 40_000..80_000u64 {
            h.tally_n(v, 1);
        }
        // 40 µs .. 80 µs spans two powers of two: 2 KiB of counters, not
        // SPDK's whole 58 KiB (nor the 700 KB of a 3-digit hdrhistogram).
        assert_eq!(h.counter_bytes(), 2 * 1024);
    }

    #[test]
    fn merged_histograms_add_their_counts() {
        let (mut a, mut b) = (LatencyHistogram::new(), LatencyHistogram::new());
        a.tally_n(1000, 3);
        b.tally_n(1000, 2);
        b.tally_n(5, 1);
        a.merge(&b);
        assert_eq!(a.total(), 6);
        let bs = a.buckets();
        assert_eq!(bs.len(), 2);
        assert_eq!((bs[1].count, bs[1].so_far), (5, 6));
    }
}
