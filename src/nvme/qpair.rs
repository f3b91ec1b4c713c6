//! I/O queue pairs: allocation, polled completion, timeouts, recovery after
//! a controller reset, and deletion. The submission commands are in `io.rs`.

use super::buffer::{IoBuf, IoCompletion};
use super::controller::{Controller, CtrlrInner};
use super::queue::{CqRing, Doorbell, SqRing};
use super::request::{Finished, Live, RequestPool, NO_PARENT};
use super::spec::registers::{cq_head_doorbell, sq_tail_doorbell};
use super::spec::Cqe;
use super::stat::PcieStat;
use super::NvmeError;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options for an I/O queue pair (SPDK's `spdk_nvme_io_qpair_opts`).
#[derive(Debug, Clone)]
pub struct QPairOpts {
    /// Entries in the submission and completion queues (2..=CAP.MQES+1).
    pub io_queue_size: u32,
    /// Requests preallocated (each with a PRP list page). At most
    /// `io_queue_size - 1`, so the submission queue can never overflow; 0 means that maximum.
    pub io_queue_requests: u32,
    /// Don't ring the SQ tail doorbell on every submission: ring once in
    /// [`QPair::flush`] or at the next [`QPair::process_completions`].
    pub delay_cmd_submit: bool,
    /// With `delay_cmd_submit` over PCIe: also ring the SQ tail doorbell as
    /// soon as this many commands wait for it, so the controller can start
    /// on the first ones of a long batch while the rest are built. 0 (the
    /// default) rings only in [`QPair::flush`] or the next poll. No effect
    /// over NVMe/TCP, whose commands go out at the flush.
    pub sq_ring_every: u16,
    /// Per-command timeout; `None` disables timeout tracking (no clock read per I/O).
    pub timeout: Option<Duration>,
}

/// Polls without a completion, with commands outstanding, between two
/// looks at the clock of a stalled queue pair: after [`STALL_KICK_TIME`]
/// more without one it re-rings its doorbells by MMIO, and again every
/// `STALL_KICK_TIME` while the stall lasts ([`QPair::process_completions`]).
/// The first re-ring thus comes after at least twice this many polls.
pub const STALL_KICK_POLLS: u64 = 1 << 12;

/// How long a queue pair waits without a completion, past its first
/// [`STALL_KICK_POLLS`] idle polls, before it re-rings its doorbells.
/// QEMU's NVMe controller under TCG sometimes leaves a rung doorbell
/// unprocessed until the next register write (its main loop is not woken,
/// or not scheduled): a re-ring brings the completions within about 100
/// µs, where waiting cost 16 ms and more per occurrence.
pub const STALL_KICK_TIME: Duration = Duration::from_millis(1);

impl Default for QPairOpts {
    fn default() -> Self {
        QPairOpts {
            io_queue_size: 256,
            io_queue_requests: 0,
            delay_cmd_submit: false,
            sq_ring_every: 0,
            timeout: None,
        }
    }
}

/// [`QPair::push_ring`](QPair) of `opts`: submissions not delayed ring at
/// once (1); delayed ones every `sq_ring_every` (0: never at the push).
pub(super) fn push_ring(opts: &QPairOpts) -> u16 {
    if opts.delay_cmd_submit {
        opts.sq_ring_every
    } else {
        1
    }
}

/// What to do with a command that timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// Send an Abort for it (the default the first time).
    Abort,
    /// Reset the controller: every command in flight fails with `AbortedByReset`.
    Reset,
    /// Keep waiting.
    Ignore,
}

/// A command that exceeded the qpair's timeout.
#[derive(Debug, Clone, Copy)]
pub struct TimedOutCommand {
    /// Submission queue ID.
    pub qid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Opcode.
    pub opc: u8,
    /// True when an Abort was already sent for it.
    pub abort_sent: bool,
}

/// The handler of tagged completions on the cold paths (recovery, timeouts).
pub(crate) type OnTag<'a> = &'a mut dyn FnMut(u64, Result<(), NvmeError>);

/// Timeout callback: decides what to do with each timed-out command.
pub type TimeoutCallback = Box<dyn FnMut(TimedOutCommand) -> TimeoutAction>;

