//! Abort of an I/O command over TCP (SPDK's `nvmf_tcp_qpair_abort_request`):
//! the admin queue posts it into the controller's mailbox and holds the
//! Abort; the I/O queue answers at its next poll, taking back a command
//! whose data is still arriving (it completes as aborted once the data is
//! in, never reaching the bdev), one still waiting for a shared data
//! buffer (it completes as aborted at once) or a fused first half waiting
//! for its second; the admin queue then completes the Abort (Dword 0 bit 0
//! clear: aborted), or "not aborted" after the mailbox's timeout.

use super::conn::Conn;
use super::slot::SlotState;
use crate::nvme::spec::status::generic;
use crate::nvmf::Completion;
use std::time::Instant;

impl Conn {
    /// Abort (slot `i`, admin queue) of a command of one of this
    /// controller's I/O queues: posted for that queue to answer. False
    /// when SQID names no connected I/O queue (answered "not aborted").
    pub(super) fn abort_io(&mut self, i: u16) -> bool {
        let Some(q) = &self.queue else { return false };
        let cdw10 = self.slots[i as usize].sqe.cdw10;
        let (sqid, cid) = (cdw10 as u16, (cdw10 >> 16) as u16);
        if !q.ctrlr.has_io_queue(sqid) {
            return false;
        }
        q.ctrlr.keep_alive();
        let Some(ticket) = q.ctrlr.aborts().post(sqid, cid) else {
            return false;
        };
        let s = &mut self.slots[i as usize];
        s.ticket = ticket;
        s.state = SlotState::AbortWait;
        self.abort_waits += 1;
        true
    }

    /// On an I/O queue: answers the Aborts posted for it. On an admin
    /// queue: completes the Aborts whose answer came (or, given `now`,
    /// whose wait timed out). True when something was done.
    pub(super) fn poll_aborts(&mut self, now: Option<Instant>) -> bool {
        let Some(q) = &self.queue else { return false };
        if q.qid != 0 {
            if !q.ctrlr.aborts().has_unanswered() {
                return false;
            }
            let (ctrlr, qid) = (q.ctrlr.clone(), q.qid);
            ctrlr.aborts().answer(qid, |cid| self.take_back_cmd(cid));
            return true;
        }
        if self.abort_waits == 0 {
            return false;
        }
        let ctrlr = q.ctrlr.clone();
        let mut busy = false;
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.state != SlotState::AbortWait {
                continue;
            }
            if let Some(aborted) = ctrlr.aborts().take_answer(s.ticket, now) {
                self.abort_waits -= 1;
                // Dword 0 bit 0: set when the command was not aborted.
                self.respond(i as u16, Completion::ok(u32::from(!aborted)));
                busy = true;
            }
        }
        busy
    }

    /// Takes command `cid` of this I/O queue back if it has not reached
    /// the bdev layer: `Some(true)` when taken, `Some(false)` when it is
    /// past that, `None` when no such command is here.
    fn take_back_cmd(&mut self, cid: u16) -> Option<bool> {
        let i = self.slots.iter().position(|s| {
            matches!(
                s.state,
                SlotState::InCapsule
                    | SlotState::AwaitH2c
                    | SlotState::Exec
                    | SlotState::NeedBuffer
            ) && s.sqe.cid() == cid
                && !s.aborted
        })?;
        match self.slots[i].state {
            SlotState::InCapsule | SlotState::AwaitH2c => {
                log::info!(
                    "nvmf/tcp: {}: command {cid} aborted while its data arrives",
                    self.peer()
                );
                self.slots[i].aborted = true;
                Some(true)
            }
            SlotState::NeedBuffer => {
                // Still waiting for a data buffer: it completes now (its
                // place in the group's queue is left stale).
                self.respond(i as u16, Completion::generic(generic::ABORT_REQUESTED));
                Some(true)
            }
            SlotState::Exec if self.fused_first == Some(i as u16) => {
                self.fused_first = None;
                self.respond(i as u16, Completion::generic(generic::ABORT_REQUESTED));
                Some(true)
            }
            _ => Some(false),
        }
    }

    /// Forgets this admin queue's waiting Aborts (it is closing).
    pub(super) fn cancel_aborts(&mut self) {
        if self.abort_waits == 0 {
            return;
        }
        let Some(ctrlr) = self.queue.as_ref().map(|q| q.ctrlr.clone()) else {
            return;
        };
        for i in 0..self.slots.len() {
            if self.slots[i].state == SlotState::AbortWait {
                ctrlr.aborts().cancel(self.slots[i].ticket);
                self.release(i as u16);
            }
        }
        self.abort_waits = 0;
    }
}
