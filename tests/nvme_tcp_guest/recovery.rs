//! Failures and events with Linux's kernel target: the port removed while
//! reads are in flight (every one completes once, nothing hangs, a reset
//! fails retryably while the port is gone) and restored (the reset
//! reconnects and the same queue pair carries I/O again); a namespace
//! disabled and enabled again reported by an asynchronous event.

use super::{random, write_read, Done, Nvmet};
use spdk_io::env::DmaBuf;
use spdk_io::nvme::spec::features::AsyncEvent;
use spdk_io::nvme::{ControllerOpts, NvmeError, QPair, QPairOpts};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn the_port_removed_mid_io_fails_each_io_once_and_restored_a_reset_resumes_io() {
    let t = Nvmet::start(4430, 32, 512);
    let c = t.connect(&ControllerOpts::default());
    let ns = c.namespace(1).unwrap();
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 128,
            ..QPairOpts::default()
        })
        .unwrap();
    write_read(&mut qp, &ns, 0, &random(65536, 1));

    // Keep 64 reads in flight; remove the port once some have completed.
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let mut submitted = 0usize;
    let submit = |qp: &mut QPair, submitted: &mut usize| {
        let d = done.clone();
        let lba = (*submitted as u64 % 1024) * 8;
        let r = qp.read(
            &ns,
            DmaBuf::alloc(4096, 4096).unwrap(),
            lba,
            8,
            move |_, c| d.borrow_mut().push(c),
        );
        if r.is_ok() {
            *submitted += 1;
        }
        r.is_ok()
    };
    for _ in 0..64 {
        assert!(submit(&mut qp, &mut submitted));
    }
    let start = Instant::now();
    while done.borrow().len() < 200 {
        let _ = qp.process_completions(0);
        while qp.outstanding() < 64 && submit(&mut qp, &mut submitted) {}
        assert!(start.elapsed() < Duration::from_secs(60), "I/O too slow");
    }
    qp.flush();
    t.port("port-down");
    // Reads go on being submitted until the loss is seen: the target may
    // have answered all those in flight before it dropped the connection.
    let start = Instant::now();
    while qp.is_connected() {
        let _ = qp.process_completions(0);
        while qp.is_connected() && qp.outstanding() < 64 && submit(&mut qp, &mut submitted) {}
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the connection was not seen to fail ({} reads in flight)",
            qp.outstanding()
        );
    }
    assert_eq!(qp.outstanding(), 0, "nothing left in flight once lost");
    for _ in 0..5 {
        let _ = qp.process_completions(0);
    }
    assert_eq!(
        done.borrow().len(),
        submitted,
        "each read completed exactly once"
    );
    let lost = done
        .borrow()
        .iter()
        .filter(|c| matches!(c.result, Err(NvmeError::ConnectionLost)))
        .count();
    assert!(lost > 0, "reads in flight when the port went failed");
    assert!(done
        .borrow()
        .iter()
        .all(|c| c.result.is_ok() || matches!(c.result, Err(NvmeError::ConnectionLost))));
    assert!(!qp.is_connected());

    // While the port is gone a reset fails, retryably.
    let e = c.reset().unwrap_err();
    assert!(
        matches!(e, NvmeError::ReconnectFailed { .. }) && e.is_retryable(),
        "{e}"
    );

    // Restored: a reset reconnects, the same queue pair carries I/O again,
    // and the data is on the target's device.
    t.port("port-up");
    let start = Instant::now();
    while let Err(e) = c.reset() {
        assert!(
            e.is_retryable() && start.elapsed() < Duration::from_secs(20),
            "{e}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    qp.process_completions(0).unwrap();
    assert!(qp.is_connected());
    let data = random(131072, 77);
    write_read(&mut qp, &ns, 4096, &data);
    drop(qp);
    drop(c);
    let disk = std::fs::read(t.backing_device()).unwrap();
    assert!(disk[4096 * 512..4096 * 512 + data.len()] == data[..]);
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn a_namespace_disabled_and_enabled_on_the_target_is_reported_by_an_async_event() {
    let t = Nvmet::start(4431, 16, 512);
    let c = t.connect(&ControllerOpts::default());
    let events: Arc<Mutex<Vec<AsyncEvent>>> = Arc::default();
    let ev = events.clone();
    c.register_aer_callback(move |e| ev.lock().unwrap().push(e));
    let enable = format!(
        "/sys/kernel/config/nvmet/subsystems/{}/namespaces/1/enable",
        t.nqn
    );
    std::fs::write(&enable, "0").unwrap();
    let start = Instant::now();
    while events.lock().unwrap().is_empty() {
        c.process_admin_completions().unwrap();
        assert!(start.elapsed() < Duration::from_secs(20), "no event");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(events.lock().unwrap()[0].is_namespace_attribute_changed());
    assert!(c.namespace_ids().is_empty(), "namespace 1 is gone");
    std::fs::write(&enable, "1").unwrap();
    let start = Instant::now();
    while c.namespace_ids().is_empty() {
        c.process_admin_completions().unwrap();
        assert!(start.elapsed() < Duration::from_secs(20), "no second event");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.namespace_ids(), vec![1]);
    assert!(events.lock().unwrap().len() >= 2);
}
