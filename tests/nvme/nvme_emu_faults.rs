//! Faults injected into the software controller, each recovered or
//! reported, none lost: error statuses by name, a failing child of a split
//! I/O, dropped completions (timeout, Abort, reset), controller fatal status
//! (reset fails in-flight I/O exactly once), a controller that never gets ready.

use crate::nvme_emu_common;
use nvme_emu_common::{attach, emu};

use crate::nvme_common;

use nvme_common::*;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::{nvm_opc, CommandMatch, EmuController, Status as EmuStatus};
use spdk_io::nvme::{AsyncQPair, Controller, ControllerOpts, NvmeError, QPairOpts, TimeoutAction};
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
    // The kick comes after a number of idle polls, the fault's hold is a
    // time: hold the read four times as long as those polls take here.
    // Measure the poll rate under the same conditions, with a command held
    // by the controller (its thread then competes for the CPU: on a guest
    // with one vCPU that alone slows polling several times), and before
    // the stall threshold is reached (the first hold is short).
    let calib = Duration::from_millis(300);
    e.faults()
        .delay_next(CommandMatch::io(nvm_opc::READ), calib, 1);
    let c0 = slot();
    qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, into_slot(&c0))
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut polls = 0u32;
    while c0.borrow().is_none() {
        qp.process_completions(0).unwrap();
        polls += 1;
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the first read never completed"
        );
    }
    let per_poll = t0.elapsed() / polls.max(1);
    let hold = (per_poll * (4 * spdk_io::nvme::STALL_KICK_POLLS) as u32)
        .clamp(Duration::from_millis(400), Duration::from_secs(30));
    let before = qp.pcie_stat();
    e.faults()
        .delay_next(CommandMatch::io(nvm_opc::READ), hold, 1);
    let s = slot();
    qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), 0, 1, into_slot(&s))
        .unwrap();
    // Poll without yielding so the stall threshold is reached while the
    // command is held back.
    let deadline = std::time::Instant::now() + hold + Duration::from_secs(30);
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
        st.doorbell_kicks > before.doorbell_kicks,
        "{} idle polls with the read outstanding, yet no kick: {st:?}",
        st.idle_polls - before.idle_polls
    );
    assert_eq!(st.completions - before.completions, 1, "{st:?}");
    assert_eq!(
        st.submitted_requests - before.submitted_requests,
        1,
        "{st:?}"
    );
    assert_eq!(qp.outstanding(), 0);
    // The queue still works after the re-rung doorbells.
    let buf = write_sync(&mut qp, &ns, DmaBuf::alloc(512, 4096).unwrap(), 1, 1).unwrap();
    assert_eq!(buf.len(), 512);
}

/// Runs `f` to completion on a fresh lightweight thread.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    let t = spdk_io::thread::Thread::new("async");
    let v = t.block_on(f).unwrap();
    t.shutdown().unwrap();
    t.destroy().unwrap();
    v
}

#[test]
fn an_async_io_that_fails_hands_back_its_buffer_with_the_status() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let qp = AsyncQPair::new(c.alloc_io_qpair(QPairOpts::default()).unwrap());
    let unrecovered = EmuStatus {
        sct: 2,
        sc: 0x81,
        dnr: true,
    };
    e.faults()
        .fail_next(CommandMatch::io(nvm_opc::READ), unrecovered, 1);
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let f = block_on(qp.read(&ns, buf, 0, 8)).unwrap_err();
    assert_eq!(f.error.status().unwrap().name(), "Unrecovered Read Error");
    assert_eq!(f.buf.len(), 4096, "the buffer comes back with the error");
    // Refused at submission (beyond the namespace): the buffer comes back too.
    let buf = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let f = block_on(qp.write(&ns, buf, ns.num_blocks(), 8)).unwrap_err();
    assert!(
        matches!(f.error, NvmeError::LbaOutOfRange { .. }),
        "{}",
        f.error
    );
    assert_eq!(f.buf.len(), 4096);
    assert_eq!(qp.outstanding(), 0);
}

#[test]
fn a_dropped_async_io_completes_and_frees_its_slot() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let qp = AsyncQPair::new(c.alloc_io_qpair(QPairOpts::default()).unwrap());
    let f = qp.write(&ns, DmaBuf::alloc_zeroed(4096, 4096).unwrap(), 0, 8);
    assert_eq!(qp.outstanding(), 1);
    drop(f);
    for _ in 0..1_000_000 {
        if qp.outstanding() == 0 {
            break;
        }
        qp.process_completions().unwrap();
    }
    assert_eq!(qp.outstanding(), 0, "the completion freed the slot");
    assert_eq!(qp.with_qpair(|q| q.outstanding()), 0);
}

#[test]
fn async_ios_beyond_the_queue_depth_are_refused_with_queue_full() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let qp = AsyncQPair::new(
        c.alloc_io_qpair(QPairOpts {
            io_queue_size: 4,
            ..QPairOpts::default()
        })
        .unwrap(),
    );
    let depth = qp.with_qpair(|q| q.free_requests());
    let inflight: Vec<_> = (0..depth)
        .map(|i| qp.read(&ns, DmaBuf::alloc_zeroed(512, 4096).unwrap(), i as u64, 1))
        .collect();
    let extra = block_on(qp.read(&ns, DmaBuf::alloc_zeroed(512, 4096).unwrap(), 0, 1));
    let f = extra.unwrap_err();
    assert!(matches!(f.error, NvmeError::QueueFull), "{}", f.error);
    assert_eq!(f.buf.len(), 512);
    for r in block_on(async {
        let mut out = Vec::new();
        for f in inflight {
            out.push(f.await);
        }
        out
    }) {
        assert_eq!(r.unwrap().len(), 512);
    }
}

#[test]
fn a_stale_completion_for_a_reused_command_id_is_refused() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(2).unwrap();
    let mut qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    let mut want = vec![0u8; 4096];
    fill(&mut want, 21);
    e.handle().write_blocks(2, 1, &want).unwrap();
    // Read A completes, and the controller posts its entry again when the
    // next command is fetched: a late duplicate naming A's command ID.
    e.faults()
        .repost_completions(CommandMatch::io(nvm_opc::READ).lba_range(0..1), 1);
    read_sync(&mut qp, &ns, DmaBuf::alloc(4096, 4096).unwrap(), 0, 1).unwrap();
    // Read B takes A's request slot (the free list is LIFO); the controller
    // holds it, so the duplicate arrives while B is in flight, before B's data.
    e.faults().delay_next(
        CommandMatch::io(nvm_opc::READ).lba_range(1..2),
        Duration::from_millis(200),
        1,
    );
    let s = slot();
    qp.read(
        &ns,
        DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
        1,
        1,
        into_slot(&s),
    )
    .map_err(|e| e.error)
    .unwrap();
    let b = wait(&mut qp, &s);
    b.result.unwrap();
    assert!(
        b.buf.into_dma_buf().unwrap()[..] == want[..],
        "B completed by its own entry, after its data arrived, not by A's duplicate"
    );
    assert_eq!(
        qp.pcie_stat().stale_completions,
        1,
        "the duplicate was refused and counted"
    );
    assert_eq!(qp.outstanding(), 0);
    assert_eq!(qp.free_requests(), qp.queue_size() as usize - 1);
}
