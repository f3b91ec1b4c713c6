//! I/O statistics, per channel and summed per bdev (SPDK's `bdev_get_iostat`).
//!
//! Each channel owns a [`ChannelStat`] that only its thread writes (relaxed
//! load + store, plain moves on x86); readers on other threads sum them.

use super::io::IoType;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// A snapshot of I/O statistics, with SPDK's field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IoStat {
    /// Bytes read.
    pub bytes_read: u64,
    /// Read operations completed.
    pub num_read_ops: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Write operations completed.
    pub num_write_ops: u64,
    /// Bytes unmapped.
    pub bytes_unmapped: u64,
    /// Unmap operations completed.
    pub num_unmap_ops: u64,
    /// Sum of read latencies, in ticks.
    pub read_latency_ticks: u64,
    /// Longest read, in ticks.
    pub max_read_latency_ticks: u64,
    /// Shortest read, in ticks (0 when none).
    pub min_read_latency_ticks: u64,
    /// Sum of write latencies, in ticks.
    pub write_latency_ticks: u64,
    /// Longest write.
    pub max_write_latency_ticks: u64,
    /// Shortest write.
    pub min_write_latency_ticks: u64,
    /// Sum of unmap latencies.
    pub unmap_latency_ticks: u64,
    /// I/O that completed with an error status.
    pub num_io_errors: u64,
    /// Other completed operations (flush, reset, write_zeroes, compare).
    pub num_other_ops: u64,
}

impl IoStat {
    /// Adds `o` into `self` (sums; max of maxima; min of non-zero minima).
    pub fn add(&mut self, o: &IoStat) {
        self.bytes_read += o.bytes_read;
        self.num_read_ops += o.num_read_ops;
        self.bytes_written += o.bytes_written;
        self.num_write_ops += o.num_write_ops;
        self.bytes_unmapped += o.bytes_unmapped;
        self.num_unmap_ops += o.num_unmap_ops;
        self.read_latency_ticks += o.read_latency_ticks;
        self.max_read_latency_ticks = self.max_read_latency_ticks.max(o.max_read_latency_ticks);
        self.min_read_latency_ticks = min_nz(self.min_read_latency_ticks, o.min_read_latency_ticks);
        self.write_latency_ticks += o.write_latency_ticks;
        self.max_write_latency_ticks = self.max_write_latency_ticks.max(o.max_write_latency_ticks);
        self.min_write_latency_ticks =
            min_nz(self.min_write_latency_ticks, o.min_write_latency_ticks);
        self.unmap_latency_ticks += o.unmap_latency_ticks;
        self.num_io_errors += o.num_io_errors;
        self.num_other_ops += o.num_other_ops;
    }
}

/// What `bdev_reset_iostat` clears (SPDK's `spdk_bdev_reset_stat_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetMode {
    /// Every counter.
    All,
    /// Only the maximum and minimum latencies.
    MaxMin,
}

impl ResetMode {
    fn bit(self) -> u8 {
        match self {
            ResetMode::All => 1,
            ResetMode::MaxMin => 2,
        }
    }
}

impl IoStat {
    /// Clears what `mode` names.
    pub fn reset(&mut self, mode: ResetMode) {
        match mode {
            ResetMode::All => *self = IoStat::default(),
            ResetMode::MaxMin => {
                self.max_read_latency_ticks = 0;
                self.min_read_latency_ticks = 0;
                self.max_write_latency_ticks = 0;
                self.min_write_latency_ticks = 0;
            }
        }
    }

    fn reset_bits(&mut self, bits: u8) {
        if bits & 1 != 0 {
            self.reset(ResetMode::All);
        } else if bits & 2 != 0 {
            self.reset(ResetMode::MaxMin);
        }
    }
}

