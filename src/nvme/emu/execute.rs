//! Executing fetched commands: fault injection, held commands (delayed,
//! dropped, Asynchronous Event Requests), and posting completions.

use std::time::Instant;

use super::events::AsyncEvent;
use super::faults::FaultAction;
use super::stats::bump;
use super::worker::Worker;
use super::{Cqe, Sqe, Status};

/// The result of executing a command.
pub(super) enum Outcome {
    /// Post a completion now.
    Done { dw0: u32, status: Status },
    /// The command stays with the controller (an Asynchronous Event Request).
    Held,
}

impl Outcome {
    pub fn status(status: Status) -> Self {
        Self::Done { dw0: 0, status }
    }
    pub fn ok(dw0: u32) -> Self {
        Self::Done {
            dw0,
            status: Status::SUCCESS,
        }
    }
}

/// A command held back by a Delay fault.
pub(super) struct Delayed {
    pub due: Instant,
    pub sqid: u16,
    pub sqe: Sqe,
}

/// Commands the controller holds without a completion.
#[derive(Default)]
pub(super) struct Held {
    /// CIDs of outstanding Asynchronous Event Requests.
    pub aers: Vec<u16>,
    /// Delayed commands.
    pub delayed: Vec<Delayed>,
    /// (SQID, CID) of commands whose completion was dropped.
    pub lost: Vec<(u16, u16)>,
    /// (SQID, CID) of commands still in their SQ that an Abort targeted.
    pub abort_pending: Vec<(u16, u16)>,
    /// Completions to post again when the next command of their SQ is
    /// fetched: (SQID, CID, Dword 0, status).
    pub reposts: Vec<(u16, u16, u32, Status)>,
}

impl Worker {
    /// Applies faults and executes one fetched command.
    pub(super) fn dispatch(&mut self, sqid: u16, sqe: Sqe) {
        let admin = sqid == 0;
        self.sh.stats.command(admin, sqe.opcode());
        if !self.held.reposts.is_empty() {
            self.repost(sqid);
        }
        let key = (sqid, sqe.cid());
        if let Some(i) = self.held.abort_pending.iter().position(|k| *k == key) {
            self.held.abort_pending.swap_remove(i);
            self.complete(sqid, sqe.cid(), 0, Status::ABORT_REQUESTED);
            return;
        }
        let fault = self.sh.faults.take(admin, &sqe);
        match fault {
            Some(FaultAction::Status(s)) => return self.complete(sqid, sqe.cid(), 0, s),
            Some(FaultAction::Delay(d)) => {
                let due = Instant::now() + d;
                self.held.delayed.push(Delayed { due, sqid, sqe });
                return;
            }
            Some(FaultAction::Fatal) => return self.go_fatal("fault injected on command"),
            Some(FaultAction::DropCompletion | FaultAction::RepostCompletion) | None => {}
        }
        let repost = fault == Some(FaultAction::RepostCompletion);
        self.execute(
            sqid,
            sqe,
            fault == Some(FaultAction::DropCompletion),
            repost,
        );
    }

    /// Posts again the completions held for a repost on SQ `sqid`.
    fn repost(&mut self, sqid: u16) {
        let mut i = 0;
        while i < self.held.reposts.len() {
            if self.held.reposts[i].0 != sqid {
                i += 1;
                continue;
            }
            let (_, cid, dw0, status) = self.held.reposts.remove(i);
            self.complete(sqid, cid, dw0, status);
        }
    }

    fn execute(&mut self, sqid: u16, sqe: Sqe, drop_completion: bool, repost: bool) {
        let outcome = if sqid == 0 {
            self.admin(&sqe)
        } else {
            self.nvm(sqid, &sqe)
        };
        if let Outcome::Done { dw0, status } = outcome {
            if drop_completion {
                bump(&self.sh.stats.dropped_completions, 1);
                self.held.lost.push((sqid, sqe.cid()));
            } else {
                self.complete(sqid, sqe.cid(), dw0, status);
                if repost {
                    self.held.reposts.push((sqid, sqe.cid(), dw0, status));
                }
            }
        }
    }

    pub(super) fn release_delayed(&mut self) -> bool {
        if self.held.delayed.is_empty() {
            return false;
        }
        let now = Instant::now();
        let mut worked = false;
        while let Some(i) = self.held.delayed.iter().position(|d| d.due <= now) {
            let d = self.held.delayed.swap_remove(i);
            self.execute(d.sqid, d.sqe, false, false);
            worked = true;
        }
        worked
    }

    /// Completes outstanding AERs with queued events that are enabled and unmasked.
    pub(super) fn deliver_events(&mut self) -> bool {
        self.sh.events.drain_into(&mut self.events);
        let mut worked = false;
        let mut i = 0;
        while i < self.events.len() && !self.held.aers.is_empty() {
            let ev = self.events[i];
            let ty = ev.event_type();
            if !self.features.event_enabled(&ev) {
                self.events.remove(i);
                continue;
            }
            if self.event_mask & (1 << ty) != 0 {
                i += 1;
                continue;
            }
            self.events.remove(i);
            if let AsyncEvent::NamespaceAttributeChanged(nsid) = ev {
                if !self.changed_ns.contains(&nsid) && self.changed_ns.len() < 1024 {
                    self.changed_ns.push(nsid);
                }
            }
            self.event_mask |= 1 << ty;
            let cid = self.held.aers.remove(0);
            self.complete(0, cid, ev.dw0(), Status::SUCCESS);
            worked = true;
        }
        worked
    }

    /// Posts (or queues, if the CQ is full) the completion of command `cid` from SQ `sqid`.
    pub(super) fn complete(&mut self, sqid: u16, cid: u16, dw0: u32, status: Status) {
        let Some(sq) = self.sqs[sqid as usize].as_ref() else {
            return;
        };
        let (cqid, head) = (sq.cqid, sq.head);
        if !status.is_success() {
            self.errlog.record(sqid, cid, status);
        }
        let cqe = Cqe {
            dw0,
            sqid,
            cid,
            status,
        };
        let Some(cq) = self.cqs[cqid as usize].as_mut() else {
            return;
        };
        // Behind any completion still waiting for room, in order.
        cq.pending.push_back((cqe, head));
        self.post_pending(cqid);
    }

    /// A CQE could not be written: the CQ is not in DMA memory.
    pub(super) fn post_faulted(&mut self) {
        bump(&self.sh.stats.dma_faults, 1);
        self.go_fatal("completion queue memory is not DMA memory");
    }
}
