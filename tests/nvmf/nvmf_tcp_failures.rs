//! Failing and demanding hosts against the NVMe-oF target on 127.0.0.1:
//! hosts gone while the target waits for their data, a silent host past
//! its keep-alive timeout, a host that never reads, 256 connections at
//! once, a namespace added while a host is connected (its event request
//! completes), and Abort of commands held by the target. A well-behaved
//! host is served throughout.

use crate::nvmf_common;

use nvmf_common::raw::*;
use nvmf_common::{qp_opts, random, read, write_read, RawHost};
use spdk_io::nvme::spec::{NvmOpcode, Sqe};
use spdk_io::nvme::tcp::fabrics::set_sgl;
use spdk_io::nvme::tcp::pdu::PduType;
use std::time::{Duration, Instant};

#[test]
fn hosts_gone_while_the_target_waits_for_their_data_leave_no_connection_behind() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-gone", "NvmfHostileGone");
    let before: usize = b.t.group_conns.iter().map(|g| g.connections()).sum();
    for _ in 0..20 {
        let mut h = raw_admin(b.t.addr, b.nqn, 0);
        // A command with 64 KiB of host data by R2T; the host leaves
        // before sending it.
        let mut sqe = Sqe::new(NvmOpcode::Write as u8, 1);
        set_sgl(&mut sqe, 65536, false);
        h.send(&capsule(&sqe, &[]));
        drop(h);
    }
    let start = Instant::now();
    loop {
        let now: usize = b.t.group_conns.iter().map(|g| g.connections()).sum();
        if now == before {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{now} connections left, {before} before"
        );
        std::thread::sleep(Duration::from_millis(10));
        b.still_served(7);
    }
    b.still_served(8);
}

#[test]
fn a_silent_host_past_its_keep_alive_timeout_is_disconnected() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-kato", "NvmfHostileKato");
    let nqn = b.nqn;
    let start = Instant::now();
    let mut h = raw_admin(b.t.addr, nqn, 1000);
    assert!(h.closed_by_target(), "closed after the keep-alive timeout");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1000),
        "not before KATO: {took:?}"
    );
    b.still_served(9);
}

#[test]
fn two_hundred_fifty_six_connections_at_once_and_the_good_host_goes_on() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-many", "NvmfHostileMany");
    let hosts: Vec<RawHost> = (0..256).map(|_| RawHost::handshake(b.t.addr)).collect();
    b.still_served(10);
    let sum: usize = b.t.group_conns.iter().map(|g| g.connections()).sum();
    assert!(sum >= 256, "{sum} connections served");
    drop(hosts);
    b.still_served(11);
}

#[test]
fn a_namespace_added_while_a_host_is_connected_completes_its_event_request() {
    let b = bench("nqn.2016-06.io.spdk-io:h-aen", "NvmfHostileAen");
    let mut h = raw_admin(b.t.addr, b.nqn, 0);
    enable(&mut h);
    // Asynchronous Event Configuration: namespace attribute notices.
    let mut aec = Sqe::new(0x09, 0);
    aec.set_cid(2);
    aec.cdw10 = 0x0b;
    aec.cdw11 = 1 << 8;
    assert_eq!(admin_cmd(&mut h, &aec).1, 0);
    let mut aer = Sqe::new(0x0c, 0);
    aer.set_cid(3);
    h.send(&capsule(&aer, &[]));
    nvmf_common::malloc("NvmfHostileAen2", 1024, 512);
    let s = b.t.target.find(b.nqn).unwrap();
    assert_eq!(s.add_ns("NvmfHostileAen2", None, None, None).unwrap(), 2);
    let r = h.recv_pdu().expect("the AER completes");
    assert_eq!(r[0], PduType::CapsuleResp as u8);
    assert_eq!(u16::from_le_bytes([r[20], r[21]]), 3, "the AER's CID");
    let dw0 = u32::from_le_bytes([r[8], r[9], r[10], r[11]]);
    assert_eq!(
        dw0,
        0x02 | 0x04 << 16,
        "Notice: Namespace Attribute Changed, log 04h"
    );
    // The good host's controller sees the new namespace after a rescan.
    b.c.scan_namespaces().unwrap();
    assert_eq!(b.c.namespace_ids(), vec![1, 2]);
    // ... and serves it (a new I/O queue: the initiator's queues know the
    // namespaces of when they were made).
    let ns2 = b.c.namespace(2).unwrap();
    assert_eq!(ns2.num_blocks(), 1024);
    let mut qp2 = b.c.alloc_io_qpair(qp_opts()).unwrap();
    write_read(&mut qp2, &ns2, 1000, &random(8192, 12));
}

