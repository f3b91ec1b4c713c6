//! A deterministic test harness in the spirit of SPDK's `ut_multithread`:
//! several lightweight threads on the test's OS thread, polled by hand.
#![allow(dead_code)]

pub mod counted_device;

use spdk_io::thread::{Thread, ThreadOpts};

/// `n` threads named `ut0..`, polled by hand.
pub struct Harness {
    pub threads: Vec<Thread>,
}

impl Harness {
    pub fn new(n: usize) -> Harness {
        Harness::with_ring(n, 4096)
    }

    pub fn with_ring(n: usize, msg_ring_size: usize) -> Harness {
        let threads = (0..n)
            .map(|i| {
                Thread::with_opts(ThreadOpts {
                    name: format!("ut{i}"),
                    msg_ring_size,
                    ..ThreadOpts::default()
                })
            })
            .collect();
        Harness { threads }
    }

    pub fn t(&self, i: usize) -> &Thread {
        &self.threads[i]
    }

    /// Runs `f` with thread `i` current (SPDK's `set_thread(i)`).
    pub fn on<R>(&self, i: usize, f: impl FnOnce() -> R) -> R {
        self.threads[i].enter(f)
    }

    /// Polls thread `i` until it is idle; returns how many polls were busy.
    pub fn poll_thread(&self, i: usize) -> usize {
        let mut n = 0;
        while self.threads[i].poll(0) {
            n += 1;
            assert!(n < 10_000_000, "thread {i} never went idle");
        }
        n
    }

    /// Polls every thread round-robin until a whole round is idle
    /// (SPDK's `poll_threads`).
    pub fn poll_threads(&self) {
        for round in 0.. {
            let mut busy = false;
            for t in &self.threads {
                busy |= t.poll(0);
            }
            if !busy {
                return;
            }
            assert!(round < 10_000_000, "threads never went idle");
        }
    }

    /// Exits every thread, polls until all have exited, destroys them.
    pub fn finish(self) {
        for t in &self.threads {
            t.exit();
        }
        for _ in 0..1_000_000 {
            if self.threads.iter().all(|t| t.is_exited()) {
                break;
            }
            for t in &self.threads {
                t.poll(0);
            }
        }
        for t in self.threads {
            assert!(t.is_exited(), "thread {} did not exit", t.name());
            assert!(!t.exit_timed_out(), "thread {} exit timed out", t.name());
            t.destroy().unwrap();
        }
    }
}
