//! The NVMe/TCP I/O path allocates nothing: thousands of reads and writes
//! (writes by R2T and H2CData, reads by C2HData, digests on) through a
//! TCP queue pair against the scripted target on 127.0.0.1, counting the
//! allocations of the test's own thread (the target's threads are not part
//! of the driver's path).

use crate::nvme_tcp_common::target::{self, TargetOpts, SUBNQN};
use crate::qpair_loop::{allocations_over, batched_qpair};
use spdk_io::env::{self, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts};

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
    let mut qp = batched_qpair(&c);
    assert_eq!(
        allocations_over(&mut qp, &ns, 10_000),
        0,
        "allocations on the submitting thread over 10,000 NVMe/TCP I/Os"
    );
}
