//! A reproducible PDU fuzzer for the hostile-host tests: well-formed PDUs
//! of every type (framed for the connection's digests, so they pass the
//! framing checks and reach the deeper ones), then corrupted fields, and
//! raw hosts driven into each connection state before the fuzzed PDUs go.

use super::pdu_fuzz::edgy32;
pub use super::pdu_fuzz::{mutate, Rng};
use super::raw::{capsule, h2c, raw_ctrlr, raw_io};
use super::RawHost;
use spdk_io::nvme::spec::{Cqe, Sqe};
use spdk_io::nvme::tcp::digest::data_digest;
use spdk_io::nvme::tcp::encode::*;
use spdk_io::nvme::tcp::fabrics::{connect_data, set_sgl, CNTLID_DYNAMIC};
use spdk_io::nvme::tcp::pdu::*;
use std::io::Read;
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

/// What the fuzzer knows of the connection: the command and transfer
/// tag an R2T named, so that H2CData often reaches a real slot.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ctx {
    pub cccid: u16,
    pub ttag: u16,
    pub r2tl: u32,
    pub framing: Framing,
    /// An I/O queue (else an admin queue or none yet).
    pub io: bool,
}

/// A random command: mostly an opcode of the queue's kind (admin or
/// I/O; Fabrics or unknown ones at times) with hostile NSIDs, block
/// ranges, CDWs and SGLs, sometimes fused; its SGL describes `data_len`
/// bytes of in-capsule data when there are any.
pub fn random_sqe(r: &mut Rng, io: bool, data_len: usize) -> Sqe {
    const ADMIN: [u8; 9] = [0x02, 0x06, 0x06, 0x08, 0x09, 0x0a, 0x0c, 0x18, 0x7f];
    const IO: [u8; 8] = [0x00, 0x01, 0x01, 0x02, 0x02, 0x05, 0x08, 0x09];
    let opc = match r.below(10) {
        0 => r.pick(&[0x7f, 0x04, 0x11, 0x80, 0xff]),
        1 | 2 if io => r.pick(&ADMIN),
        1 | 2 => r.pick(&IO),
        _ if io => r.pick(&IO),
        _ => r.pick(&ADMIN),
    };
    let any = r.next();
    let nsid = r.pick(&[0, 1, 1, 1, 2, 0xffff_ffff, 0xffff_fffe, any as u32]);
    let mut s = Sqe::new(opc, nsid);
    s.set_cid(r.pick(&[0, 1, 2, 3, 9, 11, 31, 127, 0xffff, any as u16]));
    if r.one_in(6) {
        s.set_fuse(r.below(4) as u8);
    }
    if opc == 0x7f {
        // Fabrics command type sits where the NSID would.
        s.nsid = r.pick(&[0x00, 0x01, 0x04, 0x05, 0x7f, (any >> 32) as u32]);
    }
    // CDW10/11: SLBA of I/O, CNS / log page / feature fields of admin.
    s.cdw10 = if r.one_in(2) {
        r.below(4200) as u32
    } else {
        edgy32(r)
    };
    s.cdw11 = if r.one_in(2) { 0 } else { edgy32(r) };
    s.cdw12 = match r.below(4) {
        0 | 1 => r.below(16) as u32,
        2 => 0xffff,
        _ => edgy32(r),
    };
    s.cdw13 = if r.one_in(2) { 0 } else { edgy32(r) };
    if r.one_in(4) {
        s.cdw14 = edgy32(r);
        s.cdw15 = edgy32(r);
    }
    if data_len > 0 && !r.one_in(8) {
        set_sgl(&mut s, data_len as u32, true);
    } else {
        let len = match r.below(4) {
            0 => 0,
            1 => 512 * (1 + r.below(16) as u32),
            2 => r.pick(&[1024, 4096, 65536, 131072]),
            _ => edgy32(r),
        };
        set_sgl(&mut s, len, false);
    }
    if r.one_in(8) {
        s.prp2 = r.next();
        s.set_psdt(r.below(4) as u8);
    }
    s
}

/// The bytes of a PDU framed with `f`'s digests: header, padding, data
/// and data digest.
pub fn frame(f: Framing, t: PduType, fl: u8, psh: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = [0u8; MAX_HEADER_WITH_PAD];
    let n = encode_header(&mut out, t, fl, psh, data.len(), f);
    let mut v = out[..n].to_vec();
    v.extend_from_slice(data);
    if f.ddgst && !data.is_empty() {
        v.extend_from_slice(&data_digest(data));
    }
    v
}

