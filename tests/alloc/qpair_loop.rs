//! A write/read loop on a queue pair that recycles its buffers, shared by
//! the zero-allocation tests of the NVMe driver (PCIe on the software
//! controller, and TCP).

use spdk_io::env::DmaBuf;
use spdk_io::nvme::{IoCompletion, QPair};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Completed buffers come back here; capacity fixed up front.
pub type Free = Rc<RefCell<Vec<DmaBuf>>>;

fn on_done(free: &Free, done: &Rc<Cell<u64>>, c: IoCompletion) {
    assert!(c.result.is_ok(), "I/O failed: {:?}", c.result);
    free.borrow_mut()
        .push(c.buf.into_dma_buf().expect("buffer handed back"));
    done.set(done.get() + 1);
}

/// Keeps every buffer of `free` in flight, alternating writes and reads of
/// 8 blocks, until `total` more I/Os completed.
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

/// An I/O queue pair of 64 entries whose doorbell rings once per batch
/// (`delay_cmd_submit`).
pub fn batched_qpair(c: &spdk_io::nvme::Controller) -> QPair {
    c.alloc_io_qpair(spdk_io::nvme::QPairOpts {
        io_queue_size: 64,
        delay_cmd_submit: true,
        ..spdk_io::nvme::QPairOpts::default()
    })
    .unwrap()
}

/// Runs 1,000 I/Os at queue depth 32 to warm up, then `total` more, and
/// returns the allocations the calling thread made during those `total`
/// (all of them completed, each once).
pub fn allocations_over(qp: &mut QPair, ns: &spdk_io::nvme::Namespace, total: u64) -> u64 {
    let qd = 32;
    let free: Free = Rc::new(RefCell::new(Vec::with_capacity(qd)));
    for _ in 0..qd {
        free.borrow_mut()
            .push(DmaBuf::alloc_zeroed(4096, 4096).unwrap());
    }
    let done = Rc::new(Cell::new(0u64));
    // Warm-up.
    run(qp, ns, &free, &done, 1_000);
    let n = crate::counting::allocations_in(|| run(qp, ns, &free, &done, total));
    assert_eq!(done.get(), 1_000 + total, "every I/O completed once");
    n
}
