//! Tagged commands on lent buffers (`QPair::rw_tagged` and
//! `process_completions_tagged`) against the software controller: data
//! round trips (MDTS splits included), every tag reported exactly once
//! (after a reset too), argument errors that report nothing, mixing with
//! callback commands, and `QPair::shutdown` — including a queue the
//! controller refuses to delete, whose memory must then never be reused;
//! and a reap that leaves delayed submissions for `flush`.

use crate::nvme_emu_common;
use nvme_emu_common::{attach, emu};

use crate::nvme_common;

use nvme_common::*;
use spdk_io::env::DmaBuf;
use spdk_io::nvme::emu::{admin_opc, nvm_opc, CommandMatch, EmuController, Status as EmuStatus};
use spdk_io::nvme::{Controller, Namespace, NvmeError, QPair, QPairOpts, RwOp};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Reports = Vec<(u64, Result<(), NvmeError>)>;

/// A software controller with the given MDTS, the driver attached, a
/// namespace and a queue pair (the controller must outlive the queue pair,
/// so it comes along).
fn setup(mdts: u8, nsid: u32) -> (Arc<EmuController>, Controller, Namespace, QPair) {
    let e = emu(mdts);
    let c = attach(&e);
    let ns = c.namespace(nsid).unwrap();
    let qp = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    (e, c, ns, qp)
}

/// Polls until `n` tags were reported (10 s limit), then a few more times
/// to catch a doubled report.
fn reap(qp: &mut QPair, n: usize) -> Reports {
    let mut got = Reports::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        qp.process_completions_tagged(0, |t, r| got.push((t, r)))
            .expect("poll");
        assert!(Instant::now() < deadline, "only {} of {n} tags", got.len());
        std::thread::yield_now();
    }
    for _ in 0..20 {
        qp.process_completions_tagged(0, |t, r| got.push((t, r)))
            .expect("poll");
    }
    got
}

#[test]
fn tagged_writes_and_reads_round_trip_through_lent_buffers_split_or_not() {
    // MDTS 2: 16 KiB per command, so 40 blocks of 512 B split in two.
    let (e, _c, ns, mut qp) = setup(2, 1);
    let mut src = DmaBuf::alloc_zeroed(64 * 1024, 4096).unwrap();
    fill(&mut src, 11);
    // Two windows: one page-aligned of 8 blocks, one at byte 1024 of 40.
    let cases = [(0usize, 8u32, 100u64), (1024, 40, 300)];
    for (i, &(off, n, lba)) in cases.iter().enumerate() {
        let len = n as usize * 512;
        // SAFETY: `src` outlives the command and is not touched until reap.
        unsafe { qp.rw_tagged(&ns, RwOp::Write, &src, off..off + len, lba, n, i as u64) }.unwrap();
    }
    let got = reap(&mut qp, 2);
    assert_eq!(got.len(), 2, "one report per command: {got:?}");
    for (i, &(off, n, lba)) in cases.iter().enumerate() {
        assert!(
            got.iter().any(|(t, r)| *t == i as u64 && r.is_ok()),
            "tag {i}: {got:?}"
        );
        let mut media = vec![0u8; n as usize * 512];
        e.handle().read_blocks(1, lba, &mut media).unwrap();
        assert_same(&media, &src[off..off + media.len()], "controller's copy");
    }
    let dst = DmaBuf::alloc_zeroed(64 * 1024, 4096).unwrap();
    for (i, &(_, n, lba)) in cases.iter().enumerate() {
        let at = 20_000 + i * 512 * 8;
        let len = n as usize * 512;
        // SAFETY: `dst` outlives the command and is read only after reap.
        unsafe { qp.rw_tagged(&ns, RwOp::Read, &dst, at..at + len, lba, n, 7 + i as u64) }.unwrap();
    }
    let got = reap(&mut qp, 2);
    let mut tags: Vec<u64> = got.iter().map(|(t, _)| *t).collect();
    tags.sort();
    assert_eq!(tags, vec![7, 8]);
    assert!(got.iter().all(|(_, r)| r.is_ok()), "{got:?}");
    // Read back in the second window's order: case 1 landed after case 0's 8 blocks.
    assert_same(
        &dst[20_000..20_000 + 4096],
        &src[..4096],
        "case 0 read back",
    );
    let at1 = 20_000 + 4096;
    assert_same(
        &dst[at1..at1 + 40 * 512],
        &src[1024..1024 + 40 * 512],
        "case 1 read back",
    );
    assert_eq!(qp.outstanding(), 0);
}

