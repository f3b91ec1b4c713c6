//! Helpers shared by the NVMe driver tests: synchronous wrappers over the
//! callback API and reproducible data patterns.
#![allow(dead_code)]

use spdk_io::env::DmaBuf;
use spdk_io::nvme::{IoBuf, IoCompletion, Namespace, NvmeError, QPair};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Where a test's completion callback leaves its result.
pub type Slot = Rc<RefCell<Option<IoCompletion>>>;

/// An empty slot.
pub fn slot() -> Slot {
    Rc::new(RefCell::new(None))
}

/// A callback that stores the completion in `s` (panics if it runs twice).
pub fn into_slot(s: &Slot) -> impl FnOnce(&mut QPair, IoCompletion) + 'static {
    let s = s.clone();
    move |_, c| {
        let old = s.borrow_mut().replace(c);
        assert!(old.is_none(), "an I/O completed twice");
    }
}

/// Polls `qp` until `s` holds a completion (at most `limit`).
pub fn wait_for(qp: &mut QPair, s: &Slot, limit: Duration) -> IoCompletion {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(c) = s.borrow_mut().take() {
            return c;
        }
        if let Err(e) = qp.process_completions(0) {
            panic!("process_completions failed while waiting: {e}");
        }
        assert!(
            Instant::now() < deadline,
            "I/O did not complete within {limit:?}"
        );
        std::thread::yield_now();
    }
}

/// Polls `qp` until `s` holds a completion (30 s limit).
pub fn wait(qp: &mut QPair, s: &Slot) -> IoCompletion {
    wait_for(qp, s, Duration::from_secs(30))
}

/// Writes `n` blocks at `lba` from `buf` and waits; returns the buffer.
pub fn write_sync(
    qp: &mut QPair,
    ns: &Namespace,
    buf: DmaBuf,
    lba: u64,
    n: u32,
) -> Result<DmaBuf, NvmeError> {
    cmd_sync(qp, |qp, s| qp.write(ns, buf, lba, n, into_slot(&s)))
        .map(|b| b.into_dma_buf().expect("buffer handed back"))
}

/// Reads `n` blocks at `lba` into `buf` and waits; returns the buffer.
pub fn read_sync(
    qp: &mut QPair,
    ns: &Namespace,
    buf: DmaBuf,
    lba: u64,
    n: u32,
) -> Result<DmaBuf, NvmeError> {
    cmd_sync(qp, |qp, s| qp.read(ns, buf, lba, n, into_slot(&s)))
        .map(|b| b.into_dma_buf().expect("buffer handed back"))
}

/// Runs a no-data command submitted by `submit` and waits for its result.
pub fn cmd_sync(
    qp: &mut QPair,
    submit: impl FnOnce(&mut QPair, Slot) -> Result<(), spdk_io::nvme::SubmitError>,
) -> Result<IoBuf, NvmeError> {
    let s = slot();
    submit(qp, s.clone()).map_err(|e| e.error)?;
    let c = wait(qp, &s);
    c.result.map(|()| c.buf)
}

/// A small deterministic generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Fills `b` with bytes from `seed`.
pub fn fill(b: &mut [u8], seed: u64) {
    let mut r = Rng(seed | 1);
    for chunk in b.chunks_mut(8) {
        let v = r.next().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// A DMA buffer of `len` bytes filled from `seed`.
pub fn patterned(len: usize, seed: u64) -> DmaBuf {
    let mut b = DmaBuf::alloc(len, 4096).expect("DMA memory");
    fill(&mut b, seed);
    b
}

/// Asserts two byte slices are equal, naming the first differing offset.
pub fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i}: got {:#04x}, want {:#04x}",
            got[i], want[i]
        );
    }
}
