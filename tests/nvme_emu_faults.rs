//! Faults injected into the software controller, each recovered or
//! reported, none lost: error statuses by name, a failing child of a split
//! I/O, dropped completions (timeout, Abort, reset), controller fatal status
//! (reset fails in-flight I/O exactly once), a controller that never gets ready.

mod nvme_emu_common;
use nvme_emu_common::{attach, emu};

mod nvme_common;

use nvme_common::*;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::{nvm_opc, CommandMatch, EmuController, Status as EmuStatus};
use spdk_io::nvme::{Controller, ControllerOpts, NvmeError, QPairOpts, TimeoutAction};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_controller_that_never_becomes_ready_is_a_clear_error() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let e = Arc::new(
        EmuController::builder()
            .cap_to(1)
            .namespace(512, 1024)
            .build()
            .unwrap(),
    );
    e.faults().set_never_ready(true);
    let err = Controller::attach(e.clone(), ControllerOpts::default()).unwrap_err();
    assert!(matches!(err, NvmeError::NotReady { .. }), "{err}");
    assert!(err.to_string().contains("CSTS.RDY=1"), "{err}");
    e.faults().set_never_ready(false);
    attach(&e);
}

#[test]
fn an_error_on_one_child_fails_the_whole_io_once() {
    let e = emu(1);
    let c = attach(&e);
    let ns = c.namespace(2).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let unrecovered = EmuStatus {
        sct: 2,
        sc: 0x81,
        dnr: false,
    };
    e.faults().fail_next(
        CommandMatch::io(nvm_opc::READ).lba_range(4..6),
        unrecovered,
        1,
    );
    let err = read_sync(
        &mut qp,
        &ns,
        DmaBuf::alloc_zeroed(8 * 4096, 4096).unwrap(),
        0,
        8,
    )
    .unwrap_err();
    assert_eq!(
        err.status().unwrap().name(),
        "Unrecovered Read Error",
        "{err}"
    );
    assert!(err.is_retryable(), "no DNR: the caller may retry");
    assert_eq!(qp.outstanding(), 0);
    assert_eq!(qp.free_requests(), qp.queue_size() as usize - 1);
}

#[test]
fn an_injected_error_status_is_decoded_by_name() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    e.faults().fail_next(
        CommandMatch::io(nvm_opc::WRITE),
        EmuStatus {
            sct: 0,
            sc: 0x80,
            dnr: true,
        },
        1,
    );
    let err = write_sync(&mut qp, &ns, patterned(512, 1), 5, 1).unwrap_err();
    let st = err.status().expect("an NVMe status");
    assert_eq!(st.name(), "LBA Out of Range");
    assert!(st.dnr && !err.is_retryable());
    // The next write goes through.
    write_sync(&mut qp, &ns, patterned(512, 1), 5, 1).unwrap();
}

#[test]
fn a_dropped_completion_times_out_and_the_abort_completes_it() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let opts = QPairOpts {
        timeout: Some(Duration::from_millis(100)),
        ..QPairOpts::default()
    };
    let mut qp = c.alloc_io_qpair(opts).unwrap();
    let seen = Rc::new(Cell::new(0u32));
    let s2 = seen.clone();
    qp.set_timeout_callback(move |t| {
        assert_eq!(t.opc, nvm_opc::READ);
        s2.set(s2.get() + 1);
        TimeoutAction::Abort
    });
    e.faults()
        .drop_completions(CommandMatch::io(nvm_opc::READ), 1);
    let s = slot();
    qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, into_slot(&s))
        .unwrap();
    let done = wait_for(&mut qp, &s, Duration::from_secs(10));
    let err = done.result.unwrap_err();
    assert_eq!(
        err.status().unwrap().name(),
        "Command Abort Requested",
        "{err}"
    );
    assert_eq!(seen.get(), 1, "one timeout report");
    assert_eq!(done.buf.len(), 512, "buffer handed back");
    assert_eq!(qp.outstanding(), 0);
}

