//! The NVMe/TCP initiator against a hostile controller on 127.0.0.1: a
//! fake controller answers ICReq with sane or absurd values, then sends a
//! random mix of PDUs for the host's commands — responses for commands
//! not in flight or answered twice, C2H data beyond the request or out of
//! order, R2Ts for commands without data or with bad windows, corrupted
//! headers, terminations — and hangs up. The host's calls return errors
//! or completions (each command at most once), never a panic or a hang.
//! `ctrlr.rs`: the same for a whole controller's attach, namespace scan,
//! I/O and detach; `limits.rs`: limits a controller reports beyond what
//! the driver can use.

#[path = "nvme_tcp_hostile/ctrlr.rs"]
mod ctrlr;
#[path = "nvme_tcp_hostile/limits.rs"]
mod limits;
use crate::pdu_fuzz;

use pdu_fuzz::{edgy32, mutate, pick_or_edgy, Rng};
use spdk_io::nvme::spec::{Cqe, Sqe};
use spdk_io::nvme::tcp::encode::*;
use spdk_io::nvme::tcp::pdu::*;
use spdk_io::nvme::tcp::{CommandBuffers, TcpQueue, TcpQueueOpts};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// The host's commands: (CID, bytes, host to controller). CID 2's write
/// is larger than the in-capsule limit (sent on R2T), CID 3's inside it.
const CMDS: [(u16, u32, bool); 4] = [
    (1, 8192, false),
    (2, 16384, true),
    (3, 512, true),
    (4, 0, false),
];
const IN_CAPSULE: usize = 4096;

/// One buffer per command.
struct Bufs(Vec<Vec<u8>>);

impl CommandBuffers for Bufs {
    fn segment(&self, cid: u16, i: usize) -> Option<&[u8]> {
        let b = self.0.get(cid as usize).filter(|_| i == 0)?;
        (!b.is_empty()).then_some(&b[..])
    }
    fn segment_mut(&mut self, cid: u16, i: usize) -> Option<&mut [u8]> {
        let b = self.0.get_mut(cid as usize).filter(|_| i == 0)?;
        (!b.is_empty()).then_some(&mut b[..])
    }
}

/// What the fake controller learnt of the connection.
struct Conn {
    s: TcpStream,
    framing: Framing,
}

impl Conn {
    fn send(&mut self, b: &[u8]) {
        let _ = self.s.write_all(b);
    }

    fn pdu(&self, r: &mut Rng, t: PduType, fl: u8, psh: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(&mut out, t, fl, psh, data.len(), self.framing);
        let mut v = out[..n].to_vec();
        v.extend_from_slice(data);
        if self.framing.ddgst && !data.is_empty() {
            let mut d = spdk_io::nvme::tcp::digest::data_digest(data);
            if r.one_in(10) {
                d[3] ^= 0x80;
            }
            v.extend_from_slice(&d);
        }
        v
    }

    /// Reads the host's capsules (up to `n`) for a short while; their CIDs.
    fn read_capsules(&mut self, n: usize) -> Vec<u16> {
        let _ = self.s.set_read_timeout(Some(Duration::from_millis(20)));
        let (mut buf, mut cids) = (Vec::new(), Vec::new());
        let mut chunk = [0u8; 65536];
        let start = Instant::now();
        while cids.len() < n && start.elapsed() < Duration::from_millis(200) {
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
            let mut at = 0;
            cids.clear();
            while buf.len() >= at + CH_LEN {
                let plen = u32::from_le_bytes(buf[at + 4..at + 8].try_into().unwrap()) as usize;
                if buf[at] == PduType::CapsuleCmd as u8 && buf.len() >= at + 12 {
                    cids.push(u16::from_le_bytes([buf[at + 10], buf[at + 11]]));
                }
                if plen < CH_LEN {
                    break;
                }
                at += plen;
            }
        }
        cids
    }
}

