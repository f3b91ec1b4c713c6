//! Reset and reconnect against spdk-io's own NVMe-oF target on 127.0.0.1:
//! the target stopped mid-I/O (every request fails once, the queue pair
//! reports the loss, a reset fails retryably while nobody listens) and
//! started again on the same port (the reset reconnects and the same
//! queue pair handles carry I/O again); a reset with I/O in flight.

use crate::nvmf_common::{self, qp_opts, random, subsystem, write_read, Done, Tgt, HOSTNQN};
use spdk_io::env::DmaBuf;
use spdk_io::nvme::{self, Controller, NvmeError, QPair};
use spdk_io::nvmf::TransportOpts;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A target serving `nqn` (a new malloc bdev `bdev`) on `addr`.
fn target(addr: &str, nqn: &str, bdev: &str) -> Tgt {
    let t = Tgt::start(TransportOpts::default(), 1, addr);
    subsystem(&t, nqn, bdev, 4096, true);
    t
}

/// Submits `n` one-block reads that record their completions in `done`.
fn reads(qp: &mut QPair, ns: &nvme::Namespace, n: u64, done: &Done) {
    for i in 0..n {
        let d = done.clone();
        qp.read(
            ns,
            DmaBuf::alloc(4096, 4096).unwrap(),
            i * 8,
            8,
            move |_, c| d.borrow_mut().push(c),
        )
        .map_err(|e| e.error)
        .unwrap();
    }
}

/// Polls until `n` completions arrived (bounded), then a few more times so
/// that a second completion of any request would be seen.
fn settle(qp: &mut QPair, done: &Done, n: usize) {
    let start = Instant::now();
    while done.borrow().len() < n {
        let _ = qp.process_completions(0);
        assert!(start.elapsed() < Duration::from_secs(20), "I/O hung");
    }
    for _ in 0..5 {
        let _ = qp.process_completions(0);
    }
    assert_eq!(done.borrow().len(), n, "each I/O completed exactly once");
    assert_eq!(qp.outstanding(), 0);
}

/// Resets until it succeeds (the restarted target may take a moment to
/// serve the subsystem), at most 10 s.
fn reset_until_back(c: &Controller) {
    let start = Instant::now();
    loop {
        match c.reset() {
            Ok(()) => return,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(start.elapsed() < Duration::from_secs(10), "{e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn the_target_stopped_mid_io_fails_it_once_and_a_reset_after_its_restart_resumes_io() {
    let nqn = "nqn.2016-06.io.spdk-io:reset-restart";
    let t = target("127.0.0.1:0", nqn, "TcpResetRestart0");
    let addr = t.addr;
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &nvmf_common::opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let mut qp2 = c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp, &ns, 0, &random(8192, 1));

    // Half the reads are on the wire when the target stops, half queued after.
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    reads(&mut qp, &ns, 16, &done);
    qp.flush();
    drop(t);
    reads(&mut qp, &ns, 16, &done);
    settle(&mut qp, &done, 32);
    let lost = done
        .borrow()
        .iter()
        .filter(|c| matches!(c.result, Err(NvmeError::ConnectionLost)))
        .count();
    let ok = done.borrow().iter().filter(|c| c.result.is_ok()).count();
    assert!(
        lost >= 16,
        "the reads queued after the stop failed ({lost})"
    );
    assert_eq!(ok + lost, 32, "every read succeeded or failed as lost");

    // The queue pair reports the loss and refuses new I/O.
    assert!(!qp.is_connected());
    let e = qp.process_completions(0).unwrap_err();
    assert!(matches!(e, NvmeError::ConnectionLost), "{e}");
    let e = qp
        .read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, |_, _| {})
        .unwrap_err()
        .error;
    assert!(
        matches!(e, NvmeError::ConnectionLost) && e.is_retryable(),
        "{e}"
    );
    // The admin connection is gone too: the controller says so.
    let start = Instant::now();
    while c.process_admin_completions().is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "admin loss unseen"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(c.is_failed());

    // Nobody listens: the reset fails, retryably, naming the address.
    let e = c.reset().unwrap_err();
    assert!(matches!(e, NvmeError::ReconnectFailed { .. }), "{e}");
    assert!(e.is_retryable());
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
    assert!(c.is_failed());
    assert!(qp.process_completions(0).is_err());
    assert!(!qp.is_connected());

    // The target is back on the same port: the reset reconnects, and the
    // same queue pair handles reconnect on their next poll.
    let t = target(&addr.to_string(), nqn, "TcpResetRestart1");
    assert_eq!(t.addr, addr);
    reset_until_back(&c);
    assert!(!c.is_failed());
    c.process_admin_completions().unwrap();
    assert_eq!(qp.process_completions(0).unwrap(), 0);
    assert!(qp.is_connected());
    write_read(&mut qp, &ns, 64, &random(65536, 2));
    // The second queue pair was not polled through the outage: a submit
    // before its first poll after the reset is refused (as over PCIe)...
    let e = qp2
        .read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, |_, _| {})
        .unwrap_err()
        .error;
    assert!(matches!(e, NvmeError::AbortedByReset), "{e}");
    // ... and the poll reconnects it.
    assert_eq!(qp2.process_completions(0).unwrap(), 0);
    write_read(&mut qp2, &ns, 256, &random(4096, 3));
    drop(qp);
    drop(qp2);
    drop(c);
    drop(t);
}

#[test]
fn a_reset_with_io_in_flight_completes_each_once_and_the_qpairs_reconnect() {
    let nqn = "nqn.2016-06.io.spdk-io:reset-live";
    let t = target("127.0.0.1:0", nqn, "TcpResetLive");
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &nvmf_common::opts(true)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp, &ns, 0, &random(4096, 4));
    for round in 0..3u64 {
        let done: Done = Rc::new(RefCell::new(Vec::new()));
        reads(&mut qp, &ns, 32, &done);
        qp.flush();
        c.reset().unwrap();
        settle(&mut qp, &done, 32);
        let aborted = done
            .borrow()
            .iter()
            .filter(|c| matches!(c.result, Err(NvmeError::AbortedByReset)))
            .count();
        let ok = done.borrow().iter().filter(|c| c.result.is_ok()).count();
        assert_eq!(
            ok + aborted,
            32,
            "round {round}: succeeded or aborted by the reset"
        );
        assert!(qp.is_connected());
        write_read(&mut qp, &ns, 8 * round, &random(16384, round));
    }
}
