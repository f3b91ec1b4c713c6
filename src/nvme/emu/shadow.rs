//! Shadow doorbells and EventIdx (Doorbell Buffer Config), read the way
//! QEMU's NVMe controller reads them.
//!
//! The controller looks at an I/O queue's shadow slot only while it is
//! already working on that queue: an SQ's shadow tail when processing was
//! started by an MMIO tail doorbell write (and again after every command it
//! fetches), a CQ's shadow head when it posts completions. After each
//! fetched command it stores the tail it has seen as the SQ's EventIdx and
//! reads the shadow tail again, so a host that follows the EventIdx rule
//! never loses an update; when it finds no new entry it stops, and only an
//! MMIO write starts it again. Before posting each completion it stores the
//! CQ head it knows as the CQ's EventIdx and reads the shadow head. Queue
//! creation leaves both slots alone: whatever a deleted queue with the same
//! ID left there is the new queue's starting point, as on QEMU.

use std::sync::atomic::{fence, Ordering};

use super::dma;
use super::stats::bump;
use super::worker::Worker;

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
    /// True when queue `qid` takes its doorbell values from the shadow
    /// buffer: I/O queues once Doorbell Buffer Config ran (the admin queue
    /// always uses its MMIO doorbells, as SPDK and Linux drive it).
    pub(super) fn uses_shadow(&self, qid: u16) -> bool {
        qid != 0 && self.dbbuf.is_some()
    }

    /// Reads the shadow slot of `qid`/`cq`. `known` is the value the
    /// controller had before; a change is counted as a shadow update, and as
    /// a saved MMIO write unless `mmio` says a doorbell write came with it.
    /// `None` if there is no buffer, the buffer is not DMA memory (the
    /// controller goes fatal) or the value is beyond the queue.
    pub(super) fn read_shadow(
        &mut self,
        qid: u16,
        cq: bool,
        known: u16,
        size: u16,
        mmio: bool,
    ) -> Option<u16> {
        let db = self.dbbuf?;
        let Ok(v) = dma::load_u32(db.shadow + DbBuf::offset(qid, cq)) else {
            bump(&self.sh.stats.dma_faults, 1);
            self.go_fatal("shadow doorbell buffer is not DMA memory");
            return None;
        };
        if v != known as u32 {
            bump(&self.sh.stats.shadow_updates, 1);
            if !mmio {
                bump(&self.sh.stats.mmio_suppressed, 1);
            }
        }
        self.checked_doorbell(qid, cq, v, size)
    }

    /// Stores `value` as the EventIdx of `qid`/`cq`, then orders that store
    /// before the next shadow read (the host stores its shadow value, then
    /// reads EventIdx: one of the two sides sees the other's update).
    fn write_eventidx(&mut self, qid: u16, cq: bool, value: u16) -> bool {
        let Some(db) = self.dbbuf else {
            return false;
        };
        if dma::store_u32(db.eventidx + DbBuf::offset(qid, cq), value as u32).is_err() {
            bump(&self.sh.stats.dma_faults, 1);
            self.go_fatal("EventIdx buffer is not DMA memory");
            return false;
        }
        fence(Ordering::SeqCst);
        true
    }

    /// After a command was fetched from SQ `qid`: EventIdx := the tail seen,
    /// then the shadow tail is read again. Returns the SQ's tail; `None`
    /// stops the pass (queue gone, fatal, or an invalid shadow tail).
    pub(super) fn refresh_sq_tail(&mut self, qid: u16) -> Option<u16> {
        let (tail, size) = self.sqs[qid as usize].as_ref().map(|q| (q.tail, q.size))?;
        if !self.uses_shadow(qid) {
            return Some(tail);
        }
        if !self.write_eventidx(qid, false, tail) {
            return Some(tail);
        }
        let shadow = self.read_shadow(qid, false, tail, size, false);
        let sq = self.sqs[qid as usize].as_mut()?;
        match shadow {
            Some(t) => sq.tail = t,
            // Reported once; the queue waits for the next MMIO write.
            None => sq.active = false,
        }
        shadow
    }

    /// Before a completion is posted to CQ `qid`: EventIdx := the head the
    /// controller knows, then the shadow head is read.
    pub(super) fn refresh_cq_head(&mut self, qid: u16) {
        let Some((head, size)) = self.cqs[qid as usize].as_ref().map(|q| (q.head, q.size)) else {
            return;
        };
        if !self.uses_shadow(qid) || !self.write_eventidx(qid, true, head) {
            return;
        }
        if let Some(h) = self.read_shadow(qid, true, head, size, false) {
            if let Some(cq) = self.cqs[qid as usize].as_mut() {
                cq.head = h;
            }
        }
    }

    /// Doorbell Buffer Config on a running controller: the shadow slots of
    /// queues that already exist take their current tail and head (their
    /// EventIdx slots are left alone, as QEMU does).
    pub(super) fn seed_shadow_slots(&mut self) {
        let Some(db) = self.dbbuf else {
            return;
        };
        for qid in 1..self.sqs.len() as u16 {
            let sq = self.sqs[qid as usize].as_ref().map(|q| q.tail);
            let cq = self.cqs[qid as usize].as_ref().map(|q| q.head);
            for (is_cq, value) in [(false, sq), (true, cq)] {
                let Some(v) = value else { continue };
                if dma::store_u32(db.shadow + DbBuf::offset(qid, is_cq), v as u32).is_err() {
                    self.go_fatal("doorbell buffer is no longer DMA memory");
                    return;
                }
            }
        }
    }
}
