//! A whole controller attached over NVMe/TCP from a hostile controller:
//! it goes through the bring-up (Connect, properties, Identify, features,
//! the namespace list and each namespace, an I/O queue and a read) with
//! absurd values in its answers — queue sizes, versions, transfer limits,
//! NN, LBA formats, namespace lists that repeat or go back, data longer
//! or shorter than asked, error statuses, corrupted headers — and hangs
//! up at random. Attach, namespace scan, I/O and detach return errors or
//! results, never a panic or a hang.

use crate::pdu_fuzz::{mutate, Rng};
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::spec::{self, Cqe, IdentifyController, IdentifyNamespace, Sqe};
use spdk_io::nvme::tcp::encode::*;
use spdk_io::nvme::tcp::pdu::*;
use spdk_io::nvme::{self, ControllerOpts, QPairOpts};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const SUBNQN: &str = "nqn.2024-01.io.spdk-io:hostile";

/// One connection of the hostile controller.
struct Conn {
    s: TcpStream,
    framing: Framing,
    r: Rng,
    /// CC as last set (a shutdown is reported done, mostly).
    cc: u32,
    /// How often it breaks the protocol: never (0, only absurd values in
    /// well-formed answers) to often (3).
    level: u64,
}

impl Conn {
    /// True about once in `n` answers at level 1 (more often above).
    fn hostile(&mut self, n: u64) -> bool {
        self.level > 0 && self.r.one_in(n / self.level)
    }

    fn send_pdu(&mut self, t: PduType, fl: u8, psh: &[u8], data: &[u8]) {
        let mut out = [0u8; MAX_HEADER_WITH_PAD];
        let n = encode_header(&mut out, t, fl, psh, data.len(), self.framing);
        let mut v = out[..n].to_vec();
        v.extend_from_slice(data);
        if self.framing.ddgst && !data.is_empty() {
            v.extend_from_slice(&spdk_io::nvme::tcp::digest::data_digest(data));
        }
        if self.hostile(60) {
            v = mutate(&mut self.r, v);
        }
        let _ = self.s.write_all(&v);
    }

    fn resp(&mut self, cid: u16, dw0: u32, dw1: u32) {
        let status = if self.hostile(40) {
            self.r.next() as u16 & !1
        } else {
            0
        };
        let cqe = Cqe {
            dw0,
            dw1,
            sqhd: 0,
            sqid: 0,
            cid,
            status,
        };
        self.send_pdu(PduType::CapsuleResp, 0, capsule_resp_psh(&cqe), &[]);
    }

    /// `want` bytes of data for command `cid` (sometimes shorter or longer),
    /// then its response.
    fn data(&mut self, cid: u16, mut bytes: Vec<u8>, want: usize) {
        let len = match self.r.below(12) {
            0 if self.level > 0 => want / 2,
            1 if self.level > 0 => want + 512,
            _ => want,
        };
        bytes.resize(len.max(1), 0);
        let h = DataHeader {
            cccid: cid,
            ttag: 0,
            datao: 0,
            datal: bytes.len() as u32,
        };
        self.send_pdu(PduType::C2HData, flags::LAST_PDU, &data_psh(&h), &bytes);
        self.resp(cid, 0, 0);
    }

    /// The next PDU (type, whole bytes), `None` when the host is gone.
    fn read_pdu(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut ch = [0u8; CH_LEN];
        self.s.read_exact(&mut ch).ok()?;
        let plen = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]) as usize;
        if !(CH_LEN..=1 << 20).contains(&plen) {
            return None;
        }
        let mut v = ch.to_vec();
        v.resize(plen, 0);
        self.s.read_exact(&mut v[CH_LEN..]).ok()?;
        Some((ch[0], v))
    }
}

fn identify_controller(r: &mut Rng) -> Vec<u8> {
    let mut c: IdentifyController = spec::zeroed();
    for b in c.sn.iter_mut().chain(c.mn.iter_mut()) {
        *b = r.next() as u8;
    }
    c.nn = r.pick(&[1, 1, 2, 0, 1024, u32::MAX]);
    c.mdts = r.pick(&[0, 1, 5, 20, 200, 255]);
    c.aerl = r.next() as u8;
    c.oncs = r.next() as u16;
    c.cntlid = r.next() as u16;
    let ioccsz = r.pick(&[0u32, 4, 260, 0x0100_0000, u32::MAX]);
    c.nvmf[..4].copy_from_slice(&ioccsz.to_le_bytes());
    spec::as_bytes(&c).to_vec()
}