#[test]
fn a_compare_mismatch_is_the_tag_s_error_and_a_match_succeeds() {
    let (_e, _c, ns, mut qp) = setup(5, 2);
    let w = patterned(4096, 5);
    let w = write_sync(&mut qp, &ns, w, 9, 1).unwrap();
    let other = patterned(4096, 6);
    // SAFETY: both buffers outlive their commands (reaped below).
    unsafe {
        qp.rw_tagged(&ns, RwOp::Compare, &w, 0..4096, 9, 1, 1)
            .unwrap();
        qp.rw_tagged(&ns, RwOp::Compare, &other, 0..4096, 9, 1, 2)
            .unwrap();
    }
    let got = reap(&mut qp, 2);
    for (t, r) in &got {
        match t {
            1 => assert!(r.is_ok(), "{r:?}"),
            2 => assert!(
                matches!(r, Err(NvmeError::Command { status, .. }) if status.sc == 0x85),
                "compare failure status: {r:?}"
            ),
            t => panic!("unknown tag {t}"),
        }
    }
    assert_eq!(got.len(), 2);
}

#[test]
fn bad_arguments_are_errors_and_their_tags_never_come_back() {
    let (_e, _c, ns, mut qp) = setup(5, 1);
    let b = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    // SAFETY: every call below is rejected before anything is queued.
    unsafe {
        let r = qp.rw_tagged(&ns, RwOp::Read, &b, 0..4096, 16384, 1, 1);
        assert!(matches!(r, Err(NvmeError::LbaOutOfRange { .. })), "{r:?}");
        let r = qp.rw_tagged(&ns, RwOp::Read, &b, 0..8192, 0, 16, 2);
        assert!(matches!(r, Err(NvmeError::InvalidArgument(_))), "{r:?}");
        let r = qp.rw_tagged(&ns, RwOp::Read, &b, 512..1024, 0, 2, 3);
        assert!(matches!(r, Err(NvmeError::BufferTooShort { .. })), "{r:?}");
        let r = qp.rw_tagged(&ns, RwOp::Write, &b, 0..4096, 0, 0, 4);
        assert!(matches!(r, Err(NvmeError::ZeroLength)), "{r:?}");
        // Dword alignment is the PRP rule: byte 2 cannot start a transfer.
        let r = qp.rw_tagged(&ns, RwOp::Read, &b, 2..514, 0, 1, 5);
        assert!(matches!(r, Err(NvmeError::BadBuffer(_))), "{r:?}");
    }
    assert_eq!(qp.outstanding(), 0);
    assert_eq!(
        qp.free_requests(),
        qp.queue_size() as usize - 1,
        "no request leaked"
    );
    let mut n = 0;
    for _ in 0..20 {
        qp.process_completions_tagged(0, |_, _| n += 1).unwrap();
    }
    assert_eq!(n, 0, "a rejected command reports nothing");
}

#[test]
fn tagged_and_callback_commands_share_a_queue_and_a_reset_fails_each_tag_once() {
    let (e, c, ns, mut qp) = setup(5, 1);
    let b = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    let s = slot();
    qp.read(&ns, DmaBuf::alloc(512, 512).unwrap(), 3, 1, into_slot(&s))
        .unwrap();
    // SAFETY: `b` outlives the command (reaped below).
    unsafe { qp.rw_tagged(&ns, RwOp::Read, &b, 0..512, 3, 1, 42) }.unwrap();
    let got = reap(&mut qp, 1);
    assert_eq!(got.len(), 1);
    assert!(matches!(got[0], (42, Ok(()))));
    let done = s
        .borrow_mut()
        .take()
        .expect("the callback command completed too");
    done.result.unwrap();

    // One tagged read held by the controller, then it fails and is reset.
    e.faults()
        .delay_next(CommandMatch::io(nvm_opc::READ), Duration::from_secs(30), 1);
    // SAFETY: `b` outlives the command (the reset reports it below).
    unsafe { qp.rw_tagged(&ns, RwOp::Read, &b, 0..512, 3, 1, 43) }.unwrap();
    qp.flush();
    std::thread::sleep(Duration::from_millis(50));
    e.faults().fatal_now();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.process_admin_completions().is_ok() {
        assert!(Instant::now() < deadline, "CFS not noticed");
        std::thread::sleep(Duration::from_millis(5));
    }
    c.reset().expect("reset");
    let got = reap(&mut qp, 1);
    assert_eq!(got.len(), 1, "reported once: {got:?}");
    assert!(
        matches!(got[0], (43, Err(NvmeError::AbortedByReset))),
        "{got:?}"
    );
}

