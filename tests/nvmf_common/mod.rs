//! Test support for the NVMe-oF target: a target on its own OS threads
//! (one lightweight thread per poll group, one for the acceptor) on
//! 127.0.0.1, malloc bdevs, and a raw NVMe/TCP host that speaks PDUs by
//! hand for hostile-peer tests.
#![allow(dead_code)]

pub mod fuzz;
#[path = "../pdu_fuzz/mod.rs"]
pub mod pdu_fuzz;
pub mod raw;

use spdk_io::bdev::{self, malloc::MallocOpts};
use spdk_io::env::DmaBuf;
use spdk_io::env::{self, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, IoCompletion, QPair, QPairOpts};
use spdk_io::nvmf::tcp::{PollGroup, TcpTransport};
use spdk_io::nvmf::SubsystemOpts;
use spdk_io::nvmf::{Target, TransportOpts};
use spdk_io::thread::Thread;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const HOSTNQN: &str = "nqn.2024-01.io.spdk-io:host1";

/// A malloc bdev of `blocks` blocks of `bs` bytes.
pub fn malloc(name: &str, blocks: u64, bs: u32) {
    env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::malloc::create(MallocOpts::new(name, blocks, bs)).unwrap();
}

/// A running target.
pub struct Tgt {
    pub addr: SocketAddr,
    pub target: Arc<Target>,
    pub group_conns: Vec<spdk_io::nvmf::tcp::PollGroupHandle>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

fn host_thread<T: 'static>(
    name: String,
    stop: Arc<AtomicBool>,
    setup: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<()> {
    polled_thread(name, stop, setup, || {})
}

/// How long a [`polled_thread`] polls at most (a test that failed before
/// setting its stop flag leaves no thread spinning after it).
const POLLED_THREAD_LIFE: Duration = Duration::from_secs(600);

/// An OS thread polling a new lightweight thread `name` until `stop` (or
/// [`POLLED_THREAD_LIFE`]): `setup` runs on it first (what it returns
/// lives until the end), and `between_polls` runs on the OS thread before
/// every poll.
pub fn polled_thread<T: 'static>(
    name: String,
    stop: Arc<AtomicBool>,
    setup: impl FnOnce() -> T + Send + 'static,
    mut between_polls: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let t = Thread::new(&name);
        let keep = t.enter(setup);
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < POLLED_THREAD_LIFE {
            between_polls();
            if !t.poll(0) {
                std::thread::yield_now();
            }
        }
        t.enter(|| drop(keep));
        t.exit();
        let start = Instant::now();
        while !t.is_exited() && start.elapsed() < Duration::from_secs(5) {
            t.poll(0);
        }
        let _ = t.destroy();
    })
}

impl Tgt {
    /// A target with `groups` poll groups listening on 127.0.0.1 (or `addr`).
    pub fn start(opts: TransportOpts, groups: usize, addr: &str) -> Tgt {
        env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
        let target = Target::new(opts).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut handles = Vec::new();
        for g in 0..groups {
            let (tx, rx) = mpsc::channel();
            let tg = target.clone();
            threads.push(host_thread(
                format!("nvmf_pg{g}"),
                stop.clone(),
                move || {
                    let pg = PollGroup::start(tg).unwrap();
                    tx.send(pg.handle()).unwrap();
                    pg
                },
            ));
            handles.push(rx.recv().unwrap());
        }
        let (tx, rx) = mpsc::channel();
        let (tg, hs) = (target.clone(), handles.clone());
        let listen: SocketAddr = addr.parse().unwrap();
        threads.push(host_thread(
            "nvmf_acceptor".into(),
            stop.clone(),
            move || {
                let t = TcpTransport::new(tg, hs).unwrap();
                tx.send(t.listen(listen).unwrap()).unwrap();
                t
            },
        ));
        let addr = rx.recv().unwrap();
        Tgt {
            addr,
            target,
            group_conns: handles,
            stop,
            threads,
        }
    }

    /// True while every thread of the target runs (a panic in a poller
    /// ends its thread).
    pub fn alive(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// The transport ID of `subnqn` on this target.
    pub fn trid(&self, subnqn: &str, hostnqn: &str) -> spdk_io::nvme::TransportId {
        format!(
            "trtype:TCP adrfam:{} traddr:{} trsvcid:{} subnqn:{subnqn} hostnqn:{hostnqn}",
            if self.addr.is_ipv4() { "IPv4" } else { "IPv6" },
            self.addr.ip(),
            self.addr.port()
        )
        .parse()
        .unwrap()
    }
}

impl Drop for Tgt {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A host speaking NVMe/TCP PDUs by hand (blocking, with timeouts).
pub struct RawHost {
    pub s: TcpStream,
}

impl RawHost {
    /// Connects without any exchange.
    pub fn connect(addr: SocketAddr) -> RawHost {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawHost { s }
    }

