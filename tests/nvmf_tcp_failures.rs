//! Failing and demanding hosts against the NVMe-oF target on 127.0.0.1:
//! hosts gone while the target waits for their data, a silent host past
//! its keep-alive timeout, a host that never reads, 256 connections at
//! once, and a namespace added while a host is connected (its event
//! request completes). A well-behaved host is served throughout.

mod nvmf_common;

use nvmf_common::raw::*;
use nvmf_common::{qp_opts, random, write_read, RawHost};
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
    // Enable (Property Set CC: EN, IOSQES 6, IOCQES 4).
    let mut set = Sqe::new(0x7f, 0x00);
    set.set_cid(1);
    set.cdw11 = 0x14;
    set.cdw12 = 1 | 6 << 16 | 4 << 20;
    assert_eq!(admin_cmd(&mut h, &set).1, 0);
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
    let mut set = Sqe::new(0x7f, 0x00);
    set.set_cid(1);
    set.cdw11 = 0x14;
    set.cdw12 = 1 | 6 << 16 | 4 << 20;
    assert_eq!(admin_cmd(&mut h, &set).1, 0);
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
