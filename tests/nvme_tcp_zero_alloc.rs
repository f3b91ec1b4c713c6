//! The NVMe/TCP I/O path allocates nothing: thousands of reads and writes
//! (writes by R2T and H2CData, reads by C2HData, digests on) through a
//! TCP queue pair against the scripted target on 127.0.0.1, counted by a
//! global allocator that counts the allocations of the test's own thread
//! (the target's threads are not part of the driver's path).

mod nvme_tcp_common;

use nvme_tcp_common::target::{self, TargetOpts, SUBNQN};
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, IoCompletion, QPair, QPairOpts};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
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

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Completed buffers come back here; capacity fixed up front.
type Free = Rc<RefCell<Vec<DmaBuf>>>;

fn on_done(free: &Free, done: &Rc<Cell<u64>>, c: IoCompletion) {
    assert!(c.result.is_ok(), "I/O failed: {:?}", c.result);
    free.borrow_mut()
        .push(c.buf.into_dma_buf().expect("buffer handed back"));
    done.set(done.get() + 1);
}

fn run(
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

#[test]
fn thousands_of_tcp_ios_allocate_nothing_on_the_submitting_thread() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let t = target::start(TargetOpts {
        in_capsule: 2048, // 4 KiB writes go by R2T
        ..TargetOpts::default()
    });
    let trid = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{SUBNQN}",
        t.addr.port()
    )
    .parse()
    .unwrap();
    let c = nvme::connect(
        &trid,
        &ControllerOpts {
            header_digest: true,
            data_digest: true,
            ..ControllerOpts::default()
        },
    )
    .unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 64,
            delay_cmd_submit: true,
            ..QPairOpts::default()
        })
        .unwrap();
    let qd = 32;
    let free: Free = Rc::new(RefCell::new(Vec::with_capacity(qd)));
    for _ in 0..qd {
        free.borrow_mut()
            .push(DmaBuf::alloc_zeroed(4096, 4096).unwrap());
    }
    let done = Rc::new(Cell::new(0u64));
    // Warm-up.
    run(&mut qp, &ns, &free, &done, 1_000);
    COUNTING.with(|c| c.set(true));
    drop(std::hint::black_box(Vec::<u8>::with_capacity(16)));
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCS.with(|a| a.replace(0)),
        1,
        "the counting allocator counts"
    );
    COUNTING.with(|c| c.set(true));
    run(&mut qp, &ns, &free, &done, 10_000);
    COUNTING.with(|c| c.set(false));
    assert_eq!(
        ALLOCS.with(|a| a.get()),
        0,
        "allocations on the submitting thread over 10,000 NVMe/TCP I/Os"
    );
}