/// A well-formed PDU of a random type for framing `f`.
pub fn random_pdu(r: &mut Rng, ctx: &Ctx) -> Vec<u8> {
    let f = ctx.framing;
    let framed = |r: &mut Rng, t: PduType, fl: u8, psh: &[u8], data: &[u8]| {
        let mut v = frame(f, t, fl, psh, data);
        if f.ddgst && !data.is_empty() && r.one_in(8) {
            // A data digest that does not match.
            let at = v.len() - 1;
            v[at] ^= 1;
        }
        v
    };
    match r.below(14) {
        0 => encode_ic_req(&IcReq {
            pfv: r.pick(&[0, 0, 1]),
            hpda: r.pick(&[0, 3, 31, 32, 255]),
            dgst: r.below(4) as u8,
            maxr2t: edgy32(r),
        })
        .to_vec(),
        1 => encode_ic_resp(&IcResp {
            pfv: 0,
            cpda: r.below(40) as u8,
            dgst: r.below(4) as u8,
            maxh2cdata: edgy32(r),
        })
        .to_vec(),
        2 => {
            let mut out = [0u8; TERM_REQ_HLEN + TERM_REQ_MAX_DATA];
            let n = r.below(140) as usize;
            let off = r.bytes(n);
            let t = TermReq {
                fes: r.below(8) as u16,
                fei: edgy32(r),
            };
            let n = encode_term_req(&mut out, r.one_in(2), &t, &off);
            out[..n].to_vec()
        }
        3..=9 => {
            let len = r.pick(&[0usize, 0, 0, 0, 16, 512, 1024, 4096, 4100, 8192]);
            let sqe = random_sqe(r, ctx.io, len);
            let data = r.bytes(len);
            framed(r, PduType::CapsuleCmd, 0, capsule_cmd_psh(&sqe), &data)
        }
        12 => {
            let cqe = Cqe {
                dw0: r.next() as u32,
                dw1: 0,
                sqhd: 0,
                sqid: 0,
                cid: r.next() as u16,
                status: r.next() as u16,
            };
            framed(r, PduType::CapsuleResp, 0, capsule_resp_psh(&cqe), &[])
        }
        10 | 11 => {
            let near = r.one_in(2);
            let any = r.next();
            let datal = r.pick(&[1u32, 4, 512, 4096, ctx.r2tl.max(1), 8192]);
            let h = DataHeader {
                cccid: if near { ctx.cccid } else { any as u16 },
                ttag: if near { ctx.ttag } else { r.below(200) as u16 },
                datao: r.pick(&[0, 0, 512, 4096, ctx.r2tl, u32::MAX - 1, (any >> 32) as u32]),
                datal,
            };
            let t = if r.one_in(4) {
                PduType::C2HData
            } else {
                PduType::H2CData
            };
            let fl = r.pick(&[0, flags::LAST_PDU, flags::LAST_PDU | flags::SUCCESS]);
            let data = r.bytes(datal as usize);
            framed(r, t, fl, &data_psh(&h), &data)
        }
        _ => {
            let t = R2t {
                cccid: r.next() as u16,
                ttag: r.next() as u16,
                r2to: edgy32(r),
                r2tl: edgy32(r),
            };
            framed(r, PduType::R2T, 0, &r2t_psh(&t), &[])
        }
    }
}

/// The states a raw host is driven into before its fuzzed PDUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Connected, no ICReq.
    Fresh,
    /// ICReq/ICResp done (digests at random).
    Initialized,
    /// An admin queue connected, its controller not enabled.
    AdminConnected,
    /// An enabled controller's admin queue.
    AdminEnabled,
    /// An I/O queue of an enabled controller.
    IoQueue,
    /// An I/O queue with header and data digests.
    IoQueueDigests,
    /// An I/O queue with an R2T outstanding (the target waits for H2CData).
    AwaitingH2c,
    /// An I/O queue with a fused Compare waiting for its Write.
    FusedFirst,
    /// Inside a command capsule's in-capsule data.
    MidCapsule,
}

pub const STATES: [State; 9] = [
    State::Fresh,
    State::Initialized,
    State::AdminConnected,
    State::AdminEnabled,
    State::IoQueue,
    State::IoQueueDigests,
    State::AwaitingH2c,
    State::FusedFirst,
    State::MidCapsule,
];

