//! Submission and completion queue state, doorbell polling (MMIO registers
//! and, once Doorbell Buffer Config ran, shadow doorbells with EventIdx), and
//! posting completions with the phase tag.

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
}

impl SubQueue {
    pub fn new(base: u64, size: u16, cqid: u16) -> Self {
        Self {
            base,
            size,
            head: 0,
            tail: 0,
            cqid,
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

/// Shadow doorbell and EventIdx buffers from Doorbell Buffer Config.
#[derive(Debug, Clone, Copy)]
pub(super) struct DbBuf {
    pub shadow: u64,
    pub eventidx: u64,
}

impl DbBuf {
    /// Offset of queue `qid`'s SQ (`cq = false`) or CQ entry in either buffer (stride 0).
    pub fn offset(qid: u16, cq: bool) -> u64 {
        (2 * qid as u64 + cq as u64) * 4
    }
}

impl Worker {
    /// Reads doorbell `qid`/`cq`: from the shadow buffer for I/O queues once
    /// configured, else from the MMIO register. Returns the new value if it changed.
    fn poll_doorbell(&mut self, qid: u16, cq: bool, current: u16, size: u16) -> Option<u16> {
        let off = if cq {
            regs::cq_doorbell(qid)
        } else {
            regs::sq_doorbell(qid)
        };
        let writes = &self.sh.stats.doorbell_writes;
        let mmio = self.sh.regs.take_doorbell(off, || bump(writes, 1));
        let value = match self.dbbuf {
            Some(db) if qid != 0 => {
                let v = match dma::load_u32(db.shadow + DbBuf::offset(qid, cq)) {
                    Ok(v) => v,
                    Err(_) => {
                        bump(&self.sh.stats.dma_faults, 1);
                        self.go_fatal("shadow doorbell buffer is not DMA memory");
                        return None;
                    }
                };
                if v != current as u32 {
                    bump(&self.sh.stats.shadow_updates, 1);
                    if mmio.is_none() {
                        bump(&self.sh.stats.mmio_suppressed, 1);
                    }
                    // Tell the host which value was seen: it rings the MMIO
                    // doorbell again only when it moves past this one.
                    if dma::store_u32(db.eventidx + DbBuf::offset(qid, cq), v).is_err() {
                        bump(&self.sh.stats.dma_faults, 1);
                        self.go_fatal("EventIdx buffer is not DMA memory");
                        return None;
                    }
                }
                v
            }
            _ => mmio?,
        };
        if value == current as u32 {
            return None;
        }
        if value >= size as u32 {
            log::warn!(
                "nvme emu {}: {} doorbell of queue {qid} written with {value}, beyond its {size} entries: ignored",
                self.sh.address,
                if cq { "CQ head" } else { "SQ tail" },
            );
            if self.events.len() < self.events.capacity() {
                self.events.push_back(AsyncEvent::InvalidDoorbellWriteValue);
            }
            return None;
        }
        Some(value as u16)
    }

    /// The SQ's tail after polling its doorbell; `None` if the queue is gone.
    pub(super) fn poll_sq_tail(&mut self, qid: u16) -> Option<u16> {
        let (tail, size) = {
            let sq = self.sqs[qid as usize].as_ref()?;
            (sq.tail, sq.size)
        };
        if let Some(t) = self.poll_doorbell(qid, false, tail, size) {
            self.sqs[qid as usize].as_mut()?.tail = t;
            return Some(t);
        }
        Some(tail)
    }

    /// Polls every CQ head doorbell and posts completions that now fit.
    pub(super) fn poll_cq_heads(&mut self) -> bool {
        let mut worked = false;
        for qid in 0..self.cqs.len() as u16 {
            let Some((head, size)) = self.cqs[qid as usize].as_ref().map(|c| (c.head, c.size))
            else {
                continue;
            };
            if let Some(h) = self.poll_doorbell(qid, true, head, size) {
                if let Some(cq) = self.cqs[qid as usize].as_mut() {
                    cq.head = h;
                }
                worked = true;
            }
            worked |= self.flush_pending(qid);
        }
        worked
    }

    /// Posts queued completions of CQ `qid` while there is room.
    fn flush_pending(&mut self, qid: u16) -> bool {
        let mut worked = false;
        loop {
            let Some(cq) = self.cqs[qid as usize].as_mut() else {
                return worked;
            };
            if cq.full() {
                return worked;
            }
            let Some((cqe, head)) = cq.pending.pop_front() else {
                return worked;
            };
            let r = cq.post(&cqe, head);
            self.after_post(r);
            worked = true;
        }
    }
}
