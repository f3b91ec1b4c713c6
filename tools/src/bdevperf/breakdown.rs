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
//! Then the largest latencies and the longest cycles, each with the
//! `CLOCK_MONOTONIC` time it ended at (to be matched against a scheduler
//! or interrupt trace of the core, `perf record -k mono`), and the reactor
//! thread's context switches, page faults and CPU migrations over the job.
//! A diagnostic: one system call per batch and two clock reads per I/O.

use super::largest::{Largest, Seen};
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

/// The classes of an I/O, as [`Seen::tag`]s and row names.
const CLASSES: [&str; 4] = ["clean", "preempted", "page fault", "ramp"];

/// The reactor thread's counters over a job: context switches (voluntary,
/// involuntary), page faults (minor, major) and CPU migrations.
#[derive(Clone, Copy, Default)]
struct Totals([i64; 5]);

impl Totals {
    fn now() -> Totals {
        let mut t = [0i64; 5];
        if let Ok(u) = getrusage(UsageWho::RUSAGE_THREAD) {
            t[0] = u.voluntary_context_switches();
            t[1] = u.involuntary_context_switches();
            t[2] = u.minor_page_faults();
            t[3] = u.major_page_faults();
        }
        t[4] = migrations().unwrap_or(-1);
        Totals(t)
    }
}

/// The calling thread's CPU migrations (`se.nr_migrations` of
/// /proc/thread-self/sched), if the kernel shows them.
fn migrations() -> Option<i64> {
    let s = std::fs::read_to_string("/proc/thread-self/sched").ok()?;
    let line = s.lines().find(|l| l.starts_with("se.nr_migrations"))?;
    line.rsplit(':').next()?.trim().parse().ok()
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
    /// The largest latencies, tagged with their class (see [`CLASSES`]).
    largest: RefCell<Largest>,
    /// The longest batch cycles, tagged 1 when preempted.
    longest_cycles: RefCell<Largest>,
    /// The clock at the start.
    start: u64,
    start_totals: Totals,
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
            largest: RefCell::new(Largest::new()),
            longest_cycles: RefCell::new(Largest::new()),
            start: ticks(),
            start_totals: Totals::now(),
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
                let preempted = cur.involuntary != prev.involuntary;
                let h = if preempted {
                    &self.cycle_preempted
                } else {
                    &self.cycle_clean
                };
                h.borrow_mut().tally_n(cycle, 1);
                self.longest_cycles
                    .borrow_mut()
                    .offer(cycle, complete_tick, u8::from(preempted));
            }
            self.now.set(cur);
            self.batch_tick.set(complete_tick);
        }
        let cur = self.now.get();
        let (class, tag) = if sub.batch == 0 {
            (&self.ramp, 3)
        } else if cur.involuntary != sub.involuntary {
            (&self.preempted, 1)
        } else if cur.faults != sub.faults {
            (&self.faulted, 2)
        } else {
            (&self.clean, 0)
        };
        class.borrow_mut().tally_n(lat, 1);
        self.largest.borrow_mut().offer(lat, complete_tick, tag);
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
        self.render_largest(&mut o);
        o
    }

    /// The largest latencies and cycles with their times, and the
    /// thread's counters since the start. Never inlined: the report is
    /// reached from the job's last completion, and code folded in there
    /// changes how the completion path around it is compiled.
    #[inline(never)]
    fn render_largest(&self, o: &mut String) {
        use std::fmt::Write;
        let t0 = self.start;
        let when = |s: &Seen| (s.at.saturating_sub(t0) as f64 / 1e6, s.mono as f64 / 1e9);
        let _ = writeln!(
            o,
            " largest latencies: us, ms since the job's start, CLOCK_MONOTONIC s at completion, class"
        );
        for s in self.largest.borrow().values() {
            let (ms, mono) = when(s);
            let class = CLASSES.get(usize::from(s.tag)).copied().unwrap_or("?");
            let _ = writeln!(
                o,
                "   {:>10.3} {:>10.3} {:>18.6} {class}",
                s.value as f64 / 1e3,
                ms,
                mono
            );
        }
        let _ = writeln!(
            o,
            " longest batch cycles: us, ms since the job's start, CLOCK_MONOTONIC s at its end"
        );
        for s in self.longest_cycles.borrow().values() {
            let (ms, mono) = when(s);
            let mark = if s.tag == 1 { " preempted" } else { "" };
            let _ = writeln!(
                o,
                "   {:>10.3} {:>10.3} {:>18.6}{mark}",
                s.value as f64 / 1e3,
                ms,
                mono
            );
        }
        let (a, b) = (self.start_totals.0, Totals::now().0);
        let d = |i: usize| b[i].saturating_sub(a[i]);
        let migrations = if a[4] < 0 || b[4] < 0 {
            String::from("-")
        } else {
            d(4).to_string()
        };
        let _ = writeln!(
            o,
            " reactor thread over the job: {} voluntary and {} involuntary context switches, {} minor and {} major page faults, {migrations} CPU migrations",
            d(0),
            d(1),
            d(2),
            d(3)
        );
    }
}