/// A correct answer to one of the host's commands (so that hostile
/// ones also come after real progress: a response for a command already
/// answered, data for a read already complete).
fn proper_pdu(c: &Conn, r: &mut Rng) -> Vec<u8> {
    match r.below(4) {
        0 => {
            let h = DataHeader {
                cccid: 1,
                ttag: 0,
                datao: 0,
                datal: 8192,
            };
            let data = r.bytes(8192);
            let fl = flags::LAST_PDU | flags::SUCCESS;
            c.pdu(r, PduType::C2HData, fl, &data_psh(&h), &data)
        }
        1 => {
            let t = R2t {
                cccid: 2,
                ttag: 1,
                r2to: 0,
                r2tl: 16384,
            };
            c.pdu(r, PduType::R2T, 0, &r2t_psh(&t), &[])
        }
        k => {
            let cqe = Cqe {
                dw0: 0,
                dw1: 0,
                sqhd: 0,
                sqid: 0,
                cid: k as u16 + 1,
                status: 0,
            };
            c.pdu(r, PduType::CapsuleResp, 0, capsule_resp_psh(&cqe), &[])
        }
    }
}

/// One hostile answer for the host's commands.
fn hostile_pdu(c: &Conn, r: &mut Rng) -> Vec<u8> {
    if r.one_in(3) {
        return proper_pdu(c, r);
    }
    let any = r.next();
    let cid = r.pick(&[1, 1, 2, 2, 3, 4, 0, 5, 31, 32, 0xffff, any as u16]);
    match r.below(9) {
        0 | 1 => {
            let cqe = Cqe {
                dw0: any as u32,
                dw1: 0,
                sqhd: 0,
                sqid: 0,
                cid,
                status: r.pick(&[0, 0, 0x22 << 1, (any >> 32) as u16]),
            };
            c.pdu(r, PduType::CapsuleResp, 0, capsule_resp_psh(&cqe), &[])
        }
        2..=4 => {
            let datal = r.pick(&[1u32, 512, 4096, 8192, 8193, 16384]);
            let h = DataHeader {
                cccid: cid,
                ttag: r.below(4) as u16,
                datao: pick_or_edgy(r, &[0, 0, 0, 4096, 8191, 8192]),
                datal,
            };
            let fl = r.pick(&[
                0,
                flags::LAST_PDU,
                flags::LAST_PDU | flags::SUCCESS,
                flags::SUCCESS,
            ]);
            let data = r.bytes(datal as usize);
            c.pdu(r, PduType::C2HData, fl, &data_psh(&h), &data)
        }
        5 | 6 => {
            let t = R2t {
                cccid: cid,
                ttag: r.below(8) as u16,
                r2to: pick_or_edgy(r, &[0, 0, 512, 8192, 16384]),
                r2tl: pick_or_edgy(r, &[0, 1, 512, 4096, 8192, 16384, 16385]),
            };
            c.pdu(r, PduType::R2T, 0, &r2t_psh(&t), &[])
        }
        7 => {
            let mut out = [0u8; TERM_REQ_HLEN + TERM_REQ_MAX_DATA];
            let t = TermReq {
                fes: r.below(8) as u16,
                fei: edgy32(r),
            };
            let n = encode_term_req(&mut out, r.one_in(4), &t, &[0xab; 40]);
            out[..n].to_vec()
        }
        _ => {
            // A PDU only a host sends, or a second ICResp.
            if r.one_in(2) {
                let sqe = Sqe::new(0x02, 1);
                c.pdu(r, PduType::CapsuleCmd, 0, capsule_cmd_psh(&sqe), &[])
            } else {
                encode_ic_resp(&IcResp {
                    maxh2cdata: 8192,
                    ..IcResp::default()
                })
                .to_vec()
            }
        }
    }
}