#[test]
fn a_host_that_never_reads_is_disconnected_and_the_other_host_is_still_served() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-noread", "NvmfHostileNoRead");
    let conns = |b: &Bench| -> usize { b.t.group_conns.iter().map(|g| g.connections()).sum() };
    let before = conns(&b);
    let mut h = raw_admin(b.t.addr, b.nqn, 0);
    enable(&mut h);
    h.s.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // 128 KiB log pages again and again, never read: the socket and then
    // the target's send queue fill up.
    let start = Instant::now();
    for n in 0..4000u32 {
        let mut cmd = Sqe::new(0x02, 0);
        cmd.set_cid((n % 1000) as u16 + 10);
        cmd.cdw10 = 0x01 | (32768 - 1) << 16;
        set_sgl(&mut cmd, 131072, false);
        use std::io::Write;
        if h.s.write_all(&capsule(&cmd, &[])).is_err() || start.elapsed() > Duration::from_secs(20)
        {
            break;
        }
    }
    b.still_served(15);
    // Without reading anything more, the target lets the connection go.
    let start = Instant::now();
    while conns(&b) > before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the unread connection is still served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.still_served(16);
    drop(h);
}

#[test]
fn an_abort_of_a_held_aer_completes_it_as_aborted_and_an_executed_command_is_not_aborted() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-abort", "NvmfHostileAbort");
    let mut h = raw_admin(b.t.addr, b.nqn, 0);
    enable(&mut h);
    let mut aer = Sqe::new(0x0c, 0);
    aer.set_cid(7);
    h.send(&capsule(&aer, &[]));
    // Abort SQID 0, CID 7: the AER ends, then the Abort succeeds with bit 0 clear.
    let mut abort = Sqe::new(0x08, 0);
    abort.set_cid(8);
    abort.cdw10 = 7 << 16;
    h.send(&capsule(&abort, &[]));
    let mut got = Vec::new();
    for _ in 0..2 {
        let r = h.recv_pdu().expect("a response");
        assert_eq!(r[0], PduType::CapsuleResp as u8);
        got.push((
            u16::from_le_bytes([r[20], r[21]]),
            u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
            // SCT and SC (DNR aside).
            (u16::from_le_bytes([r[22], r[23]]) >> 1) & 0x7ff,
        ));
    }
    assert_eq!(got[0], (7, 0, 0x07), "the AER: Command Abort Requested");
    assert_eq!(got[1], (8, 0, 0), "the Abort: aborted (bit 0 clear)");
    // A command that is not held (here: no such CID) is not aborted.
    abort.set_cid(9);
    abort.cdw10 = 1 | 55 << 16;
    assert_eq!(admin_cmd(&mut h, &abort), (1, 0));
    b.still_served(21);
}

/// The (CID, Dword 0, SCT/SC) of a CapsuleResp.
fn resp(r: &[u8]) -> (u16, u32, u16) {
    assert_eq!(r[0], PduType::CapsuleResp as u8, "PDU type {:#x}", r[0]);
    (
        u16::from_le_bytes([r[20], r[21]]),
        u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
        (u16::from_le_bytes([r[22], r[23]]) >> 1) & 0x7ff,
    )
}

