//! A minimal NVMe admin/I-O queue pair driven by hand over a PciDevice: just
//! enough to prove DMA end to end in the pci tests (the real driver is nvme's).

use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spdk_io::env::DmaBuf;
use spdk_io::pci::{Bar, PciDevice};
use volatile::VolatilePtr;

pub const REG_CAP: usize = 0x00;
pub const REG_VS: usize = 0x08;
pub const REG_CC: usize = 0x14;
pub const REG_CSTS: usize = 0x1c;
pub const REG_AQA: usize = 0x24;
pub const REG_ASQ: usize = 0x28;
pub const REG_ACQ: usize = 0x30;

const ENTRIES: u16 = 64;
const TIMEOUT: Duration = Duration::from_secs(20);

/// One submission/completion queue pair in DMA memory.
pub struct Queue {
    pub qid: u16,
    sq: DmaBuf,
    cq: DmaBuf,
    tail: u16,
    head: u16,
    phase: bool,
    cid: u16,
}

impl Queue {
    pub fn new(qid: u16) -> Self {
        Queue {
            qid,
            sq: DmaBuf::alloc_zeroed(ENTRIES as usize * 64, 4096).unwrap(),
            cq: DmaBuf::alloc_zeroed(ENTRIES as usize * 16, 4096).unwrap(),
            tail: 0,
            head: 0,
            phase: true,
            cid: 0,
        }
    }
}

/// A completion: dw0, status (SCT/SC, without the phase bit), command id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    pub dw0: u32,
    pub status: u16,
    pub cid: u16,
}

/// A controller brought up by hand.
pub struct RawController {
    pub dev: Arc<dyn PciDevice>,
    pub bar: Bar,
    pub dstrd: u32,
    pub admin: Queue,
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

impl RawController {
    /// Disable, program the admin queue from DmaBufs, enable.
    pub fn bring_up(dev: Arc<dyn PciDevice>) -> Self {
        dev.enable_bus_master().unwrap();
        let bar = dev.map_bar(0).unwrap();
        let cap = bar.read64(REG_CAP);
        let dstrd = ((cap >> 32) & 0xf) as u32;
        bar.write32(REG_CC, 0);
        wait("CSTS.RDY = 0", || bar.read32(REG_CSTS) & 1 == 0);
        let admin = Queue::new(0);
        let q = (ENTRIES - 1) as u32;
        bar.write32(REG_AQA, q << 16 | q);
        bar.write64(REG_ASQ, admin.sq.iova());
        bar.write64(REG_ACQ, admin.cq.iova());
        // EN, CSS = NVM, MPS = 4 KiB, IOSQES = 6 (64 B), IOCQES = 4 (16 B)
        bar.write32(REG_CC, 1 | 6 << 16 | 4 << 20);
        wait("CSTS.RDY = 1", || {
            let csts = bar.read32(REG_CSTS);
            assert_eq!(csts & 2, 0, "controller fatal status (CSTS.CFS)");
            csts & 1 == 1
        });
        RawController {
            dev,
            bar,
            dstrd,
            admin,
        }
    }

    /// Submits one command on I/O queue `q` and polls its completion.
    pub fn submit_on(&self, q: &mut Queue, sqe: [u32; 16]) -> Cqe {
        submit(&self.bar, self.dstrd, q, sqe)
    }

    /// Submits an admin command.
    pub fn admin(&mut self, sqe: [u32; 16]) -> Cqe {
        submit(&self.bar, self.dstrd, &mut self.admin, sqe)
    }

    /// Creates I/O queue pair `qid` (physically contiguous queues).
    pub fn create_io_queue(&mut self, qid: u16) -> Queue {
        let q = Queue::new(qid);
        let size = (ENTRIES as u32 - 1) << 16;
        let mut cq = [0u32; 16];
        cq[0] = 0x05;
        set_prp(&mut cq, q.cq.iova(), 0);
        cq[10] = size | qid as u32;
        cq[11] = 1; // PC
        assert_eq!(self.admin(cq).status, 0, "Create I/O CQ");
        let mut sq = [0u32; 16];
        sq[0] = 0x01;
        set_prp(&mut sq, q.sq.iova(), 0);
        sq[10] = size | qid as u32;
        sq[11] = (qid as u32) << 16 | 1; // CQID, PC
        assert_eq!(self.admin(sq).status, 0, "Create I/O SQ");
        q
    }

