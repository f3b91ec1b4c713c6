//! `perf --timeline`: where a queue pair's round trip goes, seen from the
//! polling thread.
//!
//! At queue depth 32 on an emulated controller the queue moves in lockstep:
//! the driver reaps a whole batch, resubmits it, rings the SQ doorbell once,
//! and then polls until the controller posts the next batch. The round trip
//! splits into the thread's own work and the wait for the controller:
//!
//! - **reap**: from the start of the poll that finds completions to the end
//!   of `process_completions` (reading the entries, the callbacks);
//! - **submit**: from there to the end of the SQ doorbell write, in two
//!   parts: **build** (the new commands written into the SQ) and
//!   **doorbell** (the CQ head and SQ tail MMIO writes: a VM exit each, and
//!   under emulation whatever holds the vCPU until the write returns);
//! - **controller**: from that doorbell write to the start of the next poll
//!   that finds completions (the device's work and its wake-ups; it also
//!   holds up to one poll of the thread's, the polling granularity);
//! - **account** (beside the round, not in it): tallying the reaped I/Os'
//!   latencies after the doorbell, which overlaps the controller's work.
//!
//! Every poll reads the clock once more than without the option (its start),
//! and a busy poll twice more; the histograms are allocated before the run.

use serde_json::{json, Value};
use spdk_io::env::now_ns;
use spdk_io::util::histogram::Histogram;

/// One measured span: its histogram (SPDK's buckets, ns) and exact sum.
struct Span {
    hist: Histogram,
    sum_ns: u128,
}

impl Span {
    fn new() -> Span {
        Span {
            hist: Histogram::new(),
            sum_ns: 0,
        }
    }

    fn add(&mut self, ns: u64) {
        self.hist.tally(ns);
        self.sum_ns += ns as u128;
    }

    fn mean_ns(&self) -> f64 {
        self.sum_ns as f64 / self.hist.total().max(1) as f64
    }

    /// `{"mean", "p50", "p99", "max"}` in µs.
    fn json(&self) -> Value {
        let us = |ns: u64| ns as f64 / 1000.0;
        json!({
            "mean": self.mean_ns() / 1000.0,
            "p50": us(self.hist.value_at(0.50)),
            "p99": us(self.hist.value_at(0.99)),
            "max": us(self.hist.max()),
        })
    }

    /// "mean/p50/p99" in µs, for the text report.
    fn text(&self) -> String {
        let us = |ns: u64| ns as f64 / 1000.0;
        format!(
            "{:.2}/{:.2}/{:.2}",
            self.mean_ns() / 1000.0,
            us(self.hist.value_at(0.50)),
            us(self.hist.value_at(0.99))
        )
    }
}

