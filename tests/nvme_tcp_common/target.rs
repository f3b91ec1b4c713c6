//! A tiny scripted NVMe/TCP subsystem for host tests of the controller
//! path: one namespace in RAM, the Fabrics and admin commands a host's
//! bring-up sends, and reads and writes (in-capsule, R2T, C2HData). Every
//! connection is served by its own thread. A test tool with just enough
//! behaviour for the tests; the real target is Linux's nvmet-tcp.

use super::{Peer, PeerOpts};
use spdk_io::nvme::spec::{self, Cqe, IdentifyController, IdentifyNamespace};
use spdk_io::nvme::tcp::encode::capsule_resp_psh;
use spdk_io::nvme::tcp::pdu::{flags, PduType, PduTypeSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SUBNQN: &str = "nqn.2024-01.io.spdk-io:test";
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
pub const SERIAL: &str = "TCPTEST0001";
pub const MODEL: &str = "spdk-io scripted target";

/// What the target looks like.
#[derive(Clone)]
pub struct TargetOpts {
    pub peer: PeerOpts,
    /// In-capsule data bytes advertised (IOCCSZ = (this + 64) / 16).
    pub in_capsule: u32,
    pub block_shift: u32,
    pub blocks: u64,
    /// Bytes per R2T (a large write takes several).
    pub r2t_len: u32,
    /// MDTS (0: no limit).
    pub mdts: u8,
    /// A broken controller: the active namespace list is the same full
    /// page (1..=1024) whatever NSID it is asked after.
    pub repeat_full_ns_list: bool,
    /// A slow controller: the Connect of an I/O queue is answered this
    /// late (a loaded target).
    pub io_connect_delay: Duration,
}

impl Default for TargetOpts {
    fn default() -> Self {
        TargetOpts {
            peer: PeerOpts::default(),
            in_capsule: 4096,
            block_shift: 9,
            blocks: 8192,
            r2t_len: 32768,
            mdts: 0,
            repeat_full_ns_list: false,
            io_connect_delay: Duration::ZERO,
        }
    }
}

/// The running target.
pub struct Target {
    pub addr: SocketAddr,
    pub disk: Arc<Mutex<Vec<u8>>>,
    /// Connects seen (admin and I/O).
    pub connects: Arc<AtomicU32>,
    /// Keep Alive commands seen.
    pub keep_alives: Arc<AtomicU32>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Target {
    /// Cuts every connection (the host sees them reset or closed).
    pub fn disconnect(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// Starts a target on 127.0.0.1 (accepts for at most 60 s).
pub fn start(o: TargetOpts) -> Target {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let disk = Arc::new(Mutex::new(vec![0u8; (o.blocks << o.block_shift) as usize]));
    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicU32::new(0));
    let conns = Arc::new(Mutex::new(Vec::new()));
    let keep_alives = Arc::new(AtomicU32::new(0));
    let (d, st, cn, cs, ka) = (
        disk.clone(),
        stop.clone(),
        connects.clone(),
        conns.clone(),
        keep_alives.clone(),
    );
    std::thread::spawn(move || {
        let start = Instant::now();
        while !st.load(Ordering::Acquire) && start.elapsed() < Duration::from_secs(60) {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    cs.lock().unwrap().push(s.try_clone().unwrap());
                    let (o, d, cn, ka) = (o.clone(), d.clone(), cn.clone(), ka.clone());
                    std::thread::spawn(move || serve(Peer::accept_ic(s, o.peer), &o, &d, &cn, &ka));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Target {
        addr,
        disk,
        connects,
        keep_alives,
        conns,
        stop,
    }
}

fn put_ascii(dst: &mut [u8], s: &str) {
    dst.fill(b' ');
    dst[..s.len()].copy_from_slice(s.as_bytes());
}

/// Serves one connection until the host closes it.
fn serve(
    mut p: Peer,
    o: &TargetOpts,
    disk: &Mutex<Vec<u8>>,
    connects: &AtomicU32,
    keep_alives: &AtomicU32,
) {
    let mut cc = 0u32;
    let mut admin = false;
    let port = p.s.local_addr().unwrap().port();
    let any = PduTypeSet::of(&[PduType::CapsuleCmd, PduType::H2CData]);
    // Commands that arrived while a write's data was awaited.
    let mut backlog = std::collections::VecDeque::new();
    loop {
        let (h, data) = match backlog.pop_front() {
            Some(x) => x,
            None => {
                let mut ch = [0u8; 1];
                if p.s.peek(&mut ch).map_or(true, |n| n == 0) {
                    return;
                }
                p.read_pdu_with(any)
            }
        };
        let spdk_io::nvme::tcp::decode::Psh::CapsuleCmd(sqe) = h.psh else {
            panic!("unexpected {h:?}");
        };
        let cid = sqe.cid();
        if sqe.psdt() != 1 {
            // As Linux's target: fabrics commands must use SGLs.
            respond(&mut p, cid, 0x02, 0, 0, 0); // Invalid Field in Command
            continue;
        }
        let (mut dw0, mut dw1, mut sc) = (0u32, 0u32, 0u8);
        match (sqe.opc(), sqe.nsid as u8) {
            (0x7f, 0x01) => {
                // Connect: check the subsystem NQN.
                connects.fetch_add(1, Ordering::AcqRel);
                admin = sqe.cdw10 >> 16 == 0;
                let nqn = &data[256..512];
                let end = nqn.iter().position(|&b| b == 0).unwrap_or(256);
                let discovery = &nqn[..end] == DISCOVERY_NQN.as_bytes() && admin;
                if &nqn[..end] != SUBNQN.as_bytes() && !discovery {
                    respond(&mut p, cid, 0x82, 1, 0, 0); // Connect Invalid Parameters
                    continue;
                }
                if !admin {
                    std::thread::sleep(o.io_connect_delay);
                }
                dw0 = 1; // controller ID
            }
            (0x7f, 0x04) => {
                let v: u64 = match sqe.cdw11 {
                    // MQES 127, CQR, TO 1 s, CSS: NVM
                    0x00 => 127 | 1 << 16 | 2 << 24 | 1 << 37,
                    0x08 => 0x0001_0400,
                    0x14 => cc as u64,
                    0x1c => (cc & 1) as u64 | if (cc >> 14) & 3 != 0 { 2 << 2 } else { 0 },
                    _ => 0,
                };
                dw0 = v as u32;
                dw1 = (v >> 32) as u32;
            }
            (0x7f, 0x00) if sqe.cdw11 == 0x14 => cc = sqe.cdw12,
            (0x06, _) => {
                let out: Vec<u8> = match sqe.cdw10 & 0xff {
                    1 => {
                        let mut c: IdentifyController = spec::zeroed();
                        put_ascii(&mut c.sn, SERIAL);
                        put_ascii(&mut c.mn, MODEL);
                        put_ascii(&mut c.fr, "1.0");
                        c.nn = 1;
                        c.mdts = o.mdts;
                        c.nvmf[..4].copy_from_slice(&((o.in_capsule + 64) / 16).to_le_bytes());
                        spec::as_bytes(&c).to_vec()
                    }
                    2 if o.repeat_full_ns_list => {
                        (1..=1024u32).flat_map(u32::to_le_bytes).collect()
                    }
                    2 => {
                        let mut v = vec![0u8; 4096];
                        if sqe.nsid < 1 {
                            v[..4].copy_from_slice(&1u32.to_le_bytes());
                        }
                        v
                    }
                    0 => {
                        let mut n: IdentifyNamespace = spec::zeroed();
                        n.nsze = o.blocks;
                        n.ncap = o.blocks;
                        n.lbaf[0].lbads = o.block_shift as u8;
                        spec::as_bytes(&n).to_vec()
                    }
                    _ => vec![0u8; 4096],
                };
                p.send_c2h(cid, 0, &out, flags::LAST_PDU);
            }
            // Set Features Number of Queues: 4 queue pairs.
            (0x09, _) if sqe.cdw10 & 0xff == 0x07 => dw0 = 3 | 3 << 16,
            (0x18, _) if admin => {
                keep_alives.fetch_add(1, Ordering::AcqRel);
            }
            (0x02, _) if admin => {
                // Get Log Page: the Discovery log, one entry naming SUBNQN here.
                let lid = sqe.cdw10 & 0xff;
                let len = ((sqe.cdw10 >> 16 | (sqe.cdw11 & 0xffff) << 16) as usize + 1) * 4;
                let off = sqe.cdw12 as usize;
                let mut log = vec![0u8; 2048];
                if lid == 0x70 {
                    log[8] = 1; // NUMREC
                    let e = &mut log[1024..];
                    (e[0], e[1], e[2]) = (3, 1, 2);
                    e[6..8].copy_from_slice(&0xffffu16.to_le_bytes());
                    let svc = port.to_string();
                    e[32..32 + svc.len()].copy_from_slice(svc.as_bytes());
                    e[256..256 + SUBNQN.len()].copy_from_slice(SUBNQN.as_bytes());
                    e[512..521].copy_from_slice(b"127.0.0.1");
                }
                log.resize(off + len, 0);
                p.send_c2h(cid, 0, &log[off..off + len], flags::LAST_PDU);
            }
            (0x02, _) | (0x01, _) => {
                let shift = o.block_shift;
                let off = (sqe.slba() << shift) as usize;
                let len = (((sqe.cdw12 & 0xffff) + 1) << shift) as usize;
                if off + len > disk.lock().unwrap().len() {
                    sc = 0x80; // LBA Out of Range
                } else if sqe.opc() == 0x02 {
                    let bytes = disk.lock().unwrap()[off..off + len].to_vec();
                    // Two PDUs when it is large enough; SUCCESS on the last.
                    let half = if len >= 8192 { len / 2 } else { len };
                    p.send_c2h(
                        cid,
                        0,
                        &bytes[..half],
                        if half == len {
                            flags::LAST_PDU | flags::SUCCESS
                        } else {
                            0
                        },
                    );
                    if half < len {
                        p.send_c2h(
                            cid,
                            half as u32,
                            &bytes[half..],
                            flags::LAST_PDU | flags::SUCCESS,
                        );
                    }
                    continue;
                } else {
                    let got = if data.is_empty() {
                        r2t_all(&mut p, &mut backlog, cid, len as u32, o.r2t_len)
                    } else {
                        data
                    };
                    assert_eq!(got.len(), len, "write data length");
                    disk.lock().unwrap()[off..off + len].copy_from_slice(&got);
                }
            }
            _ => {}
        }
        respond(&mut p, cid, sc, 0, dw0, dw1);
    }
}

type Pdu = (spdk_io::nvme::tcp::decode::Header, Vec<u8>);

/// Asks for all of a write's data with R2Ts of `r2t_len` bytes; commands
/// arriving meanwhile go to the backlog.
fn r2t_all(
    p: &mut Peer,
    backlog: &mut std::collections::VecDeque<Pdu>,
    cid: u16,
    len: u32,
    r2t_len: u32,
) -> Vec<u8> {
    let mut got = Vec::new();
    let mut ttag = 0;
    while (got.len() as u32) < len {
        let off = got.len() as u32;
        let n = r2t_len.min(len - off);
        p.send_r2t(cid, ttag, off, n);
        let mut left = n;
        while left > 0 {
            let (h, bytes) =
                p.read_pdu_with(PduTypeSet::of(&[PduType::CapsuleCmd, PduType::H2CData]));
            let spdk_io::nvme::tcp::decode::Psh::Data(d) = h.psh else {
                backlog.push_back((h, bytes));
                continue;
            };
            assert_eq!((d.cccid, d.ttag, d.datao as usize), (cid, ttag, got.len()));
            assert!(d.datal <= p.maxh2cdata);
            left -= d.datal;
            got.extend_from_slice(&bytes);
        }
        ttag += 1;
    }
    got
}

fn respond(p: &mut Peer, cid: u16, sc: u8, sct: u8, dw0: u32, dw1: u32) {
    let cqe = Cqe {
        dw0,
        dw1,
        sqhd: 0,
        sqid: 0,
        cid,
        status: (sc as u16) << 1 | (sct as u16) << 9,
    };
    let b = p.pdu(PduType::CapsuleResp, 0, capsule_resp_psh(&cqe), &[]);
    p.send_raw(&b);
}
