//! The admin queue: synchronous, polled execution of admin commands,
//! outstanding Asynchronous Event Requests, and commands abandoned after a
//! timeout (their buffers are kept until the controller completes them or is reset).

use super::buffer::DmaSlice;
use super::prp;
use super::queue::{CqRing, Doorbell, SqRing};
use super::regs::Regs;
use super::spec::features::AsyncEvent;
use super::spec::registers::{cq_head_doorbell, sq_tail_doorbell};
use super::spec::{AdminOpcode, Cqe, Sqe};
use super::NvmeError;
use crate::env::DmaBuf;
use std::time::{Duration, Instant};

/// State of one admin command identifier.
enum Slot {
    Free,
    Waiting,
    Done(Cqe),
    /// Timed out; the buffer stays here until the command completes or the controller resets.
    Abandoned(#[allow(dead_code)] Option<DmaBuf>),
    Aer,
}

/// The admin queue of a controller, over its transport.
pub(crate) enum AdminQueue {
    /// Rings in DMA memory and BAR0 doorbells.
    Pcie(PcieAdmin),
    /// A TCP connection.
    Tcp(super::tcp::TcpAdmin),
}

impl AdminQueue {
    /// Executes `sqe` with an optional data buffer and waits for its
    /// completion; `regs` are BAR0's (PCIe only: checked for a fatal status).
    pub(crate) fn exec(
        &mut self,
        regs: Option<&Regs>,
        sqe: Sqe,
        buf: Option<DmaBuf>,
        timeout: Duration,
    ) -> Result<(Cqe, Option<DmaBuf>), NvmeError> {
        match (self, regs) {
            (AdminQueue::Pcie(a), Some(r)) => a.exec(r, sqe, buf, timeout),
            (AdminQueue::Tcp(a), _) => a.exec(sqe, buf, timeout),
            (AdminQueue::Pcie(_), None) => Err(NvmeError::Unsupported(
                "a PCIe admin queue without its registers".into(),
            )),
        }
    }

    /// Processes posted completions; returns how many.
    pub(crate) fn poll(&mut self) -> usize {
        match self {
            AdminQueue::Pcie(a) => a.poll(),
            AdminQueue::Tcp(a) => a.poll(),
        }
    }

    /// True when the admin queue's NVMe/TCP connection failed (never over PCIe).
    pub(crate) fn connection_failed(&self) -> bool {
        match self {
            AdminQueue::Pcie(_) => false,
            AdminQueue::Tcp(a) => a.queue.is_failed(),
        }
    }

    /// Submits one Asynchronous Event Request (left outstanding).
    pub(crate) fn submit_aer(&mut self) -> bool {
        match self {
            AdminQueue::Pcie(a) => a.submit_aer(),
            AdminQueue::Tcp(a) => a.submit_aer(),
        }
    }

    /// Events from AER completions not yet handed to the user.
    pub(crate) fn take_events(&mut self) -> Vec<AsyncEvent> {
        match self {
            AdminQueue::Pcie(a) => std::mem::take(&mut a.events),
            AdminQueue::Tcp(a) => std::mem::take(&mut a.events),
        }
    }

    /// The PCIe admin queue (`None` over TCP).
    pub(crate) fn pcie(&mut self) -> Option<&mut PcieAdmin> {
        match self {
            AdminQueue::Pcie(a) => Some(a),
            AdminQueue::Tcp(_) => None,
        }
    }
}

/// The PCIe admin submission/completion queue pair (queue ID 0).
pub(crate) struct PcieAdmin {
    sq: SqRing,
    cq: CqRing,
    prp_page: DmaBuf,
    slots: Vec<Slot>,
    next_cid: u16,
    /// Events from AER completions not yet handed to the user.
    pub(crate) events: Vec<AsyncEvent>,
}

/// Human name of an admin opcode, for errors.
pub(crate) fn admin_name(opc: u8) -> &'static str {
    use AdminOpcode::*;
    const TABLE: &[(AdminOpcode, &str)] = &[
        (DeleteIoSq, "Delete I/O Submission Queue"),
        (CreateIoSq, "Create I/O Submission Queue"),
        (GetLogPage, "Get Log Page"),
        (DeleteIoCq, "Delete I/O Completion Queue"),
        (CreateIoCq, "Create I/O Completion Queue"),
        (Identify, "Identify"),
        (Abort, "Abort"),
        (SetFeatures, "Set Features"),
        (GetFeatures, "Get Features"),
        (AsyncEventRequest, "Asynchronous Event Request"),
        (DoorbellBufferConfig, "Doorbell Buffer Config"),
        (FormatNvm, "Format NVM"),
    ];
    TABLE
        .iter()
        .find(|(o, _)| *o as u8 == opc)
        .map_or("Admin command", |(_, n)| n)
}

