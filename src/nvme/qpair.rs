//! I/O queue pairs: allocation, polled completion, timeouts, recovery after
//! a controller reset, and deletion. The submission commands are in `io.rs`.

use super::buffer::{IoBuf, IoCompletion};
use super::controller::{Controller, CtrlrInner};
use super::queue::{CqRing, Doorbell, SqRing};
use super::request::{Notify, RequestPool, NO_PARENT};
use super::spec::registers::{cq_head_doorbell, sq_tail_doorbell};
use super::spec::Cqe;
use super::stat::PcieStat;
use super::NvmeError;
use std::marker::PhantomData;
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
    /// Per-command timeout; `None` disables timeout tracking (no clock read per I/O).
    pub timeout: Option<Duration>,
}

/// Polls without a completion, with commands outstanding, after which a
/// queue pair re-rings its doorbells by MMIO ([`QPair::process_completions`]).
pub const STALL_KICK_POLLS: u64 = 1 << 16;

impl Default for QPairOpts {
    fn default() -> Self {
        QPairOpts {
            io_queue_size: 256,
            io_queue_requests: 0,
            delay_cmd_submit: false,
            timeout: None,
        }
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
    pub(crate) ctrlr: Arc<CtrlrInner>,
    pub(crate) qid: u16,
    pub(crate) sq: SqRing,
    pub(crate) cq: CqRing,
    pub(crate) pool: RequestPool,
    pub(crate) opts: QPairOpts,
    pub(crate) generation: u64,
    pub(crate) max_xfer: usize,
    /// SGL support to use for data (Identify SGLS bits 1:0; 0 = PRPs only).
    pub(crate) sgls: u8,
    pub(crate) outstanding: usize,
    pub(crate) timeout_cb: Option<TimeoutCallback>,
    pub(crate) next_timeout_check: Option<Instant>,
    /// The counters kept here; the doorbell ones live in the doorbells
    /// and are filled in by [`QPair::pcie_stat`].
    pub(crate) stat: PcieStat,
    /// Consecutive polls that found nothing while commands were outstanding.
    pub(crate) stalled_polls: u64,
    /// What [`QPair::shutdown`] answered once it ran: whether the device
    /// is done with the memory of the commands it dropped.
    pub(crate) shut_down: Option<bool>,
    /// The connection of an NVMe/TCP queue pair (`None` over PCIe).
    pub(crate) tcp: Option<Box<super::qpair_tcp::TcpIo>>,
    pub(crate) _not_send: PhantomData<*const ()>,
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
            let pool = RequestPool::new(nreq)?;
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

    /// Writes both doorbells by MMIO with their current values. With shadow
    /// doorbells the controller is told of new entries only when its
    /// EventIdx asks; a controller that loses that race (a missing memory
    /// barrier on its side) would leave commands unfetched forever, so a
    /// queue with commands outstanding and nothing completing for
    /// [`STALL_KICK_POLLS`] polls re-announces its tail and head. Harmless
    /// when nothing was lost (the values are unchanged).
    #[cold]
    fn kick(&mut self) {
        self.stat.doorbell_kicks += 1;
        log::warn!(
            "qpair {}: {} polls without a completion with {} commands outstanding: re-ringing the doorbells",
            self.qid,
            self.stalled_polls,
            self.outstanding
        );
        self.sq.kick();
        self.cq.kick();
    }

    /// Rings the SQ tail doorbell for commands queued with `delay_cmd_submit`.
    #[inline]
    pub fn flush(&mut self) {
        self.sq.ring();
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
            return self.reap_tcp(&mut on_tag);
        }
        let limit = if max == 0 {
            self.cq.entries() as usize
        } else {
            max
        };
        let mut n = 0;
        while n < limit {
            let Some(cqe) = self.cq.pop() else { break };
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
                    self.kick();
                }
            }
        } else {
            self.stalled_polls = 0;
        }
        // Commands the controller may still complete (parents included: an over-estimate is safe).
        let in_flight = self.pool.capacity() - self.pool.free_count();
        self.cq.ring_lazy(in_flight);
        if ring_sq && self.sq.pending() {
            self.sq.ring();
        }
        if self.next_timeout_check.is_some() {
            self.check_timeouts(&mut on_tag)?;
        }
        Ok(n)
    }

    // Inlined into both reaps (PCIe and TCP): outlined, it cost the PCIe
    // poll about 25 instructions per I/O.
    #[inline(always)]
    pub(crate) fn complete_cqe<H: FnMut(u64, Result<(), NvmeError>)>(
        &mut self,
        cqe: Cqe,
        on_tag: &mut H,
    ) {
        let cid = cqe.cid;
        if !self.pool.is_outstanding(cid) {
            log::error!(
                "qpair {}: completion for CID {cid} which is not outstanding; ignored",
                self.qid
            );
            return;
        }
        let status = cqe.status();
        let result = if status.is_success() {
            Ok(())
        } else {
            Err(NvmeError::Command {
                opcode: super::io::nvm_name(self.pool.reqs[cid as usize].opc),
                status,
            })
        };
        let parent = self.pool.reqs[cid as usize].parent;
        if parent == NO_PARENT {
            self.finish(cid, result, cqe.dw0, on_tag);
            return;
        }
        self.pool.release(cid);
        let p = &mut self.pool.reqs[parent as usize];
        if let Err(e) = result {
            p.child_error.get_or_insert(e);
        }
        p.children_left -= 1;
        if p.children_left == 0 {
            let r = p.child_error.take().map_or(Ok(()), Err);
            self.finish(parent, r, 0, on_tag);
        }
    }

    /// Completes a top-level request: frees it, then runs its callback or
    /// hands its tag to `on_tag`.
    #[inline(always)]
    pub(crate) fn finish<H: FnMut(u64, Result<(), NvmeError>)>(
        &mut self,
        cid: u16,
        result: Result<(), NvmeError>,
        cdw0: u32,
        on_tag: &mut H,
    ) {
        let r = &mut self.pool.reqs[cid as usize];
        // The tag is read in place: moving the whole notification out (a
        // callback's inline slot) is only worth it for a callback.
        if let Notify::Tag(tag) = r.notify {
            // A tagged request holds no buffer: nothing to take back.
            r.notify = Notify::None;
            self.pool.release(cid);
            self.outstanding -= 1;
            return on_tag(tag, result);
        }
        let notify = std::mem::replace(&mut r.notify, Notify::None);
        let buf = std::mem::take(&mut r.buf);
        self.pool.release(cid);
        self.outstanding -= 1;
        if let Notify::Call(cb) = notify {
            cb.invoke(self, IoCompletion { result, cdw0, buf });
        }
    }

    /// Arms a tagged top-level request ([`QPair::rw_tagged`]): the tag is
    /// its notification and it holds no buffer. A request comes off the
    /// free list with neither (`finish` took them), so nothing is moved
    /// or dropped on the way.
    #[inline]
    pub(crate) fn arm_tagged(&mut self, cid: u16, tag: u64, opc: u8) {
        let r = &mut self.pool.reqs[cid as usize];
        if !matches!(r.notify, Notify::None) || !matches!(r.buf, IoBuf::None) {
            arm_cold(&mut r.notify, &mut r.buf);
        }
        r.notify = Notify::Tag(tag);
        r.opc = opc;
        self.outstanding += 1;
    }

    /// Stores the notification and buffer on a top-level request.
    #[inline]
    pub(crate) fn arm(&mut self, cid: u16, buf: IoBuf, notify: Notify, opc: u8) {
        let r = &mut self.pool.reqs[cid as usize];
        r.notify = notify;
        r.buf.put(buf);
        r.opc = opc;
        self.outstanding += 1;
    }
}

/// Drops what a request taken off the free list should not hold (never on
/// the I/O path: `finish` empties a request before freeing it).
#[cold]
#[inline(never)]
fn arm_cold(notify: &mut Notify, buf: &mut IoBuf) {
    *notify = Notify::None;
    *buf = IoBuf::None;
}