#[test]
fn shutdown_deletes_the_queues_reports_held_commands_done_and_refuses_new_ones() {
    let (e, c, ns, mut qp) = setup(5, 1);
    let b = DmaBuf::alloc_zeroed(4096, 4096).unwrap();
    e.faults()
        .delay_next(CommandMatch::io(nvm_opc::READ), Duration::from_secs(30), 1);
    // SAFETY: shutdown below returns true: the device is done with `b`.
    unsafe { qp.rw_tagged(&ns, RwOp::Read, &b, 0..512, 0, 1, 1) }.unwrap();
    qp.flush();
    std::thread::sleep(Duration::from_millis(50));
    assert!(qp.shutdown(), "deleted queues: no device access left");
    assert!(qp.shutdown(), "a second call gives the same answer");
    // SAFETY: rejected: nothing is queued.
    let r = unsafe { qp.rw_tagged(&ns, RwOp::Read, &b, 0..512, 0, 1, 2) };
    assert!(matches!(r, Err(NvmeError::QPairShutDown(_))), "{r:?}");
    let r = qp.process_completions_tagged(0, |t, _| panic!("tag {t} after shutdown"));
    assert!(matches!(r, Err(NvmeError::QPairShutDown(_))), "{r:?}");
    drop(qp);
    // The queue ID is free again.
    let qp2 = c.alloc_io_qpair(QPairOpts::default()).unwrap();
    drop(qp2);
}

#[test]
fn a_queue_the_controller_will_not_delete_keeps_its_memory_forever() {
    let (e, _c, ns, mut qp) = setup(5, 1);
    let w = patterned(4096, 0x5a);
    write_sync(&mut qp, &ns, w, 0, 8).unwrap();
    // A read held for a while, and a Delete I/O SQ that fails.
    e.faults().delay_next(
        CommandMatch::io(nvm_opc::READ),
        Duration::from_millis(300),
        1,
    );
    e.faults().fail_next(
        CommandMatch::admin(admin_opc::DELETE_IO_SQ),
        EmuStatus::INTERNAL_ERROR,
        1,
    );
    let s = slot();
    qp.read(
        &ns,
        DmaBuf::alloc_zeroed(4096, 4096).unwrap(),
        0,
        8,
        into_slot(&s),
    )
    .unwrap();
    qp.flush();
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !qp.shutdown(),
        "the device may still use the in-flight buffer"
    );
    drop(qp);
    assert!(s.borrow().is_none(), "no callback for a dropped command");
    // Memory handed out after the drop must never be written by the held
    // read (data) or its completion (CQE): the queue's buffer, rings and
    // PRP pages were not freed.
    let fresh: Vec<DmaBuf> = (0..64)
        .map(|_| DmaBuf::alloc_zeroed(4096, 4096).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(600));
    for (i, f) in fresh.iter().enumerate() {
        assert!(
            f.iter().all(|&x| x == 0),
            "buffer {i} was written after the drop"
        );
    }
}

#[test]
fn an_unflushed_reap_completes_what_finished_and_leaves_new_submissions_unrung() {
    let e = emu(5);
    let c = attach(&e);
    let ns = c.namespace(1).unwrap();
    let opts = QPairOpts {
        delay_cmd_submit: true,
        ..QPairOpts::default()
    };
    let mut qp = c.alloc_io_qpair(opts).unwrap();
    let buf = DmaBuf::alloc_zeroed(2 * 4096, 4096).unwrap();
    // SAFETY (both commands): `buf` outlives them and is not touched
    // until they are reaped.
    unsafe { qp.rw_tagged(&ns, RwOp::Read, &buf, 0..4096, 0, 8, 1) }.unwrap();
    qp.flush();
    let mut got = Reports::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.is_empty() {
        qp.process_completions_tagged_unflushed(0, |t, r| got.push((t, r)))
            .expect("poll");
        assert!(
            Instant::now() < deadline,
            "the flushed read never completed"
        );
        std::thread::yield_now();
    }
    assert!(matches!(got[..], [(1, Ok(()))]), "{got:?}");
    // Queued after the reap, as a completion handler would: until a flush
    // the controller is not told, however often the queue is reaped.
    unsafe { qp.rw_tagged(&ns, RwOp::Read, &buf, 4096..8192, 8, 8, 2) }.unwrap();
    for _ in 0..200 {
        qp.process_completions_tagged_unflushed(0, |t, r| got.push((t, r)))
            .expect("poll");
        std::thread::sleep(Duration::from_micros(100));
    }
    assert_eq!(got.len(), 1, "an unrung command completed: {got:?}");
    assert_eq!(e.stats().io(nvm_opc::READ), 1, "the controller fetched it");
    // The ordinary reap rings what is pending, as SPDK's does.
    let got = reap(&mut qp, 1);
    assert!(matches!(got[..], [(2, Ok(()))]), "{got:?}");
    assert_eq!(e.stats().io(nvm_opc::READ), 2);
}
