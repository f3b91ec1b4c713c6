//! The target's data path allocates nothing after warm-up: the counting
//! allocator counts the target thread's allocations while spdk-io's
//! initiator writes and reads back 4 KiB (in-capsule) and then 64 KiB (R2T,
//! H2CData, C2HData) I/Os through it on 127.0.0.1. (A command slot whose
//! transfer size changes makes a new window on its buffer: one small
//! allocation per change of size, none while sizes repeat.)

use crate::counting::Probe;
use crate::nvmf_common::{malloc, opts, polled_thread, qp_opts, random, write_read, HOSTNQN};
use spdk_io::nvme;
use spdk_io::nvmf::tcp::{PollGroup, TcpTransport};
use spdk_io::nvmf::{SubsystemOpts, Target, TransportOpts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

#[test]
fn reads_and_writes_through_the_target_allocate_nothing_on_its_thread_after_warm_up() {
    malloc("NvmfAllocMalloc", 4096, 512);
    let nqn = "nqn.2016-06.io.spdk-io:alloc";
    let target = Target::new(TransportOpts::default()).unwrap();
    let s = target
        .create_subsystem(
            nqn,
            SubsystemOpts {
                allow_any_host: true,
                ..SubsystemOpts::default()
            },
        )
        .unwrap();
    s.add_ns("NvmfAllocMalloc", None, None, None).unwrap();
    let (probe, stop) = (Arc::new(Probe::default()), Arc::new(AtomicBool::new(false)));
    let (tx, rx) = mpsc::channel();
    let (p2, s2, tg) = (probe.clone(), stop.clone(), target.clone());
    let setup = move || {
        let g = PollGroup::start(tg.clone()).unwrap();
        let tr = TcpTransport::new(tg, vec![g.handle()]).unwrap();
        tx.send(tr.listen("127.0.0.1:0".parse().unwrap()).unwrap())
            .unwrap();
        (g, tr)
    };
    let tgt = polled_thread("nvmf_alloc".into(), s2, setup, move || p2.serve());
    let addr: std::net::SocketAddr = rx.recv().unwrap();
    s.add_listener(TcpTransport::listen_addr(addr));
    let trid: nvme::TransportId = format!(
        "trtype:TCP adrfam:IPv4 traddr:{} trsvcid:{} subnqn:{nqn} hostnqn:{HOSTNQN}",
        addr.ip(),
        addr.port()
    )
    .parse()
    .unwrap();
    let c = nvme::connect(&trid, &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let small = random(4096, 1);
    let large = random(65536, 2);
    // Measures `rounds` write/read pairs of `data` after a warm-up of the same.
    let mut measure = |data: &[u8], at: u64, rounds: u64| {
        for r in 0..10 {
            write_read(&mut qp, &ns, at + (r % 8) * 128, data);
        }
        // Read between two polls of the target thread, after the warm-up's
        // last poll and after the measured I/O's.
        let before = probe.read(Duration::from_secs(60));
        for r in 0..rounds {
            write_read(&mut qp, &ns, at + (r % 8) * 128, data);
        }
        probe.read(Duration::from_secs(60)) - before
    };
    // In-capsule writes and C2HData reads.
    let n_small = measure(&small, 0, 100);
    // Writes by R2T and H2CData, reads by C2HData.
    let n_large = measure(&large, 1024, 100);
    drop(qp);
    drop(c);
    stop.store(true, Ordering::Relaxed);
    tgt.join().unwrap();
    assert_eq!(
        n_small, 0,
        "allocations on the target thread over 200 4 KiB I/Os"
    );
    assert_eq!(
        n_large, 0,
        "allocations on the target thread over 200 64 KiB I/Os"
    );
}
