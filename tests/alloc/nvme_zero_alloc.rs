//! The I/O path allocates nothing: 100,000+ I/Os through a qpair against the
//! software controller, counted by a global allocator that counts the
//! allocations of the test's own thread (the controller's worker thread is
//! not part of the driver's path). The same holds for the async queue pair.

use crate::counting::allocs;
use crate::qpair_loop::{allocations_over, batched_qpair};
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{AsyncQPair, Controller, ControllerOpts, NvmeIo, QPairOpts};
use std::sync::Arc;

#[test]
fn a_hundred_thousand_ios_allocate_nothing_on_the_submitting_thread() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let emu = Arc::new(
        EmuController::builder()
            .shadow_doorbells(true)
            .namespace(512, 65536)
            .build()
            .unwrap(),
    );
    let c = Controller::attach(emu, ControllerOpts::default()).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = batched_qpair(&c);
    assert_eq!(
        allocations_over(&mut qp, &ns, 100_000),
        0,
        "heap allocations on the I/O path over 100,000 I/Os"
    );
}

/// Keeps `qd` async I/Os in flight until `total` completed, polling the
/// futures by hand with `waker`; returns the I/Os completed.
fn run_async(
    qp: &AsyncQPair,
    ns: &spdk_io::nvme::Namespace,
    bufs: &mut Vec<DmaBuf>,
    inflight: &mut [Option<NvmeIo>],
    waker: &std::task::Waker,
    total: u64,
) -> u64 {
    use std::future::Future;
    use std::task::{Context, Poll};
    let mut cx = Context::from_waker(waker);
    let (mut submitted, mut done) = (0u64, 0u64);
    while done < total {
        for slot in inflight.iter_mut() {
            if slot.is_none() && submitted < total {
                let buf = bufs.pop().expect("one buffer per slot");
                let lba = (submitted * 8) % (ns.num_blocks() - 8);
                *slot = Some(if submitted % 2 == 0 {
                    qp.write(ns, buf, lba, 8)
                } else {
                    qp.read(ns, buf, lba, 8)
                });
                submitted += 1;
            }
            if let Some(f) = slot {
                if let Poll::Ready(r) = std::pin::Pin::new(f).poll(&mut cx) {
                    let buf = r.expect("async I/O");
                    bufs.push(buf.into_dma_buf().expect("buffer handed back"));
                    *slot = None;
                    done += 1;
                }
            }
        }
    }
    done
}

struct NoopWake;
impl std::task::Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn async_queue_pair_ios_allocate_nothing_on_the_submitting_thread() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let emu = Arc::new(
        EmuController::builder()
            .namespace(512, 65536)
            .build()
            .unwrap(),
    );
    let c = Controller::attach(emu, ControllerOpts::default()).unwrap();
    let ns = c.namespace(1).unwrap();
    let qp = AsyncQPair::new(
        c.alloc_io_qpair(QPairOpts {
            io_queue_size: 64,
            ..QPairOpts::default()
        })
        .unwrap(),
    );
    let qd = 32;
    let mut bufs: Vec<DmaBuf> = (0..qd)
        .map(|_| DmaBuf::alloc_zeroed(4096, 4096).unwrap())
        .collect();
    let mut inflight: Vec<Option<NvmeIo>> = (0..qd).map(|_| None).collect();
    let waker = std::task::Waker::from(Arc::new(NoopWake));
    // Warm-up.
    run_async(&qp, &ns, &mut bufs, &mut inflight, &waker, 1_000);
    let before = allocs();
    let done = run_async(&qp, &ns, &mut bufs, &mut inflight, &waker, 50_000);
    let n = allocs() - before;
    assert_eq!(done, 50_000);
    assert_eq!(
        n, 0,
        "heap allocations on the async I/O path over 50,000 I/Os"
    );
    assert_eq!(qp.outstanding(), 0);
}