/// An I/O submission/completion queue pair (SPDK's `spdk_nvme_qpair`).
///
/// **`!Send` by design**: a qpair and all its requests belong to the thread
/// that allocated it — no lock or atomic on the I/O path. Allocate one per
/// thread with [`Controller::alloc_io_qpair`] (the controller is `Sync`).
///
/// Completion callbacks are `FnOnce(&mut QPair, IoCompletion)`, stored inline
/// in the preallocated request (no allocation per I/O); they receive the
/// qpair so they can submit follow-up I/O.
pub struct QPair {
    pub(super) ctrlr: Arc<CtrlrInner>,
    pub(super) qid: u16,
    pub(super) sq: SqRing,
    pub(super) cq: CqRing,
    pub(super) pool: RequestPool,
    pub(super) opts: QPairOpts,
    pub(super) generation: u64,
    pub(super) max_xfer: usize,
    /// SGL support to use for data (Identify SGLS bits 1:0; 0 = PRPs only).
    pub(super) sgls: u8,
    pub(super) outstanding: usize,
    pub(super) timeout_cb: Option<TimeoutCallback>,
    pub(super) next_timeout_check: Option<Instant>,
    /// The counters kept here; the doorbell ones live in the doorbells
    /// and are filled in by [`QPair::pcie_stat`].
    pub(super) stat: PcieStat,
    /// When a submission rings the SQ doorbell: 0 never (delayed until
    /// the flush or the next poll), 1 always, N once N submissions wait
    /// ([`push_ring`]).
    pub(super) push_ring: u16,
    /// Consecutive polls that found nothing while commands were outstanding.
    pub(super) stalled_polls: u64,
    /// When the current stall was first noticed, or last re-rung for
    /// ([`STALL_KICK_POLLS`]).
    pub(super) stall_clock: Option<Instant>,
    /// When the doorbells were last re-rung for the current stall.
    pub(super) kicked_at: Option<Instant>,
    /// What [`QPair::shutdown`] answered once it ran: whether the device
    /// is done with the memory of the commands it dropped.
    pub(super) shut_down: Option<bool>,
    /// The connection of an NVMe/TCP queue pair (`None` over PCIe).
    pub(super) tcp: Option<Box<super::qpair_tcp::TcpIo>>,
    pub(super) _not_send: PhantomData<*const ()>,
}

impl Controller {
    /// Allocates an I/O queue pair: a free queue ID, rings in DMA memory,
    /// Create I/O CQ then Create I/O SQ, and the request pool.
    pub fn alloc_io_qpair(&self, opts: QPairOpts) -> Result<QPair, NvmeError> {
        let c = &self.inner;
        let max = c.cap.max_queue_entries().min(65536);
        if opts.io_queue_size < 2 || opts.io_queue_size > max {
            return Err(NvmeError::InvalidArgument(format!(
                "io_queue_size {} must be within 2..={max} (CAP.MQES+1)",
                opts.io_queue_size
            )));
        }
        let entries = opts.io_queue_size.min(u16::MAX as u32) as u16;
        let nreq = match opts.io_queue_requests {
            0 => entries - 1,
            n => n.min(entries as u32 - 1) as u16,
        };
        let qid = {
            let mut q = c.qids.lock().unwrap();
            let granted = q.len().saturating_sub(1) as u16;
            let qid = q
                .iter()
                .position(|used| !used)
                .ok_or(NvmeError::NoFreeQueue(granted))?;
            q[qid] = true;
            qid as u16
        };
        let release_qid = || c.qids.lock().unwrap()[qid as usize] = false;
        let build = || -> Result<QPair, NvmeError> {
            let Some(p) = c.pcie() else {
                return QPair::new_tcp(c, qid, entries, nreq, opts);
            };
            let sq_db = Doorbell::new(
                &p.regs.bar,
                sq_tail_doorbell(qid, p.dstrd),
                c.shadow_slot(2 * qid as usize),
            )?;
            let cq_db = Doorbell::new(
                &p.regs.bar,
                cq_head_doorbell(qid, p.dstrd),
                c.shadow_slot(2 * qid as usize + 1),
            )?;
            let sq = SqRing::new(entries, sq_db)?;
            let cq = CqRing::new(entries, cq_db)?;
            let pool = RequestPool::new(nreq, true)?;
            let generation = c.generation.load(Ordering::Acquire);
            if generation % 2 == 1 {
                return Err(NvmeError::ControllerUnavailable);
            }
            c.create_io_cq(qid, entries, cq.iova())?;
            if let Err(e) = c.create_io_sq(qid, entries, sq.iova()) {
                let _ = c.delete_io_cq(qid);
                return Err(e);
            }
            Ok(QPair {
                ctrlr: c.clone(),
                qid,
                sq,
                cq,
                pool,
                push_ring: push_ring(&opts),
                next_timeout_check: opts.timeout.map(|_| Instant::now()),
                opts,
                generation,
                max_xfer: c.max_xfer,
                sgls: if c.opts.use_sgl {
                    (c.cdata.sgls & 0x3) as u8
                } else {
                    0
                },
                outstanding: 0,
                timeout_cb: None,
                stat: PcieStat::default(),
                stalled_polls: 0,
                stall_clock: None,
                kicked_at: None,
                shut_down: None,
                tcp: None,
                _not_send: PhantomData,
            })
        };
        build().inspect_err(|_| release_qid())
    }
}