/// Serves one connection as a hostile controller, then hangs up.
fn hostile_controller(s: TcpStream, r: &mut Rng) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut c = Conn {
        s,
        framing: Framing::default(),
    };
    let mut ic = [0u8; IC_LEN];
    if c.s.read_exact(&mut ic).is_err() {
        return;
    }
    let asked = ic[11] & 3;
    let granted = if r.one_in(12) {
        r.below(4) as u8
    } else {
        asked & r.below(4) as u8
    };
    // Mostly an ICResp within the rules (any CPDA, the least or an
    // absurdly large MAXH2CDATA); else absurd fields or a corrupted header.
    let sane = r.below(6) != 0;
    let resp = if sane {
        encode_ic_resp(&IcResp {
            pfv: 0,
            cpda: r.pick(&[0, 0, 1, 7, 31]),
            dgst: granted,
            maxh2cdata: r.pick(&[4096, 8192, 131072, u32::MAX - 3]),
        })
        .to_vec()
    } else {
        let absurd = encode_ic_resp(&IcResp {
            pfv: r.pick(&[0, 1, 0xffff]),
            cpda: r.pick(&[0, 32, 255]),
            dgst: r.below(256) as u8,
            maxh2cdata: edgy32(r),
        });
        mutate(r, absurd.to_vec())
    };
    c.send(&resp);
    c.framing = Framing {
        hdgst: granted & dgst::HDGST_ENABLE != 0,
        ddgst: granted & dgst::DDGST_ENABLE != 0,
        pda: 0,
    };
    if sane {
        c.read_capsules(CMDS.len());
    }
    for _ in 0..=r.below(8) {
        let p = hostile_pdu(&c, r);
        let p = if r.one_in(4) { mutate(r, p) } else { p };
        c.send(&p);
        if r.one_in(4) {
            // Let the host take it in before the next.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let _ = c.s.shutdown(Shutdown::Both);
}

/// The host's side of one case: connect, submit the commands, poll until
/// the connection fails or every command completed. Panics (failing the
/// test) on a command completed twice or unknown, or on a hang.
fn host_case(addr: std::net::SocketAddr, r: &mut Rng) {
    let opts = TcpQueueOpts {
        header_digest: r.one_in(2),
        data_digest: r.one_in(2),
        setup_timeout: Duration::from_secs(3),
        ..TcpQueueOpts::default()
    };
    let Ok(mut q) = TcpQueue::connect(addr, 32, &opts) else {
        return;
    };
    q.set_in_capsule_max(IN_CAPSULE);
    let mut bufs = Bufs(vec![Vec::new(); 8]);
    for (cid, len, write) in CMDS {
        bufs.0[cid as usize] = vec![cid as u8; len as usize];
        let mut sqe = Sqe::new(if write { 0x01 } else { 0x02 }, 1);
        sqe.set_cid(cid);
        if q.submit(sqe, len, write, &bufs).is_err() {
            return;
        }
    }
    let mut done = [0u32; 8];
    let start = Instant::now();
    loop {
        let r = q.poll(&mut bufs, |c: Cqe| done[(c.cid as usize).min(7)] += 1);
        assert!(
            done.iter().all(|&n| n <= 1),
            "a command completed twice: {done:?}"
        );
        assert_eq!(
            done[0] + done[5] + done[6] + done[7],
            0,
            "an unknown CID completed"
        );
        if r.is_err() || done[1..5].iter().all(|&n| n == 1) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the host neither failed nor completed after the controller hung up"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
}

#[test]
fn a_hostile_controller_gets_errors_never_a_panic_or_a_hang() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    const CASES: u64 = 2000;
    let ctrl = std::thread::spawn(move || {
        // One connection per case, in order; each from its own seed.
        l.set_nonblocking(true).unwrap();
        let (mut served, start) = (0, Instant::now());
        while served < CASES && start.elapsed() < Duration::from_secs(60) {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    hostile_controller(s, &mut Rng(0xc0ff_ee00 + served));
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_micros(100)),
            }
        }
    });
    let mut r = Rng(0x1e55_0000_0000_0001);
    let start = Instant::now();
    let mut cases = 0;
    while cases < CASES && start.elapsed() < Duration::from_secs(60) {
        host_case(addr, &mut r);
        cases += 1;
    }
    ctrl.join().unwrap();
    assert!(cases >= 200, "only {cases} cases ran");
}