impl PcieAdmin {
    /// Allocates the rings (not yet programmed into AQA/ASQ/ACQ).
    pub(crate) fn new(regs: &Regs, entries: u16, dstrd: u8) -> Result<Self, NvmeError> {
        let sq_db = Doorbell::new(&regs.bar, sq_tail_doorbell(0, dstrd), None)?;
        let cq_db = Doorbell::new(&regs.bar, cq_head_doorbell(0, dstrd), None)?;
        Ok(PcieAdmin {
            sq: SqRing::new(entries, sq_db)?,
            cq: CqRing::new(entries, cq_db)?,
            prp_page: DmaBuf::alloc_zeroed(prp::PAGE_SIZE, prp::PAGE_SIZE)?,
            slots: (0..entries).map(|_| Slot::Free).collect(),
            next_cid: 0,
            events: Vec::new(),
        })
    }

    pub(crate) fn entries(&self) -> u16 {
        self.sq.entries()
    }
    pub(crate) fn sq_iova(&self) -> u64 {
        self.sq.iova()
    }
    pub(crate) fn cq_iova(&self) -> u64 {
        self.cq.iova()
    }

    /// Empties both rings and forgets every command (the controller is disabled).
    pub(crate) fn reset(&mut self) {
        self.sq.reset();
        self.cq.reset();
        for s in &mut self.slots {
            *s = Slot::Free;
        }
    }

    fn alloc_cid(&mut self) -> Option<u16> {
        let n = self.slots.len() as u16;
        for i in 0..n {
            let cid = (self.next_cid + i) % n;
            if matches!(self.slots[cid as usize], Slot::Free) {
                self.next_cid = (cid + 1) % n;
                return Some(cid);
            }
        }
        None
    }

    /// Submits one Asynchronous Event Request (left outstanding).
    pub(crate) fn submit_aer(&mut self) -> bool {
        let Some(cid) = self.alloc_cid() else {
            return false;
        };
        let mut sqe = Sqe::new(AdminOpcode::AsyncEventRequest as u8, 0);
        sqe.set_cid(cid);
        self.slots[cid as usize] = Slot::Aer;
        self.sq.push(&sqe);
        self.sq.ring();
        true
    }

    /// Processes posted completions; returns how many.
    pub(crate) fn poll(&mut self) -> usize {
        let mut n = 0;
        while let Some(cqe) = self.cq.pop() {
            n += 1;
            self.sq.head = cqe.sqhd;
            let Some(slot) = self.slots.get_mut(cqe.cid as usize) else {
                log::warn!("admin completion for unknown CID {}", cqe.cid);
                continue;
            };
            match slot {
                Slot::Waiting => *slot = Slot::Done(cqe),
                Slot::Abandoned(_) => *slot = Slot::Free,
                Slot::Aer => {
                    *slot = Slot::Free;
                    let st = cqe.status();
                    if st.is_success() {
                        self.events.push(AsyncEvent::from_dw0(cqe.dw0));
                        self.submit_aer();
                    } else {
                        log::debug!("AER completed with {st}; not resubmitted");
                    }
                }
                Slot::Free | Slot::Done(_) => {
                    log::warn!("admin completion for idle CID {}", cqe.cid)
                }
            }
        }
        if n > 0 {
            self.cq.ring();
        }
        n
    }

    /// Executes `sqe` with optional data buffer and waits for its completion.
    /// A non-success status becomes [`NvmeError::Command`].
    pub(crate) fn exec(
        &mut self,
        regs: &Regs,
        mut sqe: Sqe,
        buf: Option<DmaBuf>,
        timeout: Duration,
    ) -> Result<(Cqe, Option<DmaBuf>), NvmeError> {
        let what = admin_name(sqe.opc());
        self.poll();
        let cid = self.alloc_cid().ok_or(NvmeError::QueueFull)?;
        let seg = buf.map(DmaSlice::from);
        if let Some(s) = &seg {
            let list_iova = self.prp_page.iova();
            let p = prp::build(
                std::slice::from_ref(s),
                0,
                s.len(),
                &mut self.prp_page,
                list_iova,
            )?;
            sqe.prp1 = p.prp1;
            sqe.prp2 = p.prp2;
        }
        sqe.set_cid(cid);
        self.slots[cid as usize] = Slot::Waiting;
        self.sq.push(&sqe);
        self.sq.ring();
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            self.poll();
            if let Slot::Done(cqe) = self.slots[cid as usize] {
                self.slots[cid as usize] = Slot::Free;
                let status = cqe.status();
                if !status.is_success() {
                    return Err(NvmeError::Command {
                        opcode: what,
                        status,
                    });
                }
                return Ok((cqe, seg.map(DmaSlice::into_inner)));
            }
            spins += 1;
            if spins % 64 == 0 {
                let csts = regs.csts();
                if csts.is_all_ones() {
                    self.slots[cid as usize] = Slot::Abandoned(seg.map(DmaSlice::into_inner));
                    return Err(NvmeError::DeviceGone);
                }
                if csts.cfs() == 1 {
                    self.slots[cid as usize] = Slot::Abandoned(seg.map(DmaSlice::into_inner));
                    return Err(NvmeError::ControllerFatal);
                }
                if start.elapsed() > timeout {
                    self.slots[cid as usize] = Slot::Abandoned(seg.map(DmaSlice::into_inner));
                    return Err(NvmeError::Timeout {
                        what,
                        after: timeout,
                    });
                }
                std::thread::yield_now();
            }
        }
    }
}
