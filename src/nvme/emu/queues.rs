//! Submission and completion queue state, MMIO doorbells (shadow doorbells
//! are read in `shadow`), and posting completions with the phase tag.

use std::collections::VecDeque;

use super::dma::{self, DmaFault};
use super::events::AsyncEvent;
use super::regs;
use super::sqe::{CQE_SIZE, SQE_SIZE};
use super::stats::bump;
use super::worker::Worker;
use super::Cqe;

/// A submission queue.
pub(super) struct SubQueue {
    pub base: u64,
    pub size: u16,
    /// Next entry the controller fetches.
    pub head: u16,
    /// Last tail the host published.
    pub tail: u16,
    pub cqid: u16,
    /// Processing was started by an MMIO tail write and has not yet run dry
    /// (only consulted with shadow doorbells).
    pub active: bool,
}

impl SubQueue {
    pub fn new(base: u64, size: u16, cqid: u16) -> Self {
        Self {
            base,
            size,
            head: 0,
            tail: 0,
            cqid,
            active: false,
        }
    }

    pub fn entry_addr(&self, idx: u16) -> u64 {
        self.base + idx as u64 * SQE_SIZE as u64
    }
}

/// A completion queue.
pub(super) struct CompQueue {
    pub base: u64,
    pub size: u16,
    /// Last head the host published.
    pub head: u16,
    /// Next slot the controller writes.
    pub tail: u16,
    /// Phase tag of the current pass (starts at 1).
    pub phase: bool,
    /// Number of SQs completing into this CQ.
    pub sqs: u16,
    /// Completions waiting for room, with the SQ head to report.
    pub pending: VecDeque<(Cqe, u16)>,
}

impl CompQueue {
    pub fn new(base: u64, size: u16, reserve: bool) -> Self {
        Self {
            base,
            size,
            head: 0,
            tail: 0,
            phase: true,
            sqs: 0,
            // Room for one completion per slot of the SQs using it, allocated
            // now so posting never allocates.
            pending: VecDeque::with_capacity(if reserve { size as usize * 2 } else { 64 }),
        }
    }

    pub fn full(&self) -> bool {
        (self.tail + 1) % self.size == self.head
    }

    /// Writes `cqe` into the tail slot and advances the tail (flipping the phase on wrap).
    pub fn post(&mut self, cqe: &Cqe, sq_head: u16) -> Result<(), DmaFault> {
        let (low, dw3) = cqe.encode(sq_head, self.phase);
        dma::write_cqe(self.base + self.tail as u64 * CQE_SIZE as u64, low, dw3)?;
        self.tail += 1;
        if self.tail == self.size {
            self.tail = 0;
            self.phase = !self.phase;
        }
        Ok(())
    }
}

impl Worker {
    /// Takes the value last written to MMIO doorbell `qid`/`cq`, if any.
    fn take_mmio(&mut self, qid: u16, cq: bool, size: u16) -> Option<u16> {
        let off = if cq {
            regs::cq_doorbell(qid)
        } else {
            regs::sq_doorbell(qid)
        };
        let writes = &self.sh.stats.doorbell_writes;
        let v = self.sh.regs.take_doorbell(off, || bump(writes, 1))?;
        self.checked_doorbell(qid, cq, v, size)
    }

    /// `value` if it lies inside the queue; otherwise it is ignored and
    /// Invalid Doorbell Write Value is raised.
    pub(super) fn checked_doorbell(
        &mut self,
        qid: u16,
        cq: bool,
        value: u32,
        size: u16,
    ) -> Option<u16> {
        if value < size as u32 {
            return Some(value as u16);
        }
        log::warn!(
            "nvme emu {}: {} doorbell of queue {qid} written with {value}, beyond its {size} entries: ignored",
            self.sh.address,
            if cq { "CQ head" } else { "SQ tail" },
        );
        if self.events.len() < self.events.capacity() {
            self.events.push_back(AsyncEvent::InvalidDoorbellWriteValue);
        }
        None
    }