    /// CC.EN = 0 and wait for CSTS.RDY = 0, leaving the device as we found it.
    pub fn disable(&self) {
        self.bar.write32(REG_CC, 0);
        wait("CSTS.RDY = 0", || self.bar.read32(REG_CSTS) & 1 == 0);
    }
}

fn doorbell(dstrd: u32, qid: u16, cq: bool) -> usize {
    0x1000 + (2 * qid as usize + cq as usize) * (4 << dstrd)
}

/// Writes the SQE (command id set here), rings the tail doorbell, polls the
/// completion's phase bit, then rings the head doorbell.
fn submit(bar: &Bar, dstrd: u32, q: &mut Queue, mut sqe: [u32; 16]) -> Cqe {
    q.cid = q.cid.wrapping_add(1);
    sqe[0] = (sqe[0] & 0xffff) | (q.cid as u32) << 16;
    let slot = q.tail as usize * 64;
    for (i, dw) in sqe.iter().enumerate() {
        q.sq[slot + i * 4..slot + i * 4 + 4].copy_from_slice(&dw.to_le_bytes());
    }
    q.tail = (q.tail + 1) % ENTRIES;
    fence(Ordering::SeqCst);
    bar.write32(doorbell(dstrd, q.qid, false), q.tail as u32);
    let entry = q.head as usize * 16;
    let cq = q.cq.as_ptr();
    let cq_dword = |off: usize| {
        let p = NonNull::new(cq.wrapping_add(off).cast::<u32>().cast_mut()).unwrap();
        // SAFETY: `off` lies inside the live CQ buffer, 4-aligned; the device
        // writes it by DMA, so it is read only through a volatile pointer.
        unsafe { VolatilePtr::new_read_only(p) }.read()
    };
    let mut dw3 = 0;
    wait("a completion", || {
        dw3 = cq_dword(entry + 12);
        (dw3 >> 16 & 1 == 1) == q.phase
    });
    fence(Ordering::Acquire);
    let dw0 = cq_dword(entry);
    q.head = (q.head + 1) % ENTRIES;
    if q.head == 0 {
        q.phase = !q.phase;
    }
    bar.write32(doorbell(dstrd, q.qid, true), q.head as u32);
    Cqe {
        dw0,
        status: (dw3 >> 17) as u16,
        cid: dw3 as u16,
    }
}

/// PRP1/PRP2 into dwords 6..10.
pub fn set_prp(sqe: &mut [u32; 16], prp1: u64, prp2: u64) {
    sqe[6] = prp1 as u32;
    sqe[7] = (prp1 >> 32) as u32;
    sqe[8] = prp2 as u32;
    sqe[9] = (prp2 >> 32) as u32;
}

/// An Identify command (CNS in cdw10) into a 4 KiB buffer at `buf[off..]`:
/// PRP1 = its IOVA, PRP2 = the IOVA of the next memory page if it crosses one.
pub fn identify(cns: u32, nsid: u32, buf: &DmaBuf, off: usize) -> [u32; 16] {
    let mut sqe = [0u32; 16];
    sqe[0] = 0x06;
    sqe[1] = nsid;
    let first = 4096 - (buf.iova_at(off) as usize % 4096);
    let prp2 = if first < 4096 {
        buf.iova_at(off + first)
    } else {
        0
    };
    set_prp(&mut sqe, buf.iova_at(off), prp2);
    sqe[10] = cns;
    sqe
}

/// An ASCII field of an identify page, trailing spaces removed.
pub fn ascii(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim_end().to_string()
}
