//! Quality of service: per-bdev rate limits (SPDK's `bdev_set_qos_limit`).
//!
//! As in SPDK v25.09, time is cut in slices of 1 ms. Each limit (I/O per
//! second for reads and writes; MiB/s for reads and writes, reads only,
//! writes only) gives a quota per slice, shared by every channel of the
//! bdev: a read or write takes its I/O and bytes from every limit that
//! applies, or — when one has no quota left — waits in its channel's QoS
//! queue. A slice may be overrun by the one I/O that started inside its
//! quota; the next slice's quota is reduced by the overrun. Whichever
//! channel polls first after a slice ended refills the quotas (SPDK's QoS
//! poller), and every channel releases its queue as quota allows.
//!
//! Other I/O types are not limited. With no limit set, a submission pays
//! one load and one branch ([`Qos::enabled`]).

use super::io::IoType;
use super::ticks::TICK_RATE;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Length of a QoS time slice, in microseconds (SPDK's value).
pub const TIMESLICE_USEC: u64 = 1000;
/// IOPS limits are rounded up to a multiple of this.
pub const MIN_IOS_PER_SEC: u64 = 1000;
/// Byte-rate limits are rounded up to a multiple of this (1 MiB/s).
pub const MIN_BYTES_PER_SEC: u64 = 1024 * 1024;
/// Largest MiB/s limit accepted; larger ones are lowered to it (so the
/// byte rate fits 64 bits).
pub const MAX_MBYTES_PER_SEC: u64 = u64::MAX / (1024 * 1024);

/// A bdev's rate limits as `bdev_get_bdevs` reports them
/// (`assigned_rate_limits`); 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QosLimits {
    /// Reads and writes per second.
    pub rw_ios_per_sec: u64,
    /// Read and write MiB per second.
    pub rw_mbytes_per_sec: u64,
    /// Read MiB per second.
    pub r_mbytes_per_sec: u64,
    /// Write MiB per second.
    pub w_mbytes_per_sec: u64,
}

impl QosLimits {
    fn as_array(&self) -> [u64; 4] {
        [
            self.rw_ios_per_sec,
            self.rw_mbytes_per_sec,
            self.r_mbytes_per_sec,
            self.w_mbytes_per_sec,
        ]
    }
    fn from_array(a: [u64; 4]) -> Self {
        QosLimits {
            rw_ios_per_sec: a[0],
            rw_mbytes_per_sec: a[1],
            r_mbytes_per_sec: a[2],
            w_mbytes_per_sec: a[3],
        }
    }
}

#[derive(Default)]
struct Limit {
    /// Quota per slice (I/Os or bytes); 0 = this limit is off.
    max_per_slice: AtomicU64,
    /// What is left of the current slice's quota (negative after an overrun).
    remaining: AtomicI64,
}

/// The QoS state of one bdev, shared by its channels.
#[derive(Default)]
pub(crate) struct Qos {
    /// True while any limit is set: submissions take the QoS path.
    pub enabled: AtomicBool,
    limits: Mutex<QosLimits>,
    rl: [Limit; 4],
    /// Start tick of the current slice.
    last_slice: AtomicU64,
    refilling: Mutex<()>,
}

/// Ticks per slice.
pub(crate) fn slice_ticks() -> u64 {
    TIMESLICE_USEC * TICK_RATE / 1_000_000
}