#[test]
fn an_abort_of_a_write_waiting_for_its_data_completes_it_as_aborted_and_writes_nothing() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-abort-io", "NvmfAbortIo");
    let (mut admin, cntlid) = raw_ctrlr(b.t.addr, b.nqn);
    let mut io = raw_io(b.t.addr, b.nqn, cntlid, 1);
    // Write 8 KiB at LBA 64 by R2T (more than the in-capsule size).
    let mut w = Sqe::new(NvmOpcode::Write as u8, 1);
    w.set_cid(5);
    w.cdw10 = 64;
    w.cdw12 = 15;
    set_sgl(&mut w, 8192, false);
    io.send(&capsule(&w, &[]));
    let r2t = io.recv_pdu().expect("R2T");
    assert_eq!(r2t[0], PduType::R2T as u8);
    let ttag = u16::from_le_bytes([r2t[10], r2t[11]]);
    // Abort SQID 1, CID 5: taken back (Dword 0 bit 0 clear).
    let mut abort = Sqe::new(0x08, 0);
    abort.set_cid(3);
    abort.cdw10 = 1 | 5 << 16;
    assert_eq!(admin_cmd(&mut admin, &abort), (0, 0), "aborted");
    // The data the R2T asked for still comes; the write then completes
    // as Command Abort Requested and never reaches the bdev.
    io.send(&h2c(5, ttag, 0, &[0xab; 8192]));
    let r = io.recv_pdu().expect("the write's response");
    assert_eq!(resp(&r), (5, 0, 0x07), "Command Abort Requested");
    assert!(
        read(&mut b.qp, &b.ns, 64, 8192).iter().all(|&x| x == 0),
        "nothing written"
    );
    // A command that completed is not aborted; the queue goes on.
    abort.set_cid(4);
    assert_eq!(admin_cmd(&mut admin, &abort), (1, 0), "not aborted");
    w.set_cid(6);
    io.send(&capsule(&w, &[]));
    let r2t = io.recv_pdu().expect("R2T");
    let ttag = u16::from_le_bytes([r2t[10], r2t[11]]);
    io.send(&h2c(6, ttag, 0, &[0xcd; 8192]));
    assert_eq!(resp(&io.recv_pdu().expect("response")), (6, 0, 0));
    assert!(read(&mut b.qp, &b.ns, 64, 8192).iter().all(|&x| x == 0xcd));
    b.still_served(22);
}

#[test]
fn an_abort_naming_no_connected_io_queue_is_not_aborted() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-abort-noq", "NvmfAbortNoQueue");
    let (mut admin, _) = raw_ctrlr(b.t.addr, b.nqn);
    let mut abort = Sqe::new(0x08, 0);
    abort.set_cid(3);
    abort.cdw10 = 2 | 9 << 16;
    assert_eq!(admin_cmd(&mut admin, &abort), (1, 0), "not aborted");
    b.still_served(23);
}

#[test]
fn an_abort_of_a_fused_compare_waiting_for_its_write_aborts_the_pair() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-abort-fused", "NvmfAbortFused");
    let (mut admin, cntlid) = raw_ctrlr(b.t.addr, b.nqn);
    let mut io = raw_io(b.t.addr, b.nqn, cntlid, 1);
    // A Compare of one block, FUSE first, its data in the capsule: it
    // waits in the target for the Write that would complete the pair.
    let mut cmp = Sqe::new(NvmOpcode::Compare as u8, 1);
    cmp.set_cid(9);
    cmp.set_slba(16);
    cmp.set_fuse(1);
    set_sgl(&mut cmp, 512, true);
    io.send(&capsule(&cmp, &[0; 512]));
    let mut abort = Sqe::new(0x08, 0);
    abort.set_cid(3);
    abort.cdw10 = 1 | 9 << 16;
    assert_eq!(admin_cmd(&mut admin, &abort), (0, 0), "aborted");
    let r = io.recv_pdu().expect("the compare's response");
    assert_eq!(resp(&r), (9, 0, 0x07), "Command Abort Requested");
    // Its second half then has no first: Missing Fused Command.
    let mut wr = Sqe::new(NvmOpcode::Write as u8, 1);
    wr.set_cid(10);
    wr.set_slba(16);
    wr.set_fuse(2);
    set_sgl(&mut wr, 512, true);
    io.send(&capsule(&wr, &[0xee; 512]));
    let r = io.recv_pdu().expect("the write's response");
    assert_eq!(
        resp(&r),
        (10, 0, 0x0a),
        "Command Aborted due to Missing Fused Command"
    );
    assert!(
        read(&mut b.qp, &b.ns, 16, 512).iter().all(|&x| x == 0),
        "nothing written"
    );
    b.still_served(24);
}
