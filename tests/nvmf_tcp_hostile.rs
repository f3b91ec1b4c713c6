//! Hostile and failing hosts against the NVMe-oF target on 127.0.0.1:
//! garbage, a wrong PDU for the state, a bad header length, a PDU
//! announcing gigabytes, H2C data outside the R2T, a host gone mid-write,
//! a silent host past its keep-alive timeout, 256 connections at once.
//! Each offender's connection is closed (with a C2HTermReq naming the
//! error where the specification has one) and a well-behaved host's I/O
//! still completes afterwards.

mod nvmf_common;

use nvmf_common::{opts, qp_opts, random, subsystem, write_read, RawHost, Tgt, HOSTNQN};
use spdk_io::nvme::spec::{NvmOpcode, Sqe};
use spdk_io::nvme::tcp::encode::{capsule_cmd_psh, data_psh, encode_header, MAX_HEADER_WITH_PAD};
use spdk_io::nvme::tcp::fabrics::{connect_cmd, connect_data, set_sgl, CNTLID_DYNAMIC};
use spdk_io::nvme::tcp::pdu::{fes, flags, DataHeader, Framing, PduType};
use spdk_io::nvme::{self, Controller, QPair};
use spdk_io::nvmf::TransportOpts;
use std::time::{Duration, Instant};

/// A target with one namespace and a good host connected to it.
struct Bench {
    t: Tgt,
    c: Controller,
    qp: QPair,
    ns: nvme::Namespace,
    nqn: &'static str,
}

fn bench(nqn: &'static str, bdev: &str) -> Bench {
    let t = Tgt::start(TransportOpts::default(), 2, "127.0.0.1:0");
    subsystem(&t, nqn, bdev, 4096, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let qp = c.alloc_io_qpair(qp_opts()).unwrap();
    Bench { t, c, qp, ns, nqn }
}

impl Bench {
    /// The good host's I/O still completes.
    fn still_served(&mut self, seed: u64) {
        write_read(&mut self.qp, &self.ns, seed * 8, &random(4096, seed));
        assert!(self.c.namespace_ids().contains(&1));
    }
}

/// The target's answer: a C2HTermReq with `want_fes`, then end of stream.
fn expect_term(h: &mut RawHost, want_fes: u16) -> u32 {
    let pdu = h.recv_pdu().expect("a C2HTermReq before the close");
    assert_eq!(pdu[0], PduType::C2HTermReq as u8, "PDU type {:#x}", pdu[0]);
    let got = u16::from_le_bytes([pdu[8], pdu[9]]);
    assert_eq!(got, want_fes, "FES {}", fes::name(got));
    assert!(h.closed_by_target(), "the target closes the connection");
    u32::from_le_bytes([pdu[10], pdu[11], pdu[12], pdu[13]])
}

fn capsule(sqe: &Sqe, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut h,
        PduType::CapsuleCmd,
        0,
        capsule_cmd_psh(sqe),
        data.len(),
        Framing::default(),
    );
    let mut v = h[..n].to_vec();
    v.extend_from_slice(data);
    v
}

/// A raw host through ICReq and an admin Connect to `nqn` with `kato_ms`.
fn raw_admin(addr: std::net::SocketAddr, nqn: &str, kato_ms: u32) -> RawHost {
    let mut h = RawHost::handshake(addr);
    let mut sqe = connect_cmd(0, 32, kato_ms);
    set_sgl(&mut sqe, 1024, true);
    h.send(&capsule(
        &sqe,
        &connect_data(&[9; 16], CNTLID_DYNAMIC, nqn, "nqn.2024-01.io.spdk-io:raw"),
    ));
    let r = h.recv_pdu().expect("Connect response");
    assert_eq!(r[0], PduType::CapsuleResp as u8);
    assert_eq!(
        u16::from_le_bytes([r[22], r[23]]) >> 1,
        0,
        "Connect succeeded"
    );
    h
}

#[test]
fn garbage_bytes_get_a_term_req_and_the_other_host_is_still_served() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-garbage", "NvmfHostileGarbage");
    let mut h = RawHost::connect(b.t.addr);
    h.send(&[0xee; 64]);
    expect_term(&mut h, fes::INVALID_HEADER_FIELD);
    b.still_served(1);
}

#[test]
fn a_command_before_icreq_is_a_pdu_sequence_error() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-seq", "NvmfHostileSeq");
    let mut h = RawHost::connect(b.t.addr);
    h.send(&capsule(&Sqe::new(0x06, 0), &[]));
    expect_term(&mut h, fes::PDU_SEQUENCE_ERROR);
    b.still_served(2);
}

#[test]
fn a_bad_header_length_is_named_by_its_offset() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-hlen", "NvmfHostileHlen");
    let mut h = RawHost::handshake(b.t.addr);
    let mut pdu = capsule(&Sqe::new(0x06, 0), &[]);
    pdu[2] = 40; // HLEN of a CapsuleCmd is 72
    h.send(&pdu);
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        2,
        "FEI: HLEN at byte 2"
    );
    b.still_served(3);
}

#[test]
fn a_pdu_announcing_gigabytes_is_refused_without_waiting_for_them() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-huge", "NvmfHostileHuge");
    let mut h = RawHost::handshake(b.t.addr);
    let mut pdu = capsule(&Sqe::new(0x01, 1), &[0; 16]);
    pdu[4..8].copy_from_slice(&0xfff0_0000u32.to_le_bytes());
    h.send(&pdu);
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        4,
        "FEI: PLEN at byte 4"
    );
    b.still_served(4);
}