    /// The tail to fetch up to in this pass over SQ `qid`, or `None` when
    /// the queue is gone or not to be processed now. An MMIO tail write
    /// starts processing; a queue using shadow doorbells then reads its
    /// shadow tail, and stays idle after it ran dry until the next MMIO
    /// write (see `shadow`).
    pub(super) fn sq_tail_for_pass(&mut self, qid: u16) -> Option<u16> {
        let (known, size) = self.sqs[qid as usize].as_ref().map(|q| (q.tail, q.size))?;
        let mmio = self.take_mmio(qid, false, size);
        let shadowed = self.uses_shadow(qid);
        let sq = self.sqs[qid as usize].as_mut()?;
        if let Some(t) = mmio {
            sq.tail = t;
            sq.active = true;
        }
        if !shadowed {
            return Some(sq.tail);
        }
        if !sq.active {
            return None;
        }
        let shadow = self.read_shadow(qid, false, known, size, mmio.is_some());
        let sq = self.sqs[qid as usize].as_mut()?;
        match shadow {
            Some(t) => sq.tail = t,
            // An invalid shadow tail (reported once) stops the queue until
            // the next MMIO write.
            None => sq.active = false,
        }
        shadow
    }

    /// The SQ's tail as the host last published it (MMIO or shadow), for
    /// aborting unfetched commands when the queue is deleted.
    pub(super) fn sq_tail_at_deletion(&mut self, qid: u16) -> Option<u16> {
        let (known, size) = self.sqs[qid as usize].as_ref().map(|q| (q.tail, q.size))?;
        let mut tail = self.take_mmio(qid, false, size).unwrap_or(known);
        if self.uses_shadow(qid) {
            tail = self
                .read_shadow(qid, false, known, size, true)
                .unwrap_or(tail);
        }
        Some(tail)
    }

    /// Takes every MMIO CQ head doorbell and posts waiting completions that now fit.
    pub(super) fn poll_cq_heads(&mut self) -> bool {
        let mut worked = false;
        for qid in 0..self.cqs.len() as u16 {
            let Some(size) = self.cqs[qid as usize].as_ref().map(|c| c.size) else {
                continue;
            };
            if let Some(h) = self.take_mmio(qid, true, size) {
                if let Some(cq) = self.cqs[qid as usize].as_mut() {
                    cq.head = h;
                }
                worked = true;
                worked |= self.post_pending(qid);
            }
        }
        worked
    }

    /// Takes a CQ head doorbell write of CQ `cqid` not yet seen and posts
    /// what then fits; true when the queue has room. The worker reads the
    /// doorbells one by one, so a head the host wrote before an SQ tail
    /// may still be unread when that tail's commands are fetched; a
    /// device sees MMIO writes in order, so the queue is full only if it
    /// stays full after this.
    pub(super) fn take_cq_head(&mut self, cqid: u16) -> bool {
        let Some(size) = self.cqs[cqid as usize].as_ref().map(|q| q.size) else {
            return false;
        };
        let Some(h) = self.take_mmio(cqid, true, size) else {
            return false;
        };
        if let Some(cq) = self.cqs[cqid as usize].as_mut() {
            cq.head = h;
        }
        self.post_pending(cqid);
        self.cqs[cqid as usize]
            .as_ref()
            .is_some_and(|cq| !cq.full())
    }

    /// Posts queued completions of CQ `qid` while there is room; with shadow
    /// doorbells the shadow head is read before each one. What does not fit
    /// waits for the next MMIO head doorbell write or the next completion.
    pub(super) fn post_pending(&mut self, qid: u16) -> bool {
        let mut worked = false;
        loop {
            if self.cqs[qid as usize]
                .as_ref()
                .map_or(true, |cq| cq.pending.is_empty())
            {
                return worked;
            }
            self.refresh_cq_head(qid);
            let Some(cq) = self.cqs[qid as usize].as_mut() else {
                return worked;
            };
            if cq.full() {
                if qid != 0 {
                    bump(&self.sh.stats.cq_full_stalls, 1);
                }
                return worked;
            }
            let Some((cqe, head)) = cq.pending.pop_front() else {
                return worked;
            };
            // Counted before the CQE is visible, so a host that has seen it
            // also sees it in the counters; taken back if it never got there.
            let posted = &self.sh.stats.completions;
            bump(posted, 1);
            if cq.post(&cqe, head).is_err() {
                posted.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                self.post_faulted();
            }
            worked = true;
        }
    }
}