fn identify_namespace(r: &mut Rng) -> Vec<u8> {
    let mut n: IdentifyNamespace = spec::zeroed();
    let any = r.next();
    n.nsze = r.pick(&[0, 1, 8, 4096, u64::MAX, any]);
    n.ncap = n.nsze;
    n.nlbaf = r.pick(&[0, 1, 63, 255]);
    n.flbas = r.pick(&[0, 0, 0, 0, 0, 1, 0x1f, 0xff]);
    for f in n.lbaf.iter_mut() {
        f.lbads = r.pick(&[9, 9, 9, 12, 12, 0, 8, 31, 32, 63, 255]);
        f.ms = r.pick(&[0, 0, 0, 0, 0, 8, 0xffff]);
    }
    spec::as_bytes(&n).to_vec()
}

fn active_ns_list(r: &mut Rng) -> Vec<u8> {
    let ids: Vec<u32> = match r.below(9) {
        0 | 7 | 8 => vec![1],
        1 => vec![1, 2],
        2 => vec![],
        // A full page every time: asked after its last NSID, it repeats.
        3 => (1..=1024).collect(),
        4 => vec![5, 3],
        5 => vec![0xffff_ffff],
        _ => (0..4).map(|_| r.next() as u32).collect(),
    };
    let mut v = vec![0u8; 4096];
    for (i, id) in ids.iter().enumerate() {
        v[i * 4..i * 4 + 4].copy_from_slice(&id.to_le_bytes());
    }
    v
}

/// Answers one command.
fn answer(c: &mut Conn, sqe: &Sqe) {
    let cid = sqe.cid();
    let sgl_len = sqe.prp2 as u32 as usize;
    match (sqe.opc(), sqe.nsid as u8) {
        (0x7f, 0x01) => {
            let id = c.r.pick(&[1, 1, 1, 0, 0xffff, 7]);
            c.resp(cid, id, 0);
        }
        (0x7f, 0x04) => {
            let v: u64 = match sqe.cdw11 {
                // MQES, CQR, TO (at most 1 s), CSS.
                0x00 => c.r.pick(&[127, 1, 0, 0xffff]) | 1 << 16 | c.r.below(3) << 24 | 1 << 37,
                0x08 => {
                    let any = c.r.next() & 0xffff_ffff;
                    c.r.pick(&[0x0001_0300, 0x0001_0000, 0x0002_0000, any])
                }
                0x14 => c.cc as u64,
                0x1c if c.cc >> 14 & 3 != 0 => 2 << 2,
                0x1c => c.r.pick(&[1, 1, 1, 0, 2, 0xffff_ffff]),
                _ => c.r.next(),
            };
            c.resp(cid, v as u32, (v >> 32) as u32);
        }
        (0x7f, 0x00) => {
            if sqe.cdw11 == 0x14 {
                c.cc = sqe.cdw12;
            }
            c.resp(cid, 0, 0);
        }
        (0x06, _) => {
            let d = match sqe.cdw10 & 0xff {
                1 => identify_controller(&mut c.r),
                2 => active_ns_list(&mut c.r),
                0 => identify_namespace(&mut c.r),
                _ => c.r.bytes(4096),
            };
            c.data(cid, d, sgl_len);
        }
        // Get Log Page: the discovery log with an absurd record count at times.
        (0x02, _) if sgl_len > 0 && sqe.opc() == 0x02 && sqe.nsid == 0 => {
            let mut d = c.r.bytes(sgl_len);
            if d.len() >= 16 {
                let n = c.r.pick(&[0u64, 1, 2, 1025, u64::MAX]);
                d[8..16].copy_from_slice(&n.to_le_bytes());
            }
            c.data(cid, d, sgl_len);
        }
        (0x0c, _) if c.r.one_in(2) => {} // an AER held
        (0x02, _) => {
            let d = c.r.bytes(sgl_len);
            c.data(cid, d, sgl_len);
        }
        _ => {
            let any = c.r.next() as u32;
            let dw0 = c.r.pick(&[0, 3 | 3 << 16, 0xffff_ffff, any]);
            c.resp(cid, dw0, 0);
        }
    }
}

