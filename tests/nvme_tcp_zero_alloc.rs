//! The NVMe/TCP I/O path allocates nothing: thousands of reads and writes
//! (writes by R2T and H2CData, reads by C2HData, digests on) through a
//! TCP queue pair against the scripted target on 127.0.0.1, counted by a
//! global allocator that counts the allocations of the test's own thread
//! (the target's threads are not part of the driver's path).

mod nvme_tcp_common;
#[path = "nvme_common/zero_alloc.rs"]
mod zero_alloc;

use zero_alloc::{run, Free, ALLOCS, COUNTING};

use nvme_tcp_common::target::{self, TargetOpts, SUBNQN};
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, QPairOpts};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[global_allocator]
static GLOBAL: zero_alloc::Counting = zero_alloc::Counting;

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