impl Qos {
    /// The limits in force.
    pub fn limits(&self) -> QosLimits {
        *self.limits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies new limits (`None` keeps a limit as it is, `Some(0)` removes
    /// it), rounded up as SPDK rounds them; returns those in force.
    pub fn set(&self, new: [Option<u64>; 4], now: u64) -> QosLimits {
        let mut cur = self.limits.lock().unwrap_or_else(|e| e.into_inner());
        let mut a = cur.as_array();
        for (i, v) in new.iter().enumerate() {
            let Some(mut v) = *v else { continue };
            let unit = if i == 0 {
                MIN_IOS_PER_SEC
            } else {
                v = v.min(MAX_MBYTES_PER_SEC);
                1
            };
            if i == 0 && v % unit != 0 {
                v += unit - v % unit;
            }
            a[i] = v;
        }
        *cur = QosLimits::from_array(a);
        let slice = slice_ticks();
        for (i, l) in self.rl.iter().enumerate() {
            let per_sec = if i == 0 {
                a[0]
            } else {
                a[i].saturating_mul(MIN_BYTES_PER_SEC)
            };
            let max = if per_sec == 0 {
                0
            } else {
                let min = if i == 0 { 1 } else { 512 };
                (per_sec as u128 * slice as u128 / TICK_RATE as u128).max(min) as u64
            };
            l.max_per_slice.store(max, Relaxed);
            l.remaining.store(max.min(i64::MAX as u64) as i64, Relaxed);
        }
        self.last_slice.store(now, Relaxed);
        self.enabled.store(a.iter().any(|&x| x != 0), Relaxed);
        *cur
    }

    /// Takes the quota of a `bytes`-long I/O of `io_type`; false when a
    /// limit has none left in this slice (the I/O must wait).
    pub(crate) fn try_take(&self, io_type: IoType, bytes: u64) -> bool {
        let read = match io_type {
            IoType::Read => true,
            IoType::Write => false,
            _ => return true,
        };
        let amount = |i: usize| -> i64 {
            match i {
                0 => 1,
                1 => bytes as i64,
                2 if read => bytes as i64,
                3 if !read => bytes as i64,
                _ => 0,
            }
        };
        for i in 0..4 {
            let l = &self.rl[i];
            let d = amount(i);
            if d == 0 || l.max_per_slice.load(Relaxed) == 0 {
                continue;
            }
            let left = l.remaining.fetch_sub(d, Relaxed);
            if left <= 0 {
                // No quota: give back what this and the earlier limits took.
                for j in 0..=i {
                    let dj = amount(j);
                    if dj != 0 && self.rl[j].max_per_slice.load(Relaxed) != 0 {
                        self.rl[j].remaining.fetch_add(dj, Relaxed);
                    }
                }
                return false;
            }
        }
        true
    }

    /// Starts the slices that ended by `now` (at most one caller at a
    /// time): each limit's quota is topped up by one slice's worth per
    /// slice passed, an overrun carried over. Returns true when it did.
    pub(crate) fn refill(&self, now: u64) -> bool {
        let slice = slice_ticks();
        if now < self.last_slice.load(Relaxed).saturating_add(slice) {
            return false;
        }
        let Ok(_g) = self.refilling.try_lock() else {
            return false;
        };
        let mut last = self.last_slice.load(Relaxed);
        if now < last.saturating_add(slice) {
            return false;
        }
        let passed = (now - last) / slice;
        last += passed * slice;
        self.last_slice.store(last, Relaxed);
        for l in &self.rl {
            let max = l.max_per_slice.load(Relaxed).min(i64::MAX as u64) as i64;
            if max == 0 {
                continue;
            }
            let left = l.remaining.swap(0, Relaxed);
            // Unused quota does not accumulate; an overrun is paid back.
            let start = left.min(0);
            let top = start.saturating_add(max.saturating_mul(passed.min(i64::MAX as u64) as i64));
            l.remaining.fetch_add(top.min(max), Relaxed);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qos(limits: [Option<u64>; 4]) -> Qos {
        let q = Qos::default();
        q.set(limits, 0);
        q
    }

    #[test]
    fn an_iops_limit_gives_one_slice_its_share() {
        let q = qos([Some(10_000), None, None, None]);
        let n = (0..100).filter(|_| q.try_take(IoType::Read, 4096)).count();
        assert_eq!(n, 10, "10,000 IOPS is 10 I/O per 1 ms slice");
        assert!(q.refill(slice_ticks()));
        let n = (0..100).filter(|_| q.try_take(IoType::Write, 4096)).count();
        assert_eq!(n, 10);
    }

    #[test]
    fn limits_are_rounded_up_as_spdk_rounds_them() {
        let q = qos([Some(1500), Some(1), None, None]);
        assert_eq!(q.limits().rw_ios_per_sec, 2000);
        assert_eq!(q.limits().rw_mbytes_per_sec, 1);
    }

    #[test]
    fn a_big_io_overruns_one_slice_and_the_next_pays_for_it() {
        // 1 MiB/s: 1048 bytes per slice. A 1 MiB write goes (the slice had
        // quota) and the following slices owe it.
        let q = qos([None, None, None, Some(1)]);
        assert!(q.try_take(IoType::Write, 1 << 20));
        assert!(!q.try_take(IoType::Write, 512));
        assert!(
            q.try_take(IoType::Read, 1 << 20),
            "reads are not limited by w_mbytes"
        );
        let per = (MIN_BYTES_PER_SEC * slice_ticks() / TICK_RATE) as i64;
        let slices_owed = ((1i64 << 20) - per) / per;
        assert!(q.refill(slice_ticks() * slices_owed as u64));
        assert!(!q.try_take(IoType::Write, 512), "still in debt");
        assert!(q.refill(slice_ticks() * (slices_owed as u64 + 2)));
        assert!(q.try_take(IoType::Write, 512));
    }

    #[test]
    fn unused_quota_does_not_pile_up() {
        let q = qos([Some(1000), None, None, None]);
        assert!(q.refill(slice_ticks() * 50));
        let n = (0..100).filter(|_| q.try_take(IoType::Read, 512)).count();
        assert_eq!(n, 1);
    }

    #[test]
    fn removing_every_limit_turns_qos_off() {
        let q = qos([Some(1000), None, None, None]);
        assert!(q.enabled.load(Relaxed));
        q.set([Some(0), None, None, None], 0);
        assert!(!q.enabled.load(Relaxed));
    }
}
