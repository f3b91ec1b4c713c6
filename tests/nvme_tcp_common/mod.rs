//! A scripted NVMe/TCP controller for host tests over 127.0.0.1: it
//! accepts one connection, answers ICReq, and then plays whatever PDU
//! exchange a test writes with blocking reads and writes. A test tool, not
//! a target: the real peers are Linux's nvmet-tcp in the guest.
#![allow(dead_code)]

pub mod target;

use spdk_io::nvme::spec::{Cqe, Sqe};
use spdk_io::nvme::tcp::decode::{decode_header, header_frame_len, Expect, Header, Psh};
use spdk_io::nvme::tcp::encode::*;
use spdk_io::nvme::tcp::pdu::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

/// The controller's end of one connection.
pub struct Peer {
    pub s: TcpStream,
    /// Framing of what the peer receives (its CPDA) and sends (host HPDA 0).
    pub framing: Framing,
    pub maxh2cdata: u32,
    /// Close at once when the script ends (else wait for the host to close).
    pub hang_up: bool,
    /// MAXR2T of the host's ICReq (0's based).
    pub maxr2t: u32,
}

/// What ICResp answers.
#[derive(Clone, Copy)]
pub struct PeerOpts {
    pub grant_hdgst: bool,
    pub grant_ddgst: bool,
    pub cpda: u8,
    pub maxh2cdata: u32,
}

impl Default for PeerOpts {
    fn default() -> Self {
        PeerOpts {
            grant_hdgst: true,
            grant_ddgst: true,
            cpda: 0,
            maxh2cdata: 8192,
        }
    }
}

/// Listens on 127.0.0.1 and runs `script` on the first connection after
/// the ICReq/ICResp exchange. Returns the address and the script's thread.
pub fn spawn<T, F>(opts: PeerOpts, script: F) -> (SocketAddr, JoinHandle<T>)
where
    T: Send + 'static,
    F: FnOnce(&mut Peer) -> T + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut p = Peer::accept_ic(s, opts);
        let r = script(&mut p);
        if !p.hang_up {
            // Until the host closes: an early close would fail its queue.
            let mut sink = [0u8; 4096];
            while matches!(p.s.read(&mut sink), Ok(n) if n > 0) {}
        }
        r
    });
    (addr, h)
}

impl Peer {
    /// Answers the host's ICReq on a fresh connection.
    pub fn accept_ic(s: TcpStream, opts: PeerOpts) -> Peer {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        let mut p = Peer {
            s,
            framing: Framing::default(),
            maxh2cdata: opts.maxh2cdata,
            hang_up: false,
            maxr2t: 0,
        };
        let (h, _) = p.read_pdu_with(PduTypeSet::of(&[PduType::IcReq]));
        let Psh::IcReq(req) = h.psh else {
            panic!("{h:?}")
        };
        p.maxr2t = req.maxr2t;
        let mut dg = 0;
        if opts.grant_hdgst && req.dgst & dgst::HDGST_ENABLE != 0 {
            dg |= dgst::HDGST_ENABLE;
        }
        if opts.grant_ddgst && req.dgst & dgst::DDGST_ENABLE != 0 {
            dg |= dgst::DDGST_ENABLE;
        }
        p.s.write_all(&encode_ic_resp(&IcResp {
            pfv: 0,
            cpda: opts.cpda,
            dgst: dg,
            maxh2cdata: opts.maxh2cdata,
        }))
        .unwrap();
        p.framing = Framing {
            hdgst: dg & dgst::HDGST_ENABLE != 0,
            ddgst: dg & dgst::DDGST_ENABLE != 0,
            pda: opts.cpda,
        };
        p
    }

    fn framing_out(&self) -> Framing {
        Framing {
            pda: 0,
            ..self.framing
        }
    }

    /// Reads one PDU: its header and its data (digest checked).
    pub fn read_pdu_with(&mut self, allowed: PduTypeSet) -> (Header, Vec<u8>) {
        let e = Expect {
            allowed,
            state: "in the test peer",
            framing: self.framing,
            max_data: 1 << 24,
        };
        let mut ch = [0u8; CH_LEN];
        self.s.read_exact(&mut ch).unwrap();
        let n = header_frame_len(&ch, &e).unwrap().unwrap();
        let mut frame = ch.to_vec();
        frame.resize(n, 0);
        self.s.read_exact(&mut frame[CH_LEN..]).unwrap();
        let h = decode_header(&frame, &e).unwrap();
        let mut rest = vec![0u8; h.rest_len()];
        self.s.read_exact(&mut rest).unwrap();
        let data = rest[h.pad..h.pad + h.data_len].to_vec();
        if h.ddgst_len > 0 {
            let got = u32::from_le_bytes(rest[h.pad + h.data_len..].try_into().unwrap());
            assert_eq!(
                got,
                spdk_io::nvme::tcp::digest::crc32c(&data),
                "data digest"
            );
        }
        (h, data)
    }

    /// Reads a CapsuleCmd: the SQE and its in-capsule data.
    pub fn read_cmd(&mut self) -> (Sqe, Vec<u8>) {
        let (h, data) = self.read_pdu_with(PduTypeSet::of(&[PduType::CapsuleCmd]));
        let Psh::CapsuleCmd(sqe) = h.psh else {
            panic!("{h:?}")
        };
        (sqe, data)
    }

    /// Reads an H2CData PDU: its header, its flags and data.
    pub fn read_h2c(&mut self) -> (DataHeader, u8, Vec<u8>) {
        let (h, data) = self.read_pdu_with(PduTypeSet::of(&[PduType::H2CData]));
        let Psh::Data(d) = h.psh else { panic!("{h:?}") };
        (d, h.ch.flags, data)
    }

    /// Writes raw bytes (a PDU built by hand, or a piece of one).
    pub fn send_raw(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// The bytes of a PDU with header `psh` and `data`.
    pub fn pdu(&self, t: PduType, extra_flags: u8, psh: &[u8], data: &[u8]) -> Vec<u8> {
        let f = self.framing_out();
        let mut out = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(&mut out, t, extra_flags, psh, data.len(), f);
        let mut v = out[..n].to_vec();
        v.extend_from_slice(data);
        if f.ddgst && !data.is_empty() {
            v.extend_from_slice(&spdk_io::nvme::tcp::digest::data_digest(data));
        }
        v
    }

    /// Sends a CapsuleResp for `cid` with `status` (SC, generic type) and `dw0`.
    pub fn send_resp(&mut self, cid: u16, sc: u8, dw0: u32) {
        let cqe = Cqe {
            dw0,
            dw1: 0,
            sqhd: 0,
            sqid: 0,
            cid,
            status: (sc as u16) << 1,
        };
        let b = self.pdu(PduType::CapsuleResp, 0, capsule_resp_psh(&cqe), &[]);
        self.send_raw(&b);
    }

    /// Sends C2HData for `cid` at `datao`.
    pub fn send_c2h(&mut self, cid: u16, datao: u32, data: &[u8], flags: u8) {
        let h = DataHeader {
            cccid: cid,
            ttag: 0,
            datao,
            datal: data.len() as u32,
        };
        let b = self.pdu(PduType::C2HData, flags, &data_psh(&h), data);
        self.send_raw(&b);
    }

    /// Sends an R2T for `cid`.
    pub fn send_r2t(&mut self, cid: u16, ttag: u16, r2to: u32, r2tl: u32) {
        let r = R2t {
            cccid: cid,
            ttag,
            r2to,
            r2tl,
        };
        let b = self.pdu(PduType::R2T, 0, &r2t_psh(&r), &[]);
        self.send_raw(&b);
    }
}