/// Serves one connection (admin or I/O) for a bounded number of commands.
fn serve(s: TcpStream, seed: u64) {
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let mut c = Conn {
        s,
        framing: Framing::default(),
        r: Rng(seed),
        cc: 0,
        level: seed % 4,
    };
    let mut ic = [0u8; IC_LEN];
    if c.s.read_exact(&mut ic).is_err() {
        return;
    }
    let granted = ic[11] & 3;
    let _ = c.s.write_all(&encode_ic_resp(&IcResp {
        pfv: 0,
        cpda: 0,
        dgst: granted,
        maxh2cdata: 8192,
    }));
    c.framing = Framing {
        hdgst: granted & dgst::HDGST_ENABLE != 0,
        ddgst: granted & dgst::DDGST_ENABLE != 0,
        pda: 0,
    };
    for _ in 0..200 {
        let Some((t, pdu)) = c.read_pdu() else { break };
        if t != PduType::CapsuleCmd as u8 || pdu.len() < CAPSULE_CMD_HLEN {
            continue;
        }
        let Some(sqe) = spec::from_bytes::<Sqe>(&pdu[CH_LEN..CAPSULE_CMD_HLEN]) else {
            continue;
        };
        if c.hostile(120) {
            break; // hang up
        }
        answer(&mut c, &sqe);
    }
    let _ = c.s.shutdown(Shutdown::Both);
}

/// The host: attach, scan, one read, detach; each step may fail.
fn host_case(addr: SocketAddr, r: &mut Rng) {
    let discovery = r.one_in(8);
    let subnqn = if discovery {
        "nqn.2014-08.org.nvmexpress.discovery"
    } else {
        SUBNQN
    };
    let trid = format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{subnqn}",
        addr.port()
    )
    .parse()
    .unwrap();
    let opts = ControllerOpts {
        admin_timeout: Duration::from_millis(300),
        shutdown_timeout: Duration::from_millis(300),
        header_digest: r.one_in(2),
        data_digest: r.one_in(2),
        ..ControllerOpts::default()
    };
    let Ok(c) = nvme::connect(&trid, &opts) else {
        return;
    };
    if discovery {
        let _ = c.discovery_log();
        return;
    }
    let Some(ns) = c
        .namespace_ids()
        .first()
        .and_then(|&id| c.namespace(id).ok())
    else {
        return;
    };
    if ns.block_size() > 65536 {
        return;
    }
    let Ok(mut qp) = c.alloc_io_qpair(QPairOpts {
        io_queue_size: 16,
        ..QPairOpts::default()
    }) else {
        return;
    };
    let Ok(buf) = DmaBuf::alloc_zeroed(ns.block_size() as usize, 4096) else {
        return;
    };
    let done = std::rc::Rc::new(std::cell::Cell::new(0));
    let d = done.clone();
    if qp
        .read(&ns, buf, 0, 1, move |_, _| d.set(d.get() + 1))
        .is_err()
    {
        return;
    }
    let start = Instant::now();
    while done.get() == 0 {
        if qp.process_completions(0).is_err() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a read neither completed nor failed after the controller hung up"
        );
        std::thread::sleep(Duration::from_micros(100));
    }
    assert!(done.get() <= 1, "the read completed {} times", done.get());
}

#[test]
fn a_hostile_controller_fails_attach_scan_and_io_cleanly() {
    env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    const CASES: u64 = 300;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let ctrl = std::thread::spawn(move || {
        // A thread per connection (the admin and the I/O queue), each
        // from its own seed.
        l.set_nonblocking(true).unwrap();
        let (mut n, start) = (0u64, Instant::now());
        let mut handlers = Vec::new();
        while !st.load(std::sync::atomic::Ordering::Acquire)
            && start.elapsed() < Duration::from_secs(120)
        {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let seed = 0xadd0_0000 + n;
                    handlers.push(std::thread::spawn(move || serve(s, seed)));
                    n += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        for h in handlers {
            let _ = h.join();
        }
    });
    let mut r = Rng(0x00c7_41e5_0000_0001);
    let start = Instant::now();
    let mut cases = 0;
    while cases < CASES && start.elapsed() < Duration::from_secs(60) {
        host_case(addr, &mut r);
        cases += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    ctrl.join().unwrap();
    assert!(cases >= 50, "only {cases} cases ran");
}