/// The per-batch timeline of one queue pair.
pub struct Timeline {
    /// Start of the current poll.
    poll_start: u64,
    /// End of the current busy poll's reap.
    reaped_at: u64,
    /// When the current busy poll's commands were built (before the doorbell).
    built_at: u64,
    /// When the last SQ doorbell was written (None: no batch waits for
    /// the controller, e.g. before the first one).
    rung_at: Option<u64>,
    reap: Span,
    submit: Span,
    build: Span,
    doorbell: Span,
    round_guest: Span,
    controller: Span,
    account: Span,
    /// Busy polls (batches) and the completions they reaped.
    batches: u64,
    completions: u64,
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Timeline {
    /// An empty timeline, its histograms allocated.
    pub fn new() -> Timeline {
        Timeline {
            poll_start: 0,
            reaped_at: 0,
            built_at: 0,
            rung_at: None,
            reap: Span::new(),
            submit: Span::new(),
            build: Span::new(),
            doorbell: Span::new(),
            round_guest: Span::new(),
            controller: Span::new(),
            account: Span::new(),
            batches: 0,
            completions: 0,
        }
    }

    /// A poll starts.
    #[inline]
    pub fn poll_start(&mut self) {
        self.poll_start = now_ns();
    }

    /// The poll found `n` completions, reaped by `now`: the controller's
    /// span since the last doorbell ends where this poll began.
    pub fn reaped(&mut self, n: usize, now: u64) {
        self.batches += 1;
        self.completions += n as u64;
        if let Some(rung) = self.rung_at.take() {
            self.controller.add(self.poll_start.saturating_sub(rung));
        }
        self.reaped_at = now;
        self.reap.add(now.saturating_sub(self.poll_start));
    }

    /// The poll's resubmissions are in the SQ; the doorbell is next.
    pub fn built(&mut self) {
        let now = now_ns();
        self.build.add(now.saturating_sub(self.reaped_at));
        self.built_at = now;
    }

    /// The poll's resubmissions went out: the SQ doorbell was written by
    /// now (after [`Timeline::built`]).
    pub fn rung(&mut self) {
        let now = now_ns();
        self.doorbell.add(now.saturating_sub(self.built_at));
        self.submit.add(now.saturating_sub(self.reaped_at));
        self.round_guest.add(now.saturating_sub(self.poll_start));
        self.rung_at = Some(now);
    }

    /// The reaped I/Os were accounted (after the doorbell).
    pub fn accounted(&mut self) {
        let now = now_ns();
        let from = self.rung_at.unwrap_or(self.reaped_at);
        self.account.add(now.saturating_sub(from));
    }

    /// The thread's share of the round trip: its reap and submit time over
    /// that plus the controller's (0 when nothing was measured).
    pub fn guest_share(&self) -> f64 {
        let g = self.round_guest.sum_ns as f64;
        let c = self.controller.sum_ns as f64;
        if g + c == 0.0 {
            0.0
        } else {
            g / (g + c)
        }
    }

    /// The summary as JSON: spans in µs (mean, p50, p99, max).
    pub fn json(&self) -> Value {
        json!({
            "batches": self.batches,
            "completions_per_batch": self.completions as f64 / self.batches.max(1) as f64,
            "reap_us": self.reap.json(),
            "submit_us": self.submit.json(),
            "build_us": self.build.json(),
            "doorbell_us": self.doorbell.json(),
            "guest_us": self.round_guest.json(),
            "controller_us": self.controller.json(),
            "account_us": self.account.json(),
            "guest_share": self.guest_share(),
        })
    }

    /// The summary as one text block.
    pub fn text(&self, name: &str) -> String {
        format!(
            "Timeline of {name}: {} batches, {:.1} completions per batch; \
             per batch, mean/p50/p99 us:\n  reap {}  submit {} (build {}, doorbell {})  \
             guest (reap+submit) {}\n  \
             controller (doorbell to next completions) {}  account (after the doorbell) {}\n  \
             guest share of the round trip {:.1} %",
            self.batches,
            self.completions as f64 / self.batches.max(1) as f64,
            self.reap.text(),
            self.submit.text(),
            self.build.text(),
            self.doorbell.text(),
            self.round_guest.text(),
            self.controller.text(),
            self.account.text(),
            self.guest_share() * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_split_a_round_into_guest_and_controller() {
        let mut t = Timeline::new();
        // Round 1: no doorbell before it, so no controller span yet.
        t.poll_start = 1_000;
        t.reaped(32, 1_400);
        t.rung_at = None;
        t.reaped_at = 1_400;
        // Fake the doorbell at 2_000 (rung() reads the clock itself).
        t.submit.add(600);
        t.round_guest.add(1_000);
        t.rung_at = Some(2_000);
        // Round 2: the next busy poll starts at 10_000.
        t.poll_start = 10_000;
        t.reaped(32, 10_500);
        assert_eq!(t.batches, 2);
        assert_eq!(t.controller.hist.total(), 1);
        assert_eq!(t.controller.sum_ns, 8_000);
        assert_eq!(t.reap.sum_ns, 400 + 500);
        let share = t.guest_share();
        assert!((share - 1_000.0 / 9_000.0).abs() < 1e-9, "{share}");
        let j = t.json();
        assert_eq!(j["batches"], 2);
        assert_eq!(j["completions_per_batch"], 32.0);
        assert!((j["controller_us"]["mean"].as_f64().unwrap() - 8.0).abs() < 1e-9);
    }

    #[test]
    fn rung_and_accounted_measure_from_the_last_stamps() {
        let mut t = Timeline::new();
        t.poll_start();
        let now = now_ns();
        t.reaped(3, now);
        t.built();
        t.rung();
        t.accounted();
        assert_eq!(t.submit.hist.total(), 1);
        assert_eq!(t.build.hist.total(), 1);
        assert_eq!(t.doorbell.hist.total(), 1);
        // The submission's two parts add up to it.
        assert_eq!(t.build.sum_ns + t.doorbell.sum_ns, t.submit.sum_ns);
        assert_eq!(t.round_guest.hist.total(), 1);
        assert_eq!(t.account.hist.total(), 1);
        assert!(t.rung_at.is_some());
        // No doorbell preceded the first batch: no controller span.
        assert_eq!(t.controller.hist.total(), 0);
        assert!(t.text("q").contains("3.0 completions per batch"));
    }
}