fn min_nz(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

#[derive(Default)]
struct Counter(AtomicU64);

impl Counter {
    #[inline]
    fn add(&self, v: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(v), Relaxed);
    }
    #[inline]
    fn max(&self, v: u64) {
        if v > self.0.load(Relaxed) {
            self.0.store(v, Relaxed);
        }
    }
    fn zero(&self) {
        self.0.store(0, Relaxed);
    }
    #[inline]
    fn min(&self, v: u64) {
        let c = self.0.load(Relaxed);
        if c == 0 || v < c {
            self.0.store(v.max(1), Relaxed);
        }
    }
    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Live counters of one channel: written by its thread only, read by any.
#[derive(Default)]
pub struct ChannelStat {
    bytes_read: Counter,
    num_read_ops: Counter,
    bytes_written: Counter,
    num_write_ops: Counter,
    bytes_unmapped: Counter,
    num_unmap_ops: Counter,
    read_lat: Counter,
    read_max: Counter,
    read_min: Counter,
    write_lat: Counter,
    write_max: Counter,
    write_min: Counter,
    unmap_lat: Counter,
    errors: Counter,
    other: Counter,
    /// Resets asked for by other threads ([`ResetMode`] bits), applied by
    /// the owner at its next poll that completes I/O.
    reset: AtomicU8,
}

impl ChannelStat {
    /// Applies the resets other threads asked for. The channel's poll
    /// calls it once before it runs completions, each of which then
    /// [`ChannelStat::record`]s without looking: one test per poll, not
    /// per I/O.
    #[inline]
    pub(crate) fn sync_reset(&self) {
        if self.reset.load(Relaxed) != 0 {
            self.apply_reset();
        }
    }

    /// Records one completed I/O (after [`ChannelStat::sync_reset`] in the
    /// same poll).
    #[inline]
    pub(crate) fn record(&self, io_type: IoType, bytes: u64, lat: u64, ok: bool) {
        if !ok {
            self.errors.add(1);
            return;
        }
        match io_type {
            IoType::Read => {
                self.bytes_read.add(bytes);
                self.num_read_ops.add(1);
                self.read_lat.add(lat);
                self.read_max.max(lat);
                self.read_min.min(lat);
            }
            IoType::Write => {
                self.bytes_written.add(bytes);
                self.num_write_ops.add(1);
                self.write_lat.add(lat);
                self.write_max.max(lat);
                self.write_min.min(lat);
            }
            IoType::Unmap => {
                self.bytes_unmapped.add(bytes);
                self.num_unmap_ops.add(1);
                self.unmap_lat.add(lat);
            }
            _ => self.other.add(1),
        }
    }

    /// Asks the owner to clear what `mode` names before its next record;
    /// snapshots show it cleared from now on.
    pub(crate) fn request_reset(&self, mode: ResetMode) {
        self.reset.fetch_or(mode.bit(), Relaxed);
    }

    #[cold]
    fn apply_reset(&self) {
        let bits = self.reset.swap(0, Relaxed);
        let maxmin = [
            &self.read_max,
            &self.read_min,
            &self.write_max,
            &self.write_min,
        ];
        if bits & 1 != 0 {
            for c in [
                &self.bytes_read,
                &self.num_read_ops,
                &self.bytes_written,
                &self.num_write_ops,
                &self.bytes_unmapped,
                &self.num_unmap_ops,
                &self.read_lat,
                &self.write_lat,
                &self.unmap_lat,
                &self.errors,
                &self.other,
            ] {
                c.zero();
            }
        }
        if bits != 0 {
            for c in maxmin {
                c.zero();
            }
        }
    }

    /// A snapshot.
    pub fn snapshot(&self) -> IoStat {
        let mut s = self.raw_snapshot();
        s.reset_bits(self.reset.load(Relaxed));
        s
    }

    fn raw_snapshot(&self) -> IoStat {
        IoStat {
            bytes_read: self.bytes_read.get(),
            num_read_ops: self.num_read_ops.get(),
            bytes_written: self.bytes_written.get(),
            num_write_ops: self.num_write_ops.get(),
            bytes_unmapped: self.bytes_unmapped.get(),
            num_unmap_ops: self.num_unmap_ops.get(),
            read_latency_ticks: self.read_lat.get(),
            max_read_latency_ticks: self.read_max.get(),
            min_read_latency_ticks: self.read_min.get(),
            write_latency_ticks: self.write_lat.get(),
            max_write_latency_ticks: self.write_max.get(),
            min_write_latency_ticks: self.write_min.get(),
            unmap_latency_ticks: self.unmap_lat.get(),
            num_io_errors: self.errors.get(),
            num_other_ops: self.other.get(),
        }
    }
}
