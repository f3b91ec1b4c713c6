//! Admin command set: dispatch, I/O queue creation and deletion, Abort,
//! Asynchronous Event Request, Doorbell Buffer Config, Format NVM.
//! Identify, features and log pages live in their own files.

use super::dma;
use super::execute::Outcome;
use super::queues::{CompQueue, SubQueue};
use super::shadow::DbBuf;
use super::sqe::{CQE_SIZE, SQE_SIZE};
use super::worker::Worker;
use super::{Sqe, Status};

/// Admin opcodes (NVMe Base, Admin Command Set).
pub mod opc {
    /// Delete I/O Submission Queue.
    pub const DELETE_IO_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_IO_SQ: u8 = 0x01;
    /// Get Log Page.
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Delete I/O Completion Queue.
    pub const DELETE_IO_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_IO_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Abort.
    pub const ABORT: u8 = 0x08;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0a;
    /// Asynchronous Event Request.
    pub const ASYNC_EVENT_REQUEST: u8 = 0x0c;
    /// Keep Alive.
    pub const KEEP_ALIVE: u8 = 0x18;
    /// Doorbell Buffer Config.
    pub const DOORBELL_BUFFER_CONFIG: u8 = 0x7c;
    /// Format NVM.
    pub const FORMAT_NVM: u8 = 0x80;
}

/// Asynchronous Event Request Limit, 0's based (four outstanding).
pub const AERL: u8 = 3;
/// Abort Command Limit, 0's based.
pub const ACL: u8 = 3;

impl Worker {
    /// Executes an admin command.
    pub(super) fn admin(&mut self, sqe: &Sqe) -> Outcome {
        if sqe.fuse() != 0 || sqe.psdt() != 0 {
            return Outcome::status(Status::INVALID_FIELD);
        }
        match sqe.opcode() {
            opc::DELETE_IO_SQ => self.delete_io_sq(sqe),
            opc::CREATE_IO_SQ => self.create_io_sq(sqe),
            opc::GET_LOG_PAGE => self.get_log_page(sqe),
            opc::DELETE_IO_CQ => self.delete_io_cq(sqe),
            opc::CREATE_IO_CQ => self.create_io_cq(sqe),
            opc::IDENTIFY => self.identify(sqe),
            opc::ABORT => self.abort(sqe),
            opc::SET_FEATURES => self.set_features(sqe),
            opc::GET_FEATURES => self.get_features(sqe),
            opc::ASYNC_EVENT_REQUEST => {
                if self.held.aers.len() > AERL as usize {
                    return Outcome::status(Status::AER_LIMIT_EXCEEDED);
                }
                self.held.aers.push(sqe.cid());
                Outcome::Held
            }
            opc::KEEP_ALIVE => Outcome::ok(0),
            opc::DOORBELL_BUFFER_CONFIG if self.sh.cfg.shadow_doorbells => {
                self.doorbell_buffer_config(sqe)
            }
            opc::FORMAT_NVM => self.format_nvm(sqe),
            _ => Outcome::status(Status::INVALID_OPCODE),
        }
    }

    /// Checks QID and QSIZE of a Create I/O SQ/CQ (CDW10), returning (qid, entries).
    fn new_queue_params(&self, sqe: &Sqe, exists: bool) -> Result<(u16, u16), Status> {
        let qid = sqe.cdw10 as u16;
        let entries = (sqe.cdw10 >> 16) + 1;
        if qid == 0 || qid > self.sh.cfg.max_io_queue_pairs || exists {
            return Err(Status::INVALID_QUEUE_IDENTIFIER);
        }
        if entries < 2 || entries > self.sh.cfg.mqes as u32 + 1 {
            return Err(Status::INVALID_QUEUE_SIZE);
        }
        if sqe.cdw11 & 1 == 0 {
            // CAP.CQR = 1: queues must be physically contiguous (PC = 1).
            return Err(Status::INVALID_FIELD);
        }
        if sqe.prp1 % self.page as u64 != 0 {
            return Err(Status::PRP_OFFSET_INVALID);
        }
        Ok((qid, entries as u16))
    }

