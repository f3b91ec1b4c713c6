//! Fault injection: rules that change what the controller does with the next
//! commands matching a pattern, plus controller-wide faults.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{Sqe, Status};

/// Which queue a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueueSel {
    Admin,
    Io,
    Any,
}

type Predicate = Arc<dyn Fn(&Sqe) -> bool + Send + Sync>;

/// Which commands a fault applies to. Every condition given must hold.
#[derive(Clone)]
pub struct CommandMatch {
    queue: QueueSel,
    opcode: Option<u8>,
    nsid: Option<u32>,
    lba: Option<Range<u64>>,
    predicate: Option<Predicate>,
}

impl std::fmt::Debug for CommandMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandMatch")
            .field("queue", &self.queue)
            .field("opcode", &self.opcode)
            .field("nsid", &self.nsid)
            .field("lba", &self.lba)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

impl CommandMatch {
    fn new(queue: QueueSel, opcode: Option<u8>) -> Self {
        Self {
            queue,
            opcode,
            nsid: None,
            lba: None,
            predicate: None,
        }
    }
    /// Admin commands with this opcode.
    pub fn admin(opcode: u8) -> Self {
        Self::new(QueueSel::Admin, Some(opcode))
    }
    /// NVM commands (on I/O queues) with this opcode.
    pub fn io(opcode: u8) -> Self {
        Self::new(QueueSel::Io, Some(opcode))
    }
    /// Every NVM command.
    pub fn any_io() -> Self {
        Self::new(QueueSel::Io, None)
    }
    /// Every command on any queue.
    pub fn any() -> Self {
        Self::new(QueueSel::Any, None)
    }
    /// Only commands for this namespace.
    pub fn nsid(mut self, nsid: u32) -> Self {
        self.nsid = Some(nsid);
        self
    }
    /// Only Read, Write, Compare and Write Zeroes whose blocks overlap `lbas`.
    pub fn lba_range(mut self, lbas: Range<u64>) -> Self {
        self.lba = Some(lbas);
        self
    }
    /// Only commands for which `f` returns true.
    pub fn when(mut self, f: impl Fn(&Sqe) -> bool + Send + Sync + 'static) -> Self {
        self.predicate = Some(Arc::new(f));
        self
    }

    fn matches(&self, admin: bool, sqe: &Sqe) -> bool {
        let queue_ok = match self.queue {
            QueueSel::Admin => admin,
            QueueSel::Io => !admin,
            QueueSel::Any => true,
        };
        let lba_ok = self.lba.as_ref().map_or(true, |r| {
            !admin
                && matches!(sqe.opcode(), 0x01 | 0x02 | 0x05 | 0x08)
                && sqe.slba() < r.end
                && sqe.slba().saturating_add(sqe.nlb()) > r.start
        });
        queue_ok
            && self.opcode.map_or(true, |o| o == sqe.opcode())
            && self.nsid.map_or(true, |n| n == sqe.nsid)
            && lba_ok
            && self.predicate.as_ref().map_or(true, |p| p(sqe))
    }
}

/// What happens to a matching command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Not executed; completes with this status.
    Status(Status),
    /// Executed, but no completion is posted. The command stays known to the
    /// controller, so an Abort for it completes it with Command Abort Requested.
    DropCompletion,
    /// Executed (and completed) only after this delay; an Abort before then
    /// cancels it.
    Delay(Duration),
    /// The controller fails: CSTS.CFS is set and nothing more is processed
    /// until a reset (CC.EN 1→0).
    Fatal,
    /// Executed and completed, and the same completion entry (same CID) is
    /// posted a second time when the next command is fetched from the same
    /// submission queue: a late duplicate, which arrives once the host may
    /// have given that command ID to a new command.
    RepostCompletion,
}

struct Rule {
    matcher: CommandMatch,
    action: FaultAction,
    remaining: u32,
}

