//! `--latency-breakdown`: where a job's latency goes. Each I/O's time from
//! submission to completion is counted in one of four histograms by what
//! happened while it was in flight, seen through the reactor thread's
//! counters (`getrusage(RUSAGE_THREAD)`, read once per completion batch):
//!
//! - `ramp`: submitted before the job's first completion (the first
//!   queue-depth I/Os, submitted one after another from the job's start);
//! - `preempted`: the kernel took the core away (an involuntary context
//!   switch) while it was in flight;
//! - `page fault`: the thread faulted a page in while it was in flight;
//! - `clean`: none of these: the time the bdev layer, the module and the
//!   other I/O of the batch took.
//!
//! Beside them: the callback delay (from the completion's timestamp to its
//! callback), the cost of recording one latency, and the interval between
//! completion batches (the poll cycle), split into clean and preempted.
//! A diagnostic: one system call per batch and two clock reads per I/O.

use nix::sys::resource::{getrusage, UsageWho};
use spdk_io::thread::ticks;
use spdk_io::util::histogram::Histogram;
use std::cell::{Cell, RefCell};

/// The reactor thread's counters at one batch.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Completion batches seen before this sample (0: the job's start).
    pub(crate) batch: u64,
    involuntary: i64,
    faults: i64,
}

fn read(batch: u64) -> Sample {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(u) => Sample {
            batch,
            involuntary: u.involuntary_context_switches(),
            faults: u.minor_page_faults() + u.major_page_faults(),
        },
        Err(_) => Sample {
            batch,
            ..Sample::default()
        },
    }
}

/// One job's breakdown.
pub(crate) struct Breakdown {
    batch_tick: Cell<u64>,
    now: Cell<Sample>,
    ramp: RefCell<Histogram>,
    preempted: RefCell<Histogram>,
    faulted: RefCell<Histogram>,
    clean: RefCell<Histogram>,
    callback: RefCell<Histogram>,
    recording: RefCell<Histogram>,
    cycle_clean: RefCell<Histogram>,
    cycle_preempted: RefCell<Histogram>,
}

impl Breakdown {
    /// A breakdown starting now (the job's start: batch 0).
    pub(crate) fn new() -> Breakdown {
        Breakdown {
            batch_tick: Cell::new(0),
            now: Cell::new(read(0)),
            ramp: Default::default(),
            preempted: Default::default(),
            faulted: Default::default(),
            clean: Default::default(),
            callback: Default::default(),
            recording: Default::default(),
            cycle_clean: Default::default(),
            cycle_preempted: Default::default(),
        }
    }

    /// The sample an I/O submitted now is compared against at completion.
    #[inline]
    pub(crate) fn at_submit(&self) -> Sample {
        self.now.get()
    }

    /// Counts one completion stamped `complete_tick` with latency `lat`,
    /// of an I/O submitted at sample `sub`; `entered` is the clock read
    /// when its callback began, `recorded` after its latency was recorded.
    pub(crate) fn complete(
        &self,
        sub: Sample,
        complete_tick: u64,
        lat: u64,
        entered: u64,
        recorded: u64,
    ) {
        let last = self.batch_tick.get();
        if complete_tick != last {
            let prev = self.now.get();
            let cur = read(prev.batch + 1);
            if last != 0 {
                let cycle = complete_tick.saturating_sub(last);
                let h = if cur.involuntary != prev.involuntary {
                    &self.cycle_preempted
                } else {
                    &self.cycle_clean
                };
                h.borrow_mut().tally_n(cycle, 1);
            }
            self.now.set(cur);
            self.batch_tick.set(complete_tick);
        }
        let cur = self.now.get();
        let class = if sub.batch == 0 {
            &self.ramp
        } else if cur.involuntary != sub.involuntary {
            &self.preempted
        } else if cur.faults != sub.faults {
            &self.faulted
        } else {
            &self.clean
        };
        class.borrow_mut().tally_n(lat, 1);
        self.callback
            .borrow_mut()
            .tally_n(entered.saturating_sub(complete_tick), 1);
        self.recording
            .borrow_mut()
            .tally_n(recorded.saturating_sub(entered), 1);
    }

    /// The clock now (for `entered` / `recorded`).
    #[inline]
    pub(crate) fn clock() -> u64 {
        ticks()
    }

    /// The breakdown as text rows: class, count, share, percentiles, max.
    pub(crate) fn render(&self, job: &str) -> String {
        use std::fmt::Write;
        let rows = [
            ("clean", &self.clean),
            ("preempted", &self.preempted),
            ("page fault", &self.faulted),
            ("ramp", &self.ramp),
            ("callback delay", &self.callback),
            ("recording", &self.recording),
            ("batch cycle", &self.cycle_clean),
            ("cycle preempted", &self.cycle_preempted),
        ];
        let ios: u64 = [&self.clean, &self.preempted, &self.faulted, &self.ramp]
            .iter()
            .map(|h| h.borrow().total())
            .sum();
        let mut o = String::new();
        let _ = writeln!(o, "\n Latency breakdown of {job} (us)");
        let _ = writeln!(
            o,
            " {:<16} {:>10} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "", "count", "share", "min", "p50", "p99", "p99.9", "p99.99", "max"
        );
        for (name, h) in rows {
            let h = h.borrow();
            let n = h.total();
            if n == 0 {
                let _ = writeln!(o, " {name:<16} {n:>10}");
                continue;
            }
            let q = |p: f64| h.value_at(p) as f64 / 1e3;
            let share = if name == "batch cycle" || name == "cycle preempted" || ios == 0 {
                String::from("-")
            } else {
                format!("{:.3}%", n as f64 * 100.0 / ios as f64)
            };
            let _ = writeln!(
                o,
                " {name:<16} {n:>10} {share:>7} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.3}",
                h.min() as f64 / 1e3,
                q(0.50),
                q(0.99),
                q(0.999),
                q(0.9999),
                h.max() as f64 / 1e3,
            );
        }
        o
    }
}