/// A raw host in `state` on subsystem `nqn`; an I/O queue is one of
/// controller `cntlid` (enabled, its admin queue kept open by the caller).
pub fn drive(
    addr: SocketAddr,
    nqn: &str,
    cntlid: u16,
    state: State,
    r: &mut Rng,
) -> (RawHost, Ctx) {
    let mut ctx = Ctx::default();
    match state {
        State::Fresh => (RawHost::connect(addr), ctx),
        State::Initialized => {
            if r.one_in(2) {
                ctx.framing = Framing {
                    hdgst: true,
                    ddgst: true,
                    pda: 0,
                };
                (super::raw::handshake_digests(addr), ctx)
            } else {
                (RawHost::handshake(addr), ctx)
            }
        }
        State::AdminConnected => {
            let mut h = RawHost::handshake(addr);
            let mut sqe = spdk_io::nvme::tcp::fabrics::connect_cmd(0, 32, 0);
            set_sgl(&mut sqe, 1024, true);
            let host = "nqn.2024-01.io.spdk-io:fuzz";
            h.send(&capsule(
                &sqe,
                &connect_data(&[5; 16], CNTLID_DYNAMIC, nqn, host),
            ));
            h.recv_pdu().expect("Connect response");
            (h, ctx)
        }
        State::AdminEnabled => (raw_ctrlr(addr, nqn).0, ctx),
        State::IoQueueDigests => {
            let mut io = super::raw::handshake_digests(addr);
            ctx.framing = Framing {
                hdgst: true,
                ddgst: true,
                pda: 0,
            };
            let mut sqe = spdk_io::nvme::tcp::fabrics::connect_cmd(1, 32, 0);
            set_sgl(&mut sqe, 1024, true);
            let host = "nqn.2024-01.io.spdk-io:raw";
            let data = connect_data(&[9; 16], cntlid, nqn, host);
            let psh = capsule_cmd_psh(&sqe);
            io.send(&frame(ctx.framing, PduType::CapsuleCmd, 0, psh, &data));
            let r = io.recv_pdu().expect("Connect response");
            assert_eq!(u16::from_le_bytes([r[22], r[23]]) >> 1, 0, "I/O Connect");
            ctx.io = true;
            (io, ctx)
        }
        State::IoQueue | State::AwaitingH2c | State::FusedFirst | State::MidCapsule => {
            let mut io = raw_io(addr, nqn, cntlid, 1);
            ctx.io = true;
            match state {
                State::AwaitingH2c => {
                    let mut w = Sqe::new(0x01, 1);
                    w.set_cid(9);
                    w.cdw12 = 7; // 8 blocks of 512 bytes
                    set_sgl(&mut w, 4096, false);
                    io.send(&capsule(&w, &[]));
                    let r2t = io.recv_pdu().expect("R2T");
                    assert_eq!(r2t[0], PduType::R2T as u8);
                    ctx.cccid = 9;
                    ctx.ttag = u16::from_le_bytes([r2t[10], r2t[11]]);
                    ctx.r2tl = u32::from_le_bytes([r2t[16], r2t[17], r2t[18], r2t[19]]);
                    if r.one_in(2) {
                        // Part of the data already in.
                        io.send(&h2c(9, ctx.ttag, 0, &[0x5a; 512])[..]);
                    }
                }
                State::FusedFirst => {
                    let mut c = Sqe::new(0x05, 1);
                    c.set_cid(11);
                    c.set_fuse(1);
                    set_sgl(&mut c, 512, true);
                    io.send(&capsule(&c, &[0; 512]));
                }
                State::MidCapsule => {
                    let mut w = Sqe::new(0x01, 1);
                    w.set_cid(12);
                    set_sgl(&mut w, 4096, true);
                    let pdu = capsule(&w, &[0x33; 4096]);
                    let cut = 72 + r.below(4096) as usize;
                    io.send(&pdu[..cut]);
                }
                _ => {}
            }
            (io, ctx)
        }
    }
}

/// Sends `units` fuzzed pieces, hangs up its sending side and reads what
/// the target answers until it closes the connection; false when the
/// target neither closed nor answered within the time allowed.
pub fn attack(h: &mut RawHost, r: &mut Rng, ctx: &Ctx, units: u64) -> bool {
    for _ in 0..units {
        let piece = match r.below(8) {
            0 if r.one_in(2) => {
                let n = r.below(100) as usize;
                r.bytes(n)
            }
            0..=4 => random_pdu(r, ctx),
            _ => {
                let p = random_pdu(r, ctx);
                mutate(r, p)
            }
        };
        h.send(&piece);
    }
    let _ = h.s.shutdown(Shutdown::Write);
    let _ = h.s.set_read_timeout(Some(Duration::from_millis(500)));
    let start = Instant::now();
    let mut b = [0u8; 16384];
    while start.elapsed() < Duration::from_secs(10) {
        match h.s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => continue,
        }
    }
    false
}
