//! The per-I/O operations of the env allocate nothing: taking and returning
//! pool elements and translating buffer addresses, after warm-up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use spdk_io::env::{self, DmaBuf, DmaPool, EnvOpts};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn pool_get_put_and_translation_allocate_nothing() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let pool = DmaPool::new(256, 4096, 4096).unwrap();
    let buf = DmaBuf::alloc(1 << 20, 4096).unwrap();
    let mut held = Vec::with_capacity(256);
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut sum = 0u64;
    for round in 0..1000 {
        for _ in 0..32 {
            held.push(pool.get().unwrap());
        }
        for e in &held {
            sum = sum.wrapping_add(e.iova());
        }
        held.clear();
        sum = sum.wrapping_add(buf.iova_at(round * 1000));
        sum = sum.wrapping_add(buf.contiguous_len(round) as u64);
        for (iova, n) in buf.extents(round, 8192) {
            sum = sum.wrapping_add(iova + n as u64);
        }
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    assert!(sum != 0);
    assert_eq!(after - before, 0, "allocations on the I/O path");
    assert_eq!(pool.available(), 256);
}