    fn create_io_cq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw10 as u16;
        let exists = self.cqs.get(qid as usize).is_some_and(|q| q.is_some());
        let (qid, entries) = match self.new_queue_params(sqe, exists) {
            Ok(p) => p,
            Err(s) => return Outcome::status(s),
        };
        if dma::resolve(sqe.prp1, entries as usize * CQE_SIZE).is_err() {
            return Outcome::status(Status::DATA_TRANSFER_ERROR);
        }
        // The shadow and EventIdx slots are left as they are (see `shadow`).
        self.cqs[qid as usize] = Some(CompQueue::new(sqe.prp1, entries, true));
        Outcome::ok(0)
    }

    fn create_io_sq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw10 as u16;
        let exists = self.sqs.get(qid as usize).is_some_and(|q| q.is_some());
        let (qid, entries) = match self.new_queue_params(sqe, exists) {
            Ok(p) => p,
            Err(s) => return Outcome::status(s),
        };
        let cqid = (sqe.cdw11 >> 16) as u16;
        let Some(cq) = self
            .cqs
            .get_mut(cqid as usize)
            .and_then(|c| c.as_mut())
            .filter(|_| cqid != 0)
        else {
            return Outcome::status(Status::COMPLETION_QUEUE_INVALID);
        };
        if dma::resolve(sqe.prp1, entries as usize * SQE_SIZE).is_err() {
            return Outcome::status(Status::DATA_TRANSFER_ERROR);
        }
        cq.sqs += 1;
        cq.pending.reserve(entries as usize);
        self.sqs[qid as usize] = Some(SubQueue::new(sqe.prp1, entries, cqid));
        Outcome::ok(0)
    }

    fn delete_io_sq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw10 as u16;
        if qid == 0 || self.sqs.get(qid as usize).map_or(true, |q| q.is_none()) {
            return Outcome::status(Status::INVALID_QUEUE_IDENTIFIER);
        }
        // Commands the controller still holds for this SQ complete as aborted.
        let mut i = 0;
        while i < self.held.delayed.len() {
            if self.held.delayed[i].sqid == qid {
                let d = self.held.delayed.swap_remove(i);
                self.complete(qid, d.sqe.cid(), 0, Status::ABORTED_SQ_DELETION);
            } else {
                i += 1;
            }
        }
        while let Some(i) = self.held.lost.iter().position(|k| k.0 == qid) {
            let (_, cid) = self.held.lost.swap_remove(i);
            self.complete(qid, cid, 0, Status::ABORTED_SQ_DELETION);
        }
        self.held.abort_pending.retain(|k| k.0 != qid);
        self.held.reposts.retain(|k| k.0 != qid);
        // Commands submitted but not yet fetched are aborted too.
        if let Some(tail) = self.sq_tail_at_deletion(qid) {
            while let Some(sq) = self.sqs[qid as usize].as_mut().filter(|q| q.head != tail) {
                let mut b = [0u8; 4];
                let fetched = dma::read(sq.entry_addr(sq.head), &mut b);
                sq.head = (sq.head + 1) % sq.size;
                if fetched.is_ok() {
                    let cid = (u32::from_le_bytes(b) >> 16) as u16;
                    self.complete(qid, cid, 0, Status::ABORTED_SQ_DELETION);
                }
            }
        }
        if let Some(sq) = self.sqs[qid as usize].take() {
            if let Some(cq) = self.cqs[sq.cqid as usize].as_mut() {
                cq.sqs -= 1;
            }
        }
        Outcome::ok(0)
    }

    fn delete_io_cq(&mut self, sqe: &Sqe) -> Outcome {
        let qid = sqe.cdw10 as u16;
        match self.cqs.get(qid as usize).and_then(|q| q.as_ref()) {
            Some(_) if qid == 0 => Outcome::status(Status::INVALID_QUEUE_IDENTIFIER),
            None => Outcome::status(Status::INVALID_QUEUE_IDENTIFIER),
            Some(cq) if cq.sqs > 0 => Outcome::status(Status::INVALID_QUEUE_DELETION),
            Some(_) => {
                self.cqs[qid as usize] = None;
                Outcome::ok(0)
            }
        }
    }

    /// Abort (CDW10: SQID 15:0, CID 31:16). Completion dword 0 bit 0 is 0
    /// when the command was aborted, 1 when it was not found.
    fn abort(&mut self, sqe: &Sqe) -> Outcome {
        let sqid = sqe.cdw10 as u16;
        let cid = (sqe.cdw10 >> 16) as u16;
        if let Some(i) = self
            .held
            .delayed
            .iter()
            .position(|d| d.sqid == sqid && d.sqe.cid() == cid)
        {
            self.held.delayed.swap_remove(i);
            self.complete(sqid, cid, 0, Status::ABORT_REQUESTED);
            return Outcome::ok(0);
        }
        if let Some(i) = self.held.lost.iter().position(|k| *k == (sqid, cid)) {
            self.held.lost.swap_remove(i);
            self.complete(sqid, cid, 0, Status::ABORT_REQUESTED);
            return Outcome::ok(0);
        }
        if self.still_queued(sqid, cid) && self.held.abort_pending.len() <= ACL as usize {
            self.held.abort_pending.push((sqid, cid));
            return Outcome::ok(0);
        }
        Outcome::ok(1)
    }

    /// True if an entry with `cid` sits between head and tail of SQ `sqid`.
    fn still_queued(&self, sqid: u16, cid: u16) -> bool {
        let Some(sq) = self.sqs.get(sqid as usize).and_then(|q| q.as_ref()) else {
            return false;
        };
        let mut i = sq.head;
        while i != sq.tail {
            let mut b = [0u8; 4];
            if dma::read(sq.entry_addr(i), &mut b).is_ok()
                && u32::from_le_bytes(b) >> 16 == cid as u32
            {
                return true;
            }
            i = (i + 1) % sq.size;
        }
        false
    }

    /// Doorbell Buffer Config: PRP1 = shadow doorbell buffer, PRP2 = EventIdx
    /// buffer, each one memory page. Applies to I/O queues.
    fn doorbell_buffer_config(&mut self, sqe: &Sqe) -> Outcome {
        let page = self.page as u64;
        let (shadow, eventidx) = (sqe.prp1, sqe.prp2);
        if shadow == 0 || eventidx == 0 || shadow % page != 0 || eventidx % page != 0 {
            return Outcome::status(Status::INVALID_FIELD);
        }
        if dma::resolve(shadow, self.page).is_err() || dma::resolve(eventidx, self.page).is_err() {
            return Outcome::status(Status::DATA_TRANSFER_ERROR);
        }
        self.dbbuf = Some(DbBuf { shadow, eventidx });
        self.seed_shadow_slots();
        Outcome::ok(0)
    }

    /// Format NVM (CDW10: LBAF 3:0, MSET 4, PI 7:5, SES 11:9): zeroes the
    /// namespace (or all, NSID FFFFFFFFh) and applies the LBA format.
    fn format_nvm(&mut self, sqe: &Sqe) -> Outcome {
        let lbaf = sqe.cdw10 & 0xf;
        let pi = sqe.cdw10 >> 5 & 0x7;
        if lbaf > 1 || pi != 0 {
            return Outcome::status(Status::INVALID_FORMAT);
        }
        let shift = if lbaf == 0 { 9 } else { 12 };
        let all = sqe.nsid == u32::MAX;
        if !all && self.sh.namespace(sqe.nsid).is_none() {
            return Outcome::status(Status::INVALID_NAMESPACE_OR_FORMAT);
        }
        for ns in self
            .sh
            .namespaces
            .iter()
            .filter(|n| all || n.nsid == sqe.nsid)
        {
            let mut d = ns.lock();
            d.bytes.fill(0);
            d.lba_shift = shift;
        }
        Outcome::ok(0)
    }
}