/// Shared fault state (the worker side).
#[derive(Default)]
pub struct FaultState {
    armed: AtomicBool,
    rules: Mutex<Vec<Rule>>,
    fatal_now: AtomicBool,
    never_ready: AtomicBool,
}

impl FaultState {
    fn rules(&self) -> MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The action for a fetched command, consuming one use of the first matching rule.
    pub fn take(&self, admin: bool, sqe: &Sqe) -> Option<FaultAction> {
        if !self.armed.load(Ordering::Acquire) {
            return None;
        }
        let mut rules = self.rules();
        let i = rules.iter().position(|r| r.matcher.matches(admin, sqe))?;
        let action = rules[i].action;
        rules[i].remaining -= 1;
        if rules[i].remaining == 0 {
            rules.remove(i);
        }
        self.armed.store(!rules.is_empty(), Ordering::Release);
        Some(action)
    }

    /// True (once) when a fatal error was requested with [`Faults::fatal_now`].
    pub fn take_fatal_now(&self) -> bool {
        self.fatal_now.swap(false, Ordering::AcqRel)
    }

    /// True while the controller must never become ready.
    pub fn never_ready(&self) -> bool {
        self.never_ready.load(Ordering::Acquire)
    }
}

/// Cloneable handle to inject faults into a running controller.
#[derive(Clone)]
pub struct Faults(pub(crate) Arc<FaultState>);

impl Faults {
    /// Applies `action` to the next `count` commands matching `m` (rules are
    /// tried in the order they were added; each command triggers at most one).
    pub fn inject(&self, m: CommandMatch, action: FaultAction, count: u32) {
        if count == 0 {
            return;
        }
        let mut rules = self.0.rules();
        rules.push(Rule {
            matcher: m,
            action,
            remaining: count,
        });
        self.0.armed.store(true, Ordering::Release);
    }
    /// Completes the next `count` matching commands with `status`, unexecuted.
    pub fn fail_next(&self, m: CommandMatch, status: Status, count: u32) {
        self.inject(m, FaultAction::Status(status), count)
    }
    /// Executes the next `count` matching commands without posting their completions.
    pub fn drop_completions(&self, m: CommandMatch, count: u32) {
        self.inject(m, FaultAction::DropCompletion, count)
    }
    /// Holds the next `count` matching commands for `delay` before executing them.
    pub fn delay_next(&self, m: CommandMatch, delay: Duration, count: u32) {
        self.inject(m, FaultAction::Delay(delay), count)
    }
    /// Completes the next `count` matching commands twice: normally, and
    /// again when the next command is fetched from the same queue
    /// ([`FaultAction::RepostCompletion`]).
    pub fn repost_completions(&self, m: CommandMatch, count: u32) {
        self.inject(m, FaultAction::RepostCompletion, count)
    }
    /// Makes the controller fatal when the next matching command is fetched.
    pub fn fatal_on_next(&self, m: CommandMatch) {
        self.inject(m, FaultAction::Fatal, 1)
    }
    /// Makes the controller fatal now (CSTS.CFS = 1) if it is enabled.
    pub fn fatal_now(&self) {
        self.0.fatal_now.store(true, Ordering::Release)
    }
    /// While on, CC.EN = 1 never leads to CSTS.RDY = 1.
    pub fn set_never_ready(&self, on: bool) {
        self.0.never_ready.store(on, Ordering::Release)
    }
    /// Number of command rules not yet used up.
    pub fn pending_rules(&self) -> usize {
        self.0.rules().len()
    }
    /// Removes every rule and the never-ready fault.
    pub fn clear(&self) {
        self.0.rules().clear();
        self.0.armed.store(false, Ordering::Release);
        self.0.never_ready.store(false, Ordering::Release);
        self.0.fatal_now.store(false, Ordering::Release);
    }
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("pending_rules", &self.pending_rules())
            .field("never_ready", &self.0.never_ready())
            .finish()
    }
}
