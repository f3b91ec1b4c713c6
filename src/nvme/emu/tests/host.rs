//! A minimal hand-written host: raw SQEs into DMA memory, doorbells through
//! the BAR, CQEs polled by phase. It proves the controller without the driver.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::env::{self, DmaBuf, EnvOpts};
use crate::nvme::emu::{EmuController, Sqe, Status, CQE_SIZE, SQE_SIZE};
use crate::pci::{Bar, PciDevice};

/// How long any wait in these tests may take before it is a failure.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Brings the env up in no-hugepage mode (IOVA = VA), once per process.
pub fn env_up() {
    env::init_once(EnvOpts::no_huge()).expect("env init in no_huge mode");
}

/// A decoded completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub dw0: u32,
    pub sq_head: u16,
    pub sqid: u16,
    pub cid: u16,
    pub phase: bool,
    pub status: Status,
}

/// One SQ/CQ pair in DMA memory.
pub struct RawQueue {
    pub qid: u16,
    /// SQ entries.
    pub size: u16,
    /// CQ entries.
    pub cq_size: u16,
    pub sq: DmaBuf,
    pub cq: DmaBuf,
    pub sq_tail: u16,
    pub cq_head: u16,
    pub phase: bool,
    pub next_cid: u16,
}

impl RawQueue {
    pub fn new(qid: u16, size: u16) -> Self {
        Self::with_sizes(qid, size, size)
    }

    pub fn with_sizes(qid: u16, size: u16, cq_size: u16) -> Self {
        Self {
            qid,
            size,
            cq_size,
            sq: DmaBuf::alloc_zeroed(size as usize * SQE_SIZE, 4096).expect("SQ memory"),
            cq: DmaBuf::alloc_zeroed(cq_size as usize * CQE_SIZE, 4096).expect("CQ memory"),
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            next_cid: 0,
        }
    }

    /// Writes `sqe` (CID assigned here unless `keep_cid`) at the tail; returns its CID.
    pub fn push(&mut self, mut sqe: Sqe, keep_cid: bool) -> u16 {
        if !keep_cid {
            sqe.cdw0 = (sqe.cdw0 & 0xffff) | (self.next_cid as u32) << 16;
            self.next_cid = self.next_cid.wrapping_add(1);
        }
        let bytes = sqe.to_bytes();
        let off = self.sq_tail as usize * SQE_SIZE;
        let dst = self.sq.as_mut_ptr();
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: off + i < size * 64, inside the SQ buffer; volatile
            // because the controller reads this memory from its own thread.
            unsafe { dst.add(off + i).write_volatile(*b) };
        }
        self.sq_tail = (self.sq_tail + 1) % self.size;
        sqe.cid()
    }

    /// The completion at the CQ head if its phase is current; consumes it.
    pub fn poll(&mut self) -> Option<Completion> {
        let base = self.cq.as_ptr().cast::<u32>();
        let slot = self.cq_head as usize * 4;
        // SAFETY: slot + 3 < size * 4 dwords of the CQ buffer, 4-aligned;
        // volatile because the controller writes it from its own thread.
        let dw3 = unsafe { base.add(slot + 3).read_volatile() };
        if (dw3 >> 16 & 1 != 0) != self.phase {
            return None;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        // SAFETY: as above.
        let (dw0, dw2) = unsafe {
            (
                base.add(slot).read_volatile(),
                base.add(slot + 2).read_volatile(),
            )
        };
        self.cq_head += 1;
        if self.cq_head == self.cq_size {
            self.cq_head = 0;
            self.phase = !self.phase;
        }
        Some(Completion {
            dw0,
            sq_head: dw2 as u16,
            sqid: (dw2 >> 16) as u16,
            cid: dw3 as u16,
            phase: dw3 >> 16 & 1 != 0,
            status: Status::from_dw3(dw3),
        })
    }
}

/// An enabled controller with its admin queue.
pub struct Host {
    pub emu: EmuController,
    pub bar: Bar,
    pub admin: RawQueue,
    pub io: Vec<RawQueue>,
    /// Clear CC.EN (and wait for RDY = 0) on drop, as a driver must.
    pub disable_on_drop: bool,
}

pub const CC_EN_NVM: u32 = 1 | 6 << 16 | 4 << 20;

