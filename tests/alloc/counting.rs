//! The binary's global allocator: it counts every allocation in a counter
//! of the calling OS thread, so tests running in parallel never see each
//! other's allocations. A test measures on the thread that runs the path
//! it proves ([`allocations_in`], or [`allocs`] before and after an await),
//! or asks a thread it spawned for that thread's count ([`Probe`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Forwards every call to the system allocator; counts allocations,
/// zeroed allocations and reallocations in the calling thread's counter.
pub struct Counting;

thread_local! {
    /// Allocations made by this OS thread so far. A const-initialised
    /// `Cell` without a destructor: reading it never allocates, and it stays
    /// readable while the thread is torn down.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// only other work is bumping a const-initialised thread-local `Cell`,
// which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from `System` with layout `l` (every allocation
        // of this allocator does).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: `p` came from `System` with layout `l`; the caller's
        // contract for `realloc` holds for `n`.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Heap allocations made by the calling OS thread so far.
pub fn allocs() -> u64 {
    ALLOCS.with(|a| a.get())
}

/// Runs `f` and returns the heap allocations the calling OS thread made
/// while it ran.
pub fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = allocs();
    f();
    allocs() - before
}

/// Reads the allocation count of another OS thread (a target or reactor
/// thread a test spawned): that thread calls [`Probe::serve`] between two
/// polls, and the test's [`Probe::read`] returns the count `serve` saw. A
/// read therefore falls between two polls of the thread, never inside one.
#[derive(Default)]
pub struct Probe {
    asked: AtomicU64,
    answered: AtomicU64,
    count: AtomicU64,
}

impl Probe {
    /// On the measured thread, between polls: answers a pending read.
    pub fn serve(&self) {
        let asked = self.asked.load(Ordering::Acquire);
        if asked != self.answered.load(Ordering::Relaxed) {
            self.count.store(allocs(), Ordering::Relaxed);
            self.answered.store(asked, Ordering::Release);
        }
    }

    /// The measured thread's allocations so far; panics if it does not
    /// answer within `limit` (it stopped polling).
    pub fn read(&self, limit: Duration) -> u64 {
        let asked = self.asked.fetch_add(1, Ordering::AcqRel) + 1;
        let start = Instant::now();
        while self.answered.load(Ordering::Acquire) != asked {
            assert!(
                start.elapsed() < limit,
                "the measured thread did not report its allocations within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        self.count.load(Ordering::Relaxed)
    }
}

#[test]
fn the_counter_counts_this_threads_allocations_and_no_other_threads() {
    use std::sync::Arc;
    let mine = allocations_in(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(16))));
    assert_eq!(mine, 1, "one deliberate allocation is counted once");
    // The other thread's count, plus one once it is there (0: not yet).
    let theirs = Arc::new(AtomicU64::new(0));
    let t = theirs.clone();
    // Spawning allocates here (the thread's name, its result slot): the
    // wait below is measured on its own.
    let other = std::thread::spawn(move || {
        let n = allocations_in(|| {
            for i in 0..1000usize {
                drop(std::hint::black_box(Vec::<u8>::with_capacity(i + 1)));
            }
        });
        t.store(n + 1, Ordering::Release);
    });
    // This thread waits, without allocating, while the other allocates.
    let waiting = allocations_in(|| {
        let start = Instant::now();
        while theirs.load(Ordering::Acquire) == 0 {
            assert!(start.elapsed() < Duration::from_secs(60), "no report");
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    other.join().unwrap();
    assert_eq!(
        theirs.load(Ordering::Acquire) - 1,
        1000,
        "the other thread counts its own"
    );
    assert_eq!(waiting, 0, "another thread's allocations counted here");
}

#[test]
fn a_probe_reads_the_count_of_the_thread_that_serves_it() {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let probe = Arc::new(Probe::default());
    let (rounds, done, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (p, r, d, s) = (probe.clone(), rounds.clone(), done.clone(), stop.clone());
    let served = std::thread::spawn(move || {
        let start = Instant::now();
        while !s.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            p.serve();
            // One allocation per round asked for.
            if d.load(Ordering::Relaxed) < r.load(Ordering::Acquire) {
                drop(std::hint::black_box(Vec::<u8>::with_capacity(8)));
                d.fetch_add(1, Ordering::Release);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    let first = probe.read(Duration::from_secs(30));
    rounds.store(10, Ordering::Release);
    let start = Instant::now();
    while done.load(Ordering::Acquire) < 10 {
        assert!(start.elapsed() < Duration::from_secs(30), "rounds not run");
        std::thread::sleep(Duration::from_millis(1));
    }
    let second = probe.read(Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    served.join().unwrap();
    assert_eq!(
        second - first,
        10,
        "ten rounds of one allocation each between the reads"
    );
}
