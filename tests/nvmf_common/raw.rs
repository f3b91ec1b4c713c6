//! A raw NVMe/TCP host's helpers for the hostile-host tests: a target
//! with a well-behaved host beside, PDUs built by hand, the target's
//! C2HTermReq checked.

use super::{opts, qp_opts, random, subsystem, write_read, RawHost, Tgt, HOSTNQN};
use spdk_io::nvme::spec::Sqe;
use spdk_io::nvme::tcp::encode::{capsule_cmd_psh, data_psh, encode_header, MAX_HEADER_WITH_PAD};
use spdk_io::nvme::tcp::fabrics::{connect_cmd, connect_data, set_sgl, CNTLID_DYNAMIC};
use spdk_io::nvme::tcp::pdu::{fes, flags, DataHeader, Framing, PduType};
use spdk_io::nvme::{self, Controller, QPair};
use spdk_io::nvmf::TransportOpts;

/// A target with one namespace and a good host connected to it.
pub struct Bench {
    pub t: Tgt,
    pub c: Controller,
    pub qp: QPair,
    pub ns: nvme::Namespace,
    pub nqn: &'static str,
}

pub fn bench(nqn: &'static str, bdev: &str) -> Bench {
    let t = Tgt::start(TransportOpts::default(), 2, "127.0.0.1:0");
    subsystem(&t, nqn, bdev, 4096, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let qp = c.alloc_io_qpair(qp_opts()).unwrap();
    Bench { t, c, qp, ns, nqn }
}

impl Bench {
    /// The good host's I/O still completes.
    pub fn still_served(&mut self, seed: u64) {
        write_read(&mut self.qp, &self.ns, seed * 8, &random(4096, seed));
        assert!(self.c.namespace_ids().contains(&1));
    }
}

/// The target's answer: a C2HTermReq with `want_fes`, then end of stream.
pub fn expect_term(h: &mut RawHost, want_fes: u16) -> u32 {
    let pdu = h.recv_pdu().expect("a C2HTermReq before the close");
    assert_eq!(pdu[0], PduType::C2HTermReq as u8, "PDU type {:#x}", pdu[0]);
    let got = u16::from_le_bytes([pdu[8], pdu[9]]);
    assert_eq!(got, want_fes, "FES {}", fes::name(got));
    assert!(h.closed_by_target(), "the target closes the connection");
    u32::from_le_bytes([pdu[10], pdu[11], pdu[12], pdu[13]])
}

pub fn capsule(sqe: &Sqe, data: &[u8]) -> Vec<u8> {
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
pub fn raw_admin(addr: std::net::SocketAddr, nqn: &str, kato_ms: u32) -> RawHost {
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

/// A raw host's enabled controller on `nqn`: its admin queue (CC.EN set)
/// and its controller ID.
pub fn raw_ctrlr(addr: std::net::SocketAddr, nqn: &str) -> (RawHost, u16) {
    let mut h = RawHost::handshake(addr);
    let mut sqe = connect_cmd(0, 32, 0);
    set_sgl(&mut sqe, 1024, true);
    h.send(&capsule(
        &sqe,
        &connect_data(&[9; 16], CNTLID_DYNAMIC, nqn, "nqn.2024-01.io.spdk-io:raw"),
    ));
    let r = h.recv_pdu().expect("Connect response");
    assert_eq!(u16::from_le_bytes([r[22], r[23]]) >> 1, 0, "Connect");
    let cntlid = u16::from_le_bytes([r[8], r[9]]);
    enable(&mut h);
    (h, cntlid)
}

/// Enables the controller of `h`'s admin queue (Property Set CC: EN,
/// IOSQES 6, IOCQES 4, as command 1) and checks that it succeeded.
pub fn enable(h: &mut RawHost) {
    let mut set = Sqe::new(0x7f, 0x00);
    set.set_cid(1);
    set.cdw11 = 0x14;
    set.cdw12 = 1 | 6 << 16 | 4 << 20;
    assert_eq!(admin_cmd(h, &set).1, 0, "CC.EN");
}

/// A raw host's I/O queue `qid` of controller `cntlid` on `nqn`.
pub fn raw_io(addr: std::net::SocketAddr, nqn: &str, cntlid: u16, qid: u16) -> RawHost {
    let mut h = RawHost::handshake(addr);
    let mut sqe = connect_cmd(qid, 32, 0);
    set_sgl(&mut sqe, 1024, true);
    h.send(&capsule(
        &sqe,
        &connect_data(&[9; 16], cntlid, nqn, "nqn.2024-01.io.spdk-io:raw"),
    ));
    let r = h.recv_pdu().expect("Connect response");
    assert_eq!(
        u16::from_le_bytes([r[22], r[23]]) >> 1,
        0,
        "I/O queue Connect"
    );
    h
}

/// One H2CData PDU (the last) carrying `data` at `datao` for command
/// `cccid` under transfer tag `ttag`.
pub fn h2c(cccid: u16, ttag: u16, datao: u32, data: &[u8]) -> Vec<u8> {
    h2c_with_flags(cccid, ttag, datao, data, flags::LAST_PDU)
}

/// [`h2c`] with the header's `flags` (0: not the last PDU).
pub fn h2c_with_flags(cccid: u16, ttag: u16, datao: u32, data: &[u8], pdu_flags: u8) -> Vec<u8> {
    let psh = data_psh(&DataHeader {
        cccid,
        ttag,
        datao,
        datal: data.len() as u32,
    });
    let mut hdr = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(
        &mut hdr,
        PduType::H2CData,
        pdu_flags,
        &psh,
        data.len(),
        Framing::default(),
    );
    let mut pdu = hdr[..n].to_vec();
    pdu.extend_from_slice(data);
    pdu
}

/// Sends admin command `sqe` (no data) and returns its CQE's (dw0, status).
pub fn admin_cmd(h: &mut RawHost, sqe: &Sqe) -> (u32, u16) {
    h.send(&capsule(sqe, &[]));
    let r = h.recv_pdu().expect("a response");
    assert_eq!(r[0], PduType::CapsuleResp as u8, "PDU type {:#x}", r[0]);
    (
        u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
        u16::from_le_bytes([r[22], r[23]]) >> 1,
    )
}

/// ICReq asking for header and data digests; the ICResp grants them.
pub fn handshake_digests(addr: std::net::SocketAddr) -> RawHost {
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

pub fn connect_with_digests(bad_header: bool, bad_data: bool) -> Vec<u8> {
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