/// Waits for `cond`, failing the test after [`TIMEOUT`].
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// A point inside the controller's processing where its worker waits for
/// the test: call [`Gate::pass`] from a [`crate::nvme::emu::CommandMatch::when`]
/// predicate (it runs on the worker as a command is fetched), then
/// [`Gate::wait_reached`], act, and [`Gate::open`]. Lets a test do something
/// at a known moment of a command's life instead of guessing with sleeps.
#[derive(Default)]
pub struct Gate {
    /// (reached, open)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl Gate {
    /// Worker side: records that the gate was reached and waits until it is
    /// open (at most [`TIMEOUT`], so a failed test cannot hang the worker).
    pub fn pass(&self) {
        let mut st = self.state.lock().unwrap();
        st.0 = true;
        self.changed.notify_all();
        let (_st, _timed_out) = self
            .changed
            .wait_timeout_while(st, TIMEOUT, |st| !st.1)
            .unwrap();
    }

    /// Test side: waits until the worker stands at the gate.
    pub fn wait_reached(&self) {
        let st = self.state.lock().unwrap();
        let (st, _) = self
            .changed
            .wait_timeout_while(st, TIMEOUT, |st| !st.0)
            .unwrap();
        assert!(st.0, "the controller never reached the gate");
    }

    /// Test side: lets the worker go on (and every later pass through).
    pub fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl Host {
    /// Enables bus mastering, programs the admin queue, sets CC.EN and waits for CSTS.RDY.
    pub fn new(emu: EmuController) -> Self {
        let host = Self::programmed(emu, 32);
        host.bar.write32(0x14, CC_EN_NVM);
        wait_for("CSTS.RDY = 1", || host.bar.read32(0x1c) & 1 == 1);
        host
    }

    /// Everything but CC.EN: bus master on, AQA/ASQ/ACQ written.
    pub fn programmed(emu: EmuController, admin_entries: u16) -> Self {
        env_up();
        emu.enable_bus_master().expect("bus master");
        let bar = emu.map_bar(0).expect("BAR 0");
        let admin = RawQueue::new(0, admin_entries);
        let n = admin_entries as u32 - 1;
        bar.write32(0x24, n | n << 16);
        bar.write64(0x28, admin.sq.iova());
        bar.write64(0x30, admin.cq.iova());
        Self {
            emu,
            bar,
            admin,
            io: Vec::new(),
            disable_on_drop: true,
        }
    }

    /// After a reset (CSTS.RDY = 0): programs a fresh admin queue, sets
    /// CC.EN and waits for CSTS.RDY; the old queues are handed back, so the
    /// test can look at their memory.
    pub fn reenable(&mut self) -> (RawQueue, Vec<RawQueue>) {
        let admin = RawQueue::new(0, self.admin.size);
        self.bar.write64(0x28, admin.sq.iova());
        self.bar.write64(0x30, admin.cq.iova());
        let old = (
            std::mem::replace(&mut self.admin, admin),
            std::mem::take(&mut self.io),
        );
        self.bar.write32(0x14, CC_EN_NVM);
        wait_for("CSTS.RDY = 1", || self.bar.read32(0x1c) & 1 == 1);
        old
    }

    fn queue(&mut self, qid: u16) -> &mut RawQueue {
        if qid == 0 {
            &mut self.admin
        } else {
            self.io
                .iter_mut()
                .find(|q| q.qid == qid)
                .expect("queue exists")
        }
    }

    /// Queues a command and rings the SQ tail doorbell; returns the CID.
    pub fn submit(&mut self, qid: u16, sqe: Sqe) -> u16 {
        let cid = self.push(qid, sqe);
        self.ring_sq(qid);
        cid
    }

    /// Queues a command without ringing; returns the CID.
    pub fn push(&mut self, qid: u16, sqe: Sqe) -> u16 {
        self.queue(qid).push(sqe, false)
    }

    /// Writes the SQ tail doorbell register.
    pub fn ring_sq(&mut self, qid: u16) {
        let tail = self.queue(qid).sq_tail;
        self.bar.write32(0x1000 + 8 * qid as usize, tail as u32);
    }

    /// Takes the next completion of `qid` without ringing the CQ head doorbell.
    pub fn wait_quietly(&mut self, qid: u16) -> Completion {
        let start = Instant::now();
        loop {
            if let Some(c) = self.queue(qid).poll() {
                return c;
            }
            assert!(start.elapsed() < TIMEOUT, "no completion on queue {qid}");
            std::thread::sleep(Duration::from_micros(10));
        }
    }

    /// The CQ head the host has consumed up to.
    pub fn cq_head(&mut self, qid: u16) -> u16 {
        self.queue(qid).cq_head
    }

    /// The SQ tail the host has written up to.
    pub fn sq_tail(&mut self, qid: u16) -> u16 {
        self.queue(qid).sq_tail
    }

    /// Waits for the next completion on `qid` and rings the CQ head doorbell.
    pub fn wait(&mut self, qid: u16) -> Completion {
        let start = Instant::now();
        loop {
            if let Some(c) = self.queue(qid).poll() {
                let head = self.queue(qid).cq_head;
                self.bar.write32(0x1000 + 8 * qid as usize + 4, head as u32);
                return c;
            }
            assert!(start.elapsed() < TIMEOUT, "no completion on queue {qid}");
            std::thread::sleep(Duration::from_micros(10));
        }
    }

    /// True if no completion shows up on `qid` within `d`.
    pub fn quiet_for(&mut self, qid: u16, d: Duration) -> bool {
        std::thread::sleep(d);
        let q = self.queue(qid);
        let head = q.cq_head as usize * 4;
        // SAFETY: in-bounds, aligned dword of the CQ buffer, read volatile.
        let dw3 = unsafe { q.cq.as_ptr().cast::<u32>().add(head + 3).read_volatile() };
        (dw3 >> 16 & 1 != 0) != q.phase
    }

    /// Submits one command and waits for its completion.
    pub fn cmd(&mut self, qid: u16, sqe: Sqe) -> Completion {
        let cid = self.submit(qid, sqe);
        let c = self.wait(qid);
        assert_eq!(c.cid, cid, "completion for another command");
        c
    }

    /// An admin command with a data buffer at PRP1 (page-aligned, so PRP1 alone covers 4 KiB).
    pub fn admin_with_data(&mut self, mut sqe: Sqe, buf: &DmaBuf) -> Completion {
        sqe.prp1 = buf.iova();
        if buf.len() > 4096 {
            sqe.prp2 = buf.iova_at(4096);
        }
        self.cmd(0, sqe)
    }

    /// Identify with `cns` and `nsid`, returning the 4 KiB of data.
    pub fn identify(&mut self, cns: u8, nsid: u32) -> (Completion, Vec<u8>) {
        let buf = DmaBuf::alloc_zeroed(4096, 4096).expect("identify buffer");
        let mut sqe = Sqe::new(0x06, 0);
        sqe.nsid = nsid;
        sqe.cdw10 = cns as u32;
        let c = self.admin_with_data(sqe, &buf);
        (c, buf.to_vec())
    }

    /// Creates I/O CQ and SQ `qid` with `size` entries, asserting success.
    pub fn create_io_queue(&mut self, qid: u16, size: u16) {
        self.create_io_queue_sized(qid, size, size)
    }

    /// Creates I/O CQ `qid` with `cq_size` entries and SQ `qid` with `size`.
    pub fn create_io_queue_sized(&mut self, qid: u16, size: u16, cq_size: u16) {
        let q = RawQueue::with_sizes(qid, size, cq_size);
        let mut cq = Sqe::new(0x05, 0);
        cq.prp1 = q.cq.iova();
        cq.cdw10 = qid as u32 | (cq_size as u32 - 1) << 16;
        cq.cdw11 = 1;
        assert_eq!(
            self.cmd(0, cq).status,
            Status::SUCCESS,
            "create I/O CQ {qid}"
        );
        let mut sq = Sqe::new(0x01, 0);
        sq.prp1 = q.sq.iova();
        sq.cdw10 = qid as u32 | (size as u32 - 1) << 16;
        sq.cdw11 = 1 | (qid as u32) << 16;
        assert_eq!(
            self.cmd(0, sq).status,
            Status::SUCCESS,
            "create I/O SQ {qid}"
        );
        self.io.push(q);
    }

    /// A Read or Write of `nlb` blocks at `slba` with explicit PRPs.
    pub fn rw(
        &mut self,
        qid: u16,
        opcode: u8,
        nsid: u32,
        slba: u64,
        nlb: u32,
        (prp1, prp2): (u64, u64),
    ) -> Completion {
        let mut sqe = Sqe::new(opcode, 0);
        sqe.nsid = nsid;
        sqe.cdw10 = slba as u32;
        sqe.cdw11 = (slba >> 32) as u32;
        sqe.cdw12 = nlb - 1;
        sqe.prp1 = prp1;
        sqe.prp2 = prp2;
        self.cmd(qid, sqe)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if !self.disable_on_drop {
            return;
        }
        // Disable before the queue memory is freed, as a driver must.
        self.bar.write32(0x14, 0);
        let bar = self.bar.clone();
        let start = Instant::now();
        while bar.read32(0x1c) & 1 != 0 && start.elapsed() < TIMEOUT {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}

/// Fills `buf` with a pattern derived from `seed`.
pub fn pattern(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}