#[test]
fn h2c_data_outside_the_r2t_window_ends_the_connection() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-h2c", "NvmfHostileH2c");
    let nqn = b.nqn;
    let mut h = raw_admin(b.t.addr, nqn, 0);
    // H2CData for a transfer tag no R2T gave out: TTAG is the bad field.
    let psh = data_psh(&DataHeader {
        cccid: 7,
        ttag: 3,
        datao: 0,
        datal: 512,
    });
    let mut hdr = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut hdr,
        PduType::H2CData,
        flags::LAST_PDU,
        &psh,
        512,
        Framing::default(),
    );
    let mut pdu = hdr[..n].to_vec();
    pdu.extend_from_slice(&[0u8; 512]);
    h.send(&pdu);
    assert_eq!(
        expect_term(&mut h, fes::INVALID_HEADER_FIELD),
        10,
        "FEI: TTAG at byte 10"
    );
    b.still_served(5);
}

#[test]
fn h2c_data_past_the_r2t_length_is_data_transfer_out_of_range() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-r2t", "NvmfHostileR2t");
    let nqn = b.nqn;
    let mut h = raw_admin(b.t.addr, nqn, 0);
    // An admin command with host-to-controller data by transport SGL
    // (Set Features, opcode 09h): the target asks for it with an R2T.
    let mut sqe = Sqe::new(0x09, 0);
    sqe.set_cid(5);
    sqe.cdw10 = 0x0b;
    set_sgl(&mut sqe, 4096, false);
    h.send(&capsule(&sqe, &[]));
    let r2t = h.recv_pdu().expect("R2T");
    assert_eq!(r2t[0], PduType::R2T as u8);
    let ttag = u16::from_le_bytes([r2t[10], r2t[11]]);
    let r2tl = u32::from_le_bytes([r2t[16], r2t[17], r2t[18], r2t[19]]);
    assert_eq!(r2tl, 4096);
    let psh = data_psh(&DataHeader {
        cccid: 5,
        ttag,
        datao: 0,
        datal: 8192,
    });
    let mut hdr = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut hdr,
        PduType::H2CData,
        0,
        &psh,
        8192,
        Framing::default(),
    );
    let mut pdu = hdr[..n].to_vec();
    pdu.extend_from_slice(&[0u8; 8192]);
    h.send(&pdu);
    expect_term(&mut h, fes::DATA_TRANSFER_OUT_OF_RANGE);
    b.still_served(6);
}

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

/// Sends admin command `sqe` (no data) and returns its CQE's (dw0, status).
fn admin_cmd(h: &mut RawHost, sqe: &Sqe) -> (u32, u16) {
    h.send(&capsule(sqe, &[]));
    let r = h.recv_pdu().expect("a response");
    assert_eq!(r[0], PduType::CapsuleResp as u8, "PDU type {:#x}", r[0]);
    (
        u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
        u16::from_le_bytes([r[22], r[23]]) >> 1,
    )
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

/// ICReq asking for header and data digests; the ICResp grants them.
fn handshake_digests(addr: std::net::SocketAddr) -> RawHost {
    use spdk_io::nvme::tcp::encode::encode_ic_req;
    use spdk_io::nvme::tcp::pdu::{dgst, IcReq};
    let mut h = RawHost::connect(addr);
    h.send(&encode_ic_req(&IcReq {
        dgst: dgst::HDGST_ENABLE | dgst::DDGST_ENABLE,
        ..IcReq::default()
    }));
    let r = h.recv_pdu().expect("ICResp");
    assert_eq!((r[0], r[11]), (0x01, 3), "ICResp with both digests");
    h
}

fn connect_with_digests(bad_header: bool, bad_data: bool) -> Vec<u8> {
    let sqe = {
        let mut s = connect_cmd(0, 32, 0);
        set_sgl(&mut s, 1024, true);
        s
    };
    let data = connect_data(
        &[9; 16],
        CNTLID_DYNAMIC,
        "nqn.x",
        "nqn.2024-01.io.spdk-io:raw",
    );
    let f = Framing {
        hdgst: true,
        ddgst: true,
        pda: 0,
    };
    let mut h = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut h,
        PduType::CapsuleCmd,
        0,
        capsule_cmd_psh(&sqe),
        data.len(),
        f,
    );
    let mut pdu = h[..n].to_vec();
    if bad_header {
        pdu[72] ^= 0xff; // the header digest follows the 72-byte header
    }
    pdu.extend_from_slice(&data);
    let mut d = spdk_io::nvme::tcp::digest::data_digest(&data);
    if bad_data {
        d[0] ^= 0xff;
    }
    pdu.extend_from_slice(&d);
    pdu
}

#[test]
fn a_header_digest_that_does_not_match_is_a_header_digest_error() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-hdgst", "NvmfHostileHdgst");
    let mut h = handshake_digests(b.t.addr);
    h.send(&connect_with_digests(true, false));
    expect_term(&mut h, fes::HDGST_ERROR);
    b.still_served(13);
}

#[test]
fn a_data_digest_that_does_not_match_fails_the_command_with_a_transient_transport_error() {
    let mut b = bench("nqn.2016-06.io.spdk-io:h-ddgst", "NvmfHostileDdgst");
    let mut h = handshake_digests(b.t.addr);
    h.send(&connect_with_digests(false, true));
    let r = h.recv_pdu().expect("a response capsule");
    assert_eq!(r[0], PduType::CapsuleResp as u8);
    assert_eq!(
        r[1] & flags::HDGSTF,
        flags::HDGSTF,
        "with its header digest"
    );
    let status = u16::from_le_bytes([r[22], r[23]]) >> 1;
    assert_eq!(status & 0xff, 0x22, "Transient Transport Error");
    // The connection stays: a good Connect (to an unknown NQN) is answered.
    h.send(&connect_with_digests(false, false));
    let r = h.recv_pdu().expect("a second response");
    assert_eq!(r[0], PduType::CapsuleResp as u8);
    b.still_served(14);
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
