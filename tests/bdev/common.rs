//! Helpers shared by the bdev tests (included with `mod common;`).
#![allow(dead_code)]

use spdk_io::bdev::{
    self, malloc::MallocOpts, BdevError, Channel, Desc, IoBuf, IoCompletion, IoStatus,
};
use std::cell::RefCell;
use std::rc::Rc;

/// Polls `ch` until `done()` holds; fails after 60 s (a real device under
/// an emulator can be slow, but never that slow).
pub fn poll_until(ch: &Channel, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        for _ in 0..1024 {
            if done() {
                return;
            }
            ch.poll();
        }
        if std::time::Instant::now() > deadline {
            panic!("condition not reached after 60 s of polling");
        }
    }
}

/// A place completions are recorded in.
pub type Log = Rc<RefCell<Vec<IoCompletion>>>;

/// Polls the threads until `done()` holds; fails after 20 s.
pub fn poll_threads(ts: &[&spdk_io::thread::Thread], mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        for t in ts {
            t.poll(0);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reached after 20 s"
        );
    }
}

pub fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

/// A callback that records its completion into `log`.
pub fn rec(log: &Log) -> Box<dyn spdk_io::bdev::IoDone> {
    let l = log.clone();
    Box::new(move |c: IoCompletion| l.borrow_mut().push(c))
}

/// Statuses of the recorded completions.
pub fn statuses(log: &Log) -> Vec<IoStatus> {
    log.borrow().iter().map(|c| c.status).collect()
}

/// A name unique within the test process.
pub fn uniq(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Brings up DMA memory (ordinary pinned pages) for malloc bdevs; shared
/// by every test of the process.
pub fn dma_env() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
}

/// Writes random data at random LBAs of `bdev` (sizes from one block to 24,
/// above a small MDTS) and reads each back equal; `dma` picks DMA or heap buffers.
pub fn round_trip(bdev: &str, dma: bool) {
    let d = bdev::open(bdev, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let bs = d.bdev().block_size() as usize;
    let l = log();
    let mut rng = 0x1234_5678u64;
    for i in 0..40u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let n = 1 + rng % 24; // up to 96 KiB: above MDTS (32 KiB), split by the driver
        let lba = rng % (d.bdev().num_blocks() - n);
        let len = n as usize * bs;
        let mut w = if dma {
            IoBuf::dma(len, 4096).unwrap()
        } else {
            IoBuf::from_vec(vec![0; len])
        };
        w.iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = (j as u64 ^ i ^ lba) as u8);
        let want = w.to_vec();
        d.write_blocks(&ch, w, lba, n, rec(&l)).unwrap();
        poll_until(&ch, || l.borrow().len() == 1);
        let r = if dma {
            IoBuf::dma(len, 4096).unwrap()
        } else {
            IoBuf::from_vec(vec![0; len])
        };
        d.read_blocks(&ch, r, lba, n, rec(&l)).unwrap();
        poll_until(&ch, || l.borrow().len() == 2);
        let mut done = l.borrow_mut();
        assert!(
            done.iter().all(|c| c.success()),
            "{:?}",
            done.iter().map(|c| c.status).collect::<Vec<_>>()
        );
        let got = done.pop().unwrap().data.into_buf().unwrap();
        assert_eq!(got.is_dma(), dma, "the caller's own buffer comes back");
        assert!(
            got[..] == want[..],
            "{bdev}: data read back differs at lba {lba} (+{n})"
        );
        done.clear();
    }
}

/// A malloc bdev with a unique name; returns the name.
pub fn new_malloc(blocks: u64, bs: u32) -> String {
    dma_env();
    let n = uniq("Malloc");
    bdev::malloc::create(MallocOpts::new(n.clone(), blocks, bs)).unwrap();
    n
}

/// A new null bdev of `blocks` blocks of 512 bytes; returns its name.
pub fn new_null(prefix: &str, blocks: u64) -> String {
    let n = uniq(prefix);
    bdev::null::create(bdev::null::NullOpts::new(n.clone(), blocks, 512)).unwrap();
    n
}

/// A flag a lock callback sets: `Some(result)` once it ran.
pub type Granted = Rc<RefCell<Option<Result<(), BdevError>>>>;

/// A fresh, unset [`Granted`] flag.
pub fn granted() -> Granted {
    Rc::new(RefCell::new(None))
}

/// A lock callback that records its result into `g`.
pub fn on_lock(g: &Granted) -> impl FnOnce(Result<(), BdevError>) + 'static {
    let g = g.clone();
    move |r| *g.borrow_mut() = Some(r)
}

/// A heap buffer of `bs` bytes, each `v`.
pub fn filled(bs: usize, v: u8) -> IoBuf {
    IoBuf::from_vec(vec![v; bs])
}

/// Runs one I/O to completion on `ch` and returns it.
pub fn wait_io(
    ch: &Channel,
    submit: impl FnOnce(Box<dyn spdk_io::bdev::IoDone>) -> spdk_io::bdev::Submitted,
) -> IoCompletion {
    let slot: Rc<RefCell<Option<IoCompletion>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    submit(Box::new(move |c: IoCompletion| *s.borrow_mut() = Some(c))).unwrap();
    poll_until(ch, || slot.borrow().is_some());
    let c = slot.borrow_mut().take().unwrap();
    c
}

/// Reads block `block` (of `bs` bytes) and returns its bytes.
pub fn read_block(d: &Desc, ch: &Channel, block: u64, bs: usize) -> Vec<u8> {
    let c = wait_io(ch, |cb| d.read_blocks(ch, IoBuf::new(bs), block, 1, cb));
    assert!(c.success());
    c.data.into_buf().unwrap().to_vec()
}

/// Polls each channel `n` times, round robin.
pub fn poll_n(chs: &[&Channel], n: usize) {
    for _ in 0..n {
        for c in chs {
            c.poll();
        }
    }
}

/// A writable descriptor on a new 64-block malloc bdev and two channels:
/// `a` (takes the locks) and `b` (another thread's view, a smaller pool).
pub fn two_channels() -> (Desc, Channel, Channel) {
    let n = new_malloc(64, 512);
    let d = bdev::open(&n, true).unwrap();
    let a = d.get_io_channel().unwrap();
    let b = d.get_io_channel_sized(64).unwrap();
    (d, a, b)
}