impl std::fmt::Debug for QPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QPair")
            .field("qid", &self.qid)
            .field("entries", &self.sq.entries())
            .field("outstanding", &self.outstanding)
            .finish_non_exhaustive()
    }
}

impl QPair {
    /// Queue ID.
    pub fn qid(&self) -> u16 {
        self.qid
    }
    /// Requests in flight (submitted, not yet completed).
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }
    /// Free requests: how many more single-command I/Os can be submitted now.
    pub fn free_requests(&self) -> usize {
        self.pool.free_count()
    }
    /// Entries in the submission queue.
    pub fn queue_size(&self) -> u16 {
        self.sq.entries()
    }
    /// Largest transfer of one command; bigger I/Os are split into several.
    pub fn max_transfer_size(&self) -> usize {
        self.max_xfer
    }

    /// Sets the callback consulted when a command times out (needs
    /// `QPairOpts::timeout`). Without one, a timed-out command is aborted,
    /// and if it times out again the controller is reset.
    pub fn set_timeout_callback(
        &mut self,
        cb: impl FnMut(TimedOutCommand) -> TimeoutAction + 'static,
    ) {
        self.timeout_cb = Some(Box::new(cb));
    }

    /// This queue pair's transport counters (SPDK's `spdk_nvme_pcie_stat`).
    pub fn pcie_stat(&self) -> PcieStat {
        PcieStat {
            sq_mmio_doorbell_updates: self.sq.db.mmio_writes,
            cq_mmio_doorbell_updates: self.cq.db.mmio_writes,
            sq_shadow_doorbell_updates: self.sq.db.shadow_writes,
            cq_shadow_doorbell_updates: self.cq.db.shadow_writes,
            ..self.stat
        }
    }

    /// Rings the SQ tail doorbell for commands queued with `delay_cmd_submit`.
    #[inline]
    pub fn flush(&mut self) {
        self.ring_sq();
        if self.tcp.is_some() {
            self.tcp_send();
        }
    }

    /// Processes up to `max` completions (0 = as many as the queue holds),
    /// running each command's callback; writes the CQ head doorbell once,
    /// rings pending submissions, and checks timeouts. Returns the number of
    /// I/Os completed (requests failed by a reset recovery included).
    ///
    /// A command submitted with a tag ([`QPair::rw_tagged`]) needs
    /// [`QPair::process_completions_tagged`]: here its completion is logged
    /// as an error and dropped.
    pub fn process_completions(&mut self, max: usize) -> Result<usize, NvmeError> {
        self.process_completions_tagged(max, |tag, _| {
            log::error!("tagged command {tag:#x} completed without a tag handler; dropped")
        })
    }

    /// As [`QPair::process_completions`], and each command submitted with a
    /// tag ([`QPair::rw_tagged`]) completes by `on_tag(tag, result)`
    /// instead of a callback: one call per command, in completion order,
    /// failures of a reset recovery included.
    pub fn process_completions_tagged<H>(
        &mut self,
        max: usize,
        on_tag: H,
    ) -> Result<usize, NvmeError>
    where
        H: FnMut(u64, Result<(), NvmeError>),
    {
        self.reap_tagged(max, on_tag, true)
    }

    /// As [`QPair::process_completions_tagged`], but submissions queued
    /// with `delay_cmd_submit` stay unrung until [`QPair::flush`] (or the
    /// next `process_completions`).
    ///
    /// For a caller that runs its completion handlers after the reap and
    /// resubmits from them: reaping again before it rings lets the
    /// resubmissions of both reaps go to the controller with one doorbell.
    #[inline]
    pub fn process_completions_tagged_unflushed<H>(
        &mut self,
        max: usize,
        on_tag: H,
    ) -> Result<usize, NvmeError>
    where
        H: FnMut(u64, Result<(), NvmeError>),
    {
        self.reap_tagged(max, on_tag, false)
    }

    /// The reap behind both: `ring_sq` rings pending submissions at the end.
    #[inline(always)]
    fn reap_tagged<H>(
        &mut self,
        max: usize,
        mut on_tag: H,
        ring_sq: bool,
    ) -> Result<usize, NvmeError>
    where
        H: FnMut(u64, Result<(), NvmeError>),
    {
        if self.ctrlr.generation.load(Ordering::Acquire) != self.generation {
            return self.recover_or_closed(&mut on_tag);
        }
        if self.tcp.is_some() {
            return self.reap_tcp(max, &mut on_tag);
        }
        let limit = if max == 0 {
            self.cq.entries() as usize
        } else {
            max
        };
        let mut n = 0;
        while n < limit {
            let Some(cqe) = self.cq.pop_io() else { break };
            n += 1;
            self.sq.head = cqe.sqhd;
            self.complete_cqe(cqe, &mut on_tag);
        }
        self.stat.polls += 1;
        self.stat.completions += n as u64;
        if n == 0 {
            self.stat.idle_polls += 1;
            if self.outstanding > 0 {
                self.stalled_polls += 1;
                if self.stalled_polls % STALL_KICK_POLLS == 0 {
                    self.stall_check();
                }
            }
        } else {
            if self.stalled_polls >= STALL_KICK_POLLS {
                self.stall_ended();
            }
            self.stalled_polls = 0;
        }
        // Commands the controller may still complete (parents included: an over-estimate is safe).
        self.cq.ring_lazy(self.pool.in_flight());
        if ring_sq {
            self.ring_sq();
        }
        if self.next_timeout_check.is_some() {
            self.check_timeouts(&mut on_tag)?;
        }
        Ok(n)
    }

    // Inlined into both reaps (PCIe and TCP): outlined, it cost the PCIe
    // poll about 25 instructions per I/O.
    #[inline(always)]
    pub(super) fn complete_cqe<H: FnMut(u64, Result<(), NvmeError>)>(
        &mut self,
        cqe: Cqe,
        on_tag: &mut H,
    ) {
        let cid = cqe.cid;
        let Some(live) = self.pool.check(cid) else {
            return self.refuse(cid);
        };
        // Successful Completion (SCT and SC, status bits 11:1, all zero) of
        // a command of its own: the common case, tested on the raw field
        // before anything is decoded, with the result a constant.
        if cqe.status & 0x0ffe == 0 && live.parent == NO_PARENT {
            return self.finish_live(live, Ok(()), cqe.dw0, on_tag);
        }
        self.complete_other(cqe, live.parent, on_tag)
    }

    /// A failed command, or a child of a split I/O.
    #[inline(never)]
    fn complete_other<H: FnMut(u64, Result<(), NvmeError>)>(
        &mut self,
        cqe: Cqe,
        parent: u16,
        on_tag: &mut H,
    ) {
        let cid = cqe.cid;
        let result = if cqe.status & 0x0ffe == 0 {
            Ok(())
        } else {
            Err(self.command_error(cid, cqe))
        };
        if parent == NO_PARENT {
            return self.finish(cid, result, cqe.dw0, on_tag);
        }
        if let Some((top, r)) = self.pool.child_done(cid, parent, result) {
            self.finish(top, r, 0, on_tag);
        }
    }

    /// The error of a command that completed with a failure status.
    #[cold]
    #[inline(never)]
    fn command_error(&self, cid: u16, cqe: Cqe) -> NvmeError {
        NvmeError::Command {
            opcode: super::io::nvm_name(self.pool.opc(cid)),
            status: cqe.status(),
        }
    }

    /// A completion whose command ID is not outstanding: a stale or
    /// duplicated entry (the ID's generation no longer matches) is
    /// counted and logged, never completed against the request that now
    /// holds the slot.
    #[cold]
    #[inline(never)]
    fn refuse(&mut self, cid: u16) {
        self.stat.stale_completions += 1;
        log::error!(
            "qpair {}: completion for command ID {cid:#06x}, which is not outstanding \
             (stale or duplicated); ignored",
            self.qid
        );
    }

    /// Completes the top-level request `cid` (if outstanding): frees it,
    /// then runs its callback or hands its tag to `on_tag`.
    pub(super) fn finish<H: FnMut(u64, Result<(), NvmeError>)>(
        &mut self,
        cid: u16,
        result: Result<(), NvmeError>,
        cdw0: u32,
        on_tag: &mut H,
    ) {
        if let Some(live) = self.pool.check(cid) {
            self.finish_live(live, result, cdw0, on_tag);
        }
    }

    /// As [`QPair::finish`] for a request just checked outstanding.
    #[inline(always)]
    fn finish_live<H: FnMut(u64, Result<(), NvmeError>)>(
        &mut self,
        live: Live,
        result: Result<(), NvmeError>,
        cdw0: u32,
        on_tag: &mut H,
    ) {
        // Built where the callback will read it (see Pending::invoke).
        let mut c = ManuallyDrop::new(IoCompletion {
            result,
            cdw0,
            buf: IoBuf::None,
        });
        let done = self.pool.finish(live, &mut c.buf);
        self.outstanding -= 1;
        match done {
            // The result is moved out and the rest left undropped: a tagged
            // request holds no buffer (dropping `c` would call the buffer's
            // drop out of line for nothing).
            Finished::Tag(tag) => on_tag(tag, std::mem::replace(&mut c.result, Ok(()))),
            // SAFETY: `c` holds a live completion, given up to the callback
            // (never used again here).
            Finished::Call(cb) => unsafe { cb.invoke(self, &mut c) },
            Finished::Silent => drop(ManuallyDrop::into_inner(c)),
        }
    }
}
