//! Shared by the zero-allocation tests of the NVMe driver (PCIe on the
//! software controller, and TCP): a global allocator that counts the
//! allocations of the test's own thread while counting is on, and a
//! write/read loop on a queue pair that recycles its buffers.
// Each test binary uses what it needs of this module.
#![allow(dead_code)]

use spdk_io::env::DmaBuf;
use spdk_io::nvme::{IoCompletion, QPair};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

pub struct Counting;

thread_local! {
    pub static COUNTING: Cell<bool> = const { Cell::new(false) };
    pub static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only bumps thread-local counters.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

fn count() {
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        }
    });
}

/// Completed buffers come back here; capacity fixed up front.
pub type Free = Rc<RefCell<Vec<DmaBuf>>>;

fn on_done(free: &Free, done: &Rc<Cell<u64>>, c: IoCompletion) {
    assert!(c.result.is_ok(), "I/O failed: {:?}", c.result);
    free.borrow_mut()
        .push(c.buf.into_dma_buf().expect("buffer handed back"));
    done.set(done.get() + 1);
}

pub fn run(
    qp: &mut QPair,
    ns: &spdk_io::nvme::Namespace,
    free: &Free,
    done: &Rc<Cell<u64>>,
    total: u64,
) {
    let mut submitted = 0u64;
    let start = done.get();
    while done.get() - start < total {
        loop {
            if submitted >= total {
                break;
            }
            let Some(buf) = free.borrow_mut().pop() else {
                break;
            };
            let lba = (submitted * 8) % (ns.num_blocks() - 8);
            let (f, d) = (free.clone(), done.clone());
            let cb = move |_: &mut QPair, c: IoCompletion| on_done(&f, &d, c);
            let r = if submitted % 2 == 0 {
                qp.write(ns, buf, lba, 8, cb)
            } else {
                qp.read(ns, buf, lba, 8, cb)
            };
            if let Err(e) = r {
                panic!("submit failed: {}", e.error);
            }
            submitted += 1;
        }
        qp.flush();
        qp.process_completions(0).expect("process completions");
    }
}