#[test]
fn controller_fatal_status_is_reported_and_a_reset_fails_in_flight_io_once() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let w = patterned(4096, 77);
    let want = w.to_vec();
    write_sync(&mut qp, &ns, w, 64, 8).unwrap();
    // One I/O held by the controller, then the controller fails.
    e.faults()
        .delay_next(CommandMatch::io(nvm_opc::READ), Duration::from_secs(30), 1);
    let count = Rc::new(Cell::new(0u32));
    let got = Rc::new(Cell::new(false));
    let (c2, g2) = (count.clone(), got.clone());
    qp.read(
        &ns,
        DmaBuf::alloc(512, 4096).unwrap(),
        0,
        1,
        move |_, done| {
            c2.set(c2.get() + 1);
            g2.set(matches!(done.result, Err(NvmeError::AbortedByReset)) && done.buf.len() == 512);
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    e.faults().fatal_now();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let err = loop {
        match c.process_admin_completions() {
            Err(e) => break e,
            Ok(_) => assert!(std::time::Instant::now() < deadline, "CFS not noticed"),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(matches!(err, NvmeError::ControllerFatal), "{err}");
    assert!(c.is_failed());
    c.reset().expect("reset recovers a fatal controller");
    assert!(!c.is_failed());
    let failed = qp.process_completions(0).unwrap();
    assert_eq!(failed, 1);
    for _ in 0..10 {
        qp.process_completions(0).unwrap();
    }
    assert_eq!(count.get(), 1, "the in-flight I/O completed exactly once");
    assert!(got.get(), "with AbortedByReset and its buffer");
    let r = read_sync(
        &mut qp,
        &ns,
        DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
        64,
        8,
    )
    .unwrap();
    assert_same(&r, &want, "data written before the reset");
}

#[test]
fn a_command_that_times_out_twice_resets_the_controller() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let opts = QPairOpts {
        timeout: Some(Duration::from_millis(50)),
        ..QPairOpts::default()
    };
    let mut qp = c.alloc_io_qpair(opts).unwrap();
    // Dropped completions and an Abort the controller cannot honour: a held
    // command whose abort is also dropped. Default policy: abort, then reset.
    e.faults()
        .drop_completions(CommandMatch::io(nvm_opc::READ), 1);
    e.faults().drop_completions(CommandMatch::admin(0x08), 1);
    let s = slot();
    qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, into_slot(&s))
        .unwrap();
    let done = wait_for(&mut qp, &s, Duration::from_secs(60));
    let r = done.result.unwrap_err();
    assert!(
        matches!(r, NvmeError::AbortedByReset)
            || r.status()
                .is_some_and(|s| s.name() == "Command Abort Requested"),
        "{r}"
    );
    write_sync(&mut qp, &ns, patterned(512, 1), 1, 1).expect("qpair usable afterwards");
}

#[test]
fn a_queue_waiting_long_re_rings_its_doorbells_and_the_io_completes_once() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    e.faults().delay_next(
        CommandMatch::io(nvm_opc::READ),
        Duration::from_millis(400),
        1,
    );
    let s = slot();
    qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, into_slot(&s))
        .unwrap();
    // Poll without yielding so the stall threshold is reached while the
    // command is held back.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.borrow().is_none() {
        qp.process_completions(0).unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "the read never completed"
        );
    }
    let done = s.borrow_mut().take().unwrap();
    assert!(done.result.is_ok(), "{:?}", done.result);
    let st = qp.pcie_stat();
    assert!(
        st.doorbell_kicks >= 1,
        "{} idle polls with the read outstanding, yet no kick: {st:?}",
        st.idle_polls
    );
    assert_eq!(st.completions, 1, "{st:?}");
    assert_eq!(st.submitted_requests, 1, "{st:?}");
    assert_eq!(qp.outstanding(), 0);
    // The queue still works after the re-rung doorbells.
    let buf = write_sync(&mut qp, &ns, DmaBuf::alloc(512, 4096).unwrap(), 1, 1).unwrap();
    assert_eq!(buf.len(), 512);
}