    /// Sends raw bytes (errors ignored: the target may have closed).
    pub fn send(&mut self, b: &[u8]) {
        let _ = self.s.write_all(b);
    }

    /// ICReq (no digests) and its ICResp.
    pub fn handshake(addr: SocketAddr) -> RawHost {
        use spdk_io::nvme::tcp::encode::encode_ic_req;
        use spdk_io::nvme::tcp::pdu::IcReq;
        let mut h = RawHost::connect(addr);
        h.send(&encode_ic_req(&IcReq::default()));
        let r = h.recv_pdu().expect("ICResp");
        assert_eq!(r[0], 0x01, "ICResp");
        h
    }

    /// The next PDU (by its PLEN), or `None` at end of stream.
    pub fn recv_pdu(&mut self) -> Option<Vec<u8>> {
        let mut ch = [0u8; 8];
        self.s.read_exact(&mut ch).ok()?;
        let plen = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]) as usize;
        let mut rest = vec![0u8; plen.saturating_sub(8)];
        self.s.read_exact(&mut rest).ok()?;
        let mut v = ch.to_vec();
        v.extend(rest);
        Some(v)
    }

    /// True when the target closed the connection (reads end of stream
    /// after any PDUs still queued).
    pub fn closed_by_target(&mut self) -> bool {
        let mut b = [0u8; 4096];
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

pub type Done = Rc<RefCell<Vec<IoCompletion>>>;

pub fn opts(digests: bool) -> ControllerOpts {
    ControllerOpts {
        admin_timeout: Duration::from_secs(10),
        header_digest: digests,
        data_digest: digests,
        ..ControllerOpts::default()
    }
}

pub fn qp_opts() -> QPairOpts {
    QPairOpts {
        io_queue_size: 64,
        ..QPairOpts::default()
    }
}

/// Polls `qp` until `done` holds `n` completions (60 s at most: a guest
/// under TCG may be slow).
pub fn wait(qp: &mut QPair, done: &Done, n: usize) {
    let start = Instant::now();
    while done.borrow().len() < n {
        qp.process_completions(0).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "I/O did not complete"
        );
    }
}

/// `len` bytes of xorshift64 from `seed` mixed with the time: different
/// data on every run.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    xorshift(len, seed ^ now)
}

/// `len` bytes of xorshift64 from `seed`: the same bytes for the same seed.
pub fn xorshift(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A subsystem `nqn` over a new malloc bdev `bdev` with a listener on the target.
pub fn subsystem(t: &Tgt, nqn: &str, bdev: &str, blocks: u64, allow_any: bool) {
    malloc(bdev, blocks, 512);
    let s = t
        .target
        .create_subsystem(
            nqn,
            SubsystemOpts {
                serial_number: "SPDKIO00000000000001".into(),
                model_number: "spdk-io nvmf test".into(),
                allow_any_host: allow_any,
                max_namespaces: 4,
                ..SubsystemOpts::default()
            },
        )
        .unwrap();
    s.add_ns(bdev, None, None, None).unwrap();
    s.add_listener(spdk_io::nvmf::tcp::TcpTransport::listen_addr(t.addr));
}

/// Writes `data` at `lba` of `ns`, reads it back and checks it.
pub fn write_read(qp: &mut QPair, ns: &nvme::Namespace, lba: u64, data: &[u8]) {
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let mut buf = DmaBuf::alloc(data.len(), 4096).unwrap();
    buf.copy_from_slice(data);
    let d = done.clone();
    let blocks = (data.len() / ns.block_size() as usize) as u32;
    qp.write(ns, buf, lba, blocks, move |_, c| d.borrow_mut().push(c))
        .map_err(|e| e.error)
        .unwrap();
    wait(qp, &done, 1);
    done.borrow_mut().pop().unwrap().result.unwrap();
    let d = done.clone();
    let rbuf = DmaBuf::alloc_zeroed(data.len(), 4096).unwrap();
    qp.read(ns, rbuf, lba, blocks, move |_, c| d.borrow_mut().push(c))
        .map_err(|e| e.error)
        .unwrap();
    wait(qp, &done, 1);
    let r = done.borrow_mut().pop().unwrap();
    r.result.unwrap();
    let back = r.buf.into_dma_buf().unwrap();
    assert!(
        back[..] == data[..],
        "{} bytes at LBA {lba} read back",
        data.len()
    );
}

/// Reads `len` bytes at `lba`.
pub fn read(qp: &mut QPair, ns: &nvme::Namespace, lba: u64, len: usize) -> Vec<u8> {
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    let d = done.clone();
    let buf = DmaBuf::alloc_zeroed(len, 4096).unwrap();
    qp.read(ns, buf, lba, (len / 512) as u32, move |_, c| {
        d.borrow_mut().push(c)
    })
    .map_err(|e| e.error)
    .unwrap();
    wait(qp, &done, 1);
    let r = done.borrow_mut().pop().unwrap();
    r.result.unwrap();
    r.buf.into_dma_buf().unwrap().to_vec()
}
