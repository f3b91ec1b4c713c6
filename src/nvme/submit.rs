//! The common submission steps of every I/O command: argument checks,
//! request allocation, MDTS splitting into child commands, SQE placement
//! and the (possibly delayed) doorbell.

use super::buffer::{IoBuf, IoCompletion, SubmitError};
use super::callback::Callback;
use super::namespace::Namespace;
use super::prp::{self, Segment};
use super::qpair::QPair;
use super::request::{BuildDptr, NoData, Notify};
use super::spec::Sqe;
use super::NvmeError;
use std::time::Instant;

pub(crate) fn reject(error: NvmeError, buf: IoBuf) -> SubmitError {
    SubmitError { error, buf }
}

impl QPair {
    pub(crate) fn check_range(
        &self,
        ns: &Namespace,
        lba: u64,
        count: u64,
    ) -> Result<(), NvmeError> {
        if count == 0 {
            return Err(NvmeError::ZeroLength);
        }
        if lba
            .checked_add(count)
            .map_or(true, |end| end > ns.io_blocks)
        {
            ns.check_block_io()?;
            return Err(NvmeError::LbaOutOfRange {
                nsid: ns.id,
                lba,
                count,
                nsze: ns.num_blocks,
            });
        }
        Ok(())
    }

    /// Fails fast when the controller is gone or was reset (the caller then
    /// calls `process_completions`, which recovers the qpair).
    #[inline(always)]
    pub(crate) fn check_usable(&self) -> Result<(), NvmeError> {
        let g = self
            .ctrlr
            .generation
            .load(std::sync::atomic::Ordering::Relaxed);
        if g != self.generation {
            return Err(self.unusable());
        }
        Ok(())
    }

    /// Why this queue pair takes no commands now.
    #[cold]
    #[inline(never)]
    fn unusable(&self) -> NvmeError {
        if self.shut_down.is_some() {
            return NvmeError::QPairShutDown(self.qid);
        }
        if self.tcp.as_ref().is_some_and(|t| t.is_disconnected()) {
            return NvmeError::ConnectionLost;
        }
        if self
            .ctrlr
            .detached
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            NvmeError::ControllerUnavailable
        } else {
            NvmeError::AbortedByReset
        }
    }

    /// Submits one command whose data pointer (if any) `build` makes from
    /// `buf`, the request's PRP list page and its IOVA; then arms the
    /// request with the buffer (taken out of `buf`, which is left as
    /// [`IoBuf::None`]) and the notification `notify` makes. On an error
    /// nothing was queued and `buf` is untouched.
    #[inline(always)]
    pub(crate) fn submit_one<B: BuildDptr, N: FnOnce() -> Notify>(
        &mut self,
        mut sqe: Sqe,
        buf: &mut IoBuf,
        notify: N,
        build: B,
    ) -> Result<(), NvmeError> {
        self.check_usable()?;
        let (cid, p) = self.pool.alloc_armed(sqe.opc(), buf, notify, build)?;
        sqe.prp1 = p.prp1;
        sqe.prp2 = p.prp2;
        sqe.set_psdt(p.psdt);
        self.outstanding += 1;
        self.push(cid, sqe);
        self.after_push();
        Ok(())
    }

    /// Submits one command without data.
    pub(crate) fn submit_nodata(&mut self, sqe: Sqe, notify: Notify) -> Result<(), SubmitError> {
        self.submit_one(sqe, &mut IoBuf::None, || notify, NoData)
            .map_err(|e| reject(e, IoBuf::None))
    }

    /// Parent request plus `chunks` child commands; all or nothing.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn submit_split<F>(
        &mut self,
        template: Sqe,
        buf: IoBuf,
        lba: u64,
        lba_count: u32,
        per: u32,
        chunks: usize,
        has_data: bool,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        let bytes_per_block = if has_data {
            buf.len() / lba_count.max(1) as usize
        } else {
            0
        };
        let segs = buf.segments();
        match self.split_commands(template, segs, lba, lba_count, per, chunks, bytes_per_block) {
            Ok(parent) => {
                let mut buf = buf;
                self.arm_split(parent, &mut buf, Notify::Call(Callback::new(cb)));
                Ok(())
            }
            Err(e) => Err(reject(e, buf)),
        }
    }

    /// Arms the parent of a queued split with the buffer and notification
    /// (the children's data pointers are built: the parent only keeps the
    /// buffer) and rings the doorbell.
    pub(crate) fn arm_split(&mut self, parent: u16, buf: &mut IoBuf, notify: Notify) {
        self.pool.arm_parent(parent, buf, notify);
        self.outstanding += 1;
        self.after_push();
    }

    /// Queues `chunks` child commands of at most `per` blocks each under a
    /// new parent request and returns the parent, to be armed by the caller
    /// (the doorbell is not rung). `bytes_per_block` is 0 for commands
    /// without data; otherwise each child's data pointer covers its blocks
    /// of `segs`. All or nothing: on an error nothing stays queued.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn split_commands<S: Segment>(
        &mut self,
        template: Sqe,
        segs: &[S],
        lba: u64,
        lba_count: u32,
        per: u32,
        chunks: usize,
        bytes_per_block: usize,
    ) -> Result<u16, NvmeError> {
        self.check_usable()?;
        if chunks + 1 > self.pool.free_count() || chunks > self.sq.free() as usize {
            return Err(if chunks + 1 > self.pool.capacity() {
                NvmeError::InvalidArgument(format!(
                    "I/O needs {} commands of at most {} bytes but the qpair has only {} \
                     requests: use a larger io_queue_size or smaller I/O",
                    chunks,
                    self.max_xfer,
                    self.pool.capacity()
                ))
            } else {
                NvmeError::QueueFull
            });
        }
        let Some((parent, _, _)) = self.pool.alloc_with_page(template.opc(), Notify::None) else {
            return Err(NvmeError::QueueFull);
        };
        let tail_before = self.sq.tail();
        let mut done = 0u32;
        let mut children = 0u16;
        while done < lba_count {
            let n = per.min(lba_count - done);
            let start = done as usize * bytes_per_block;
            let Some((cid, page, page_iova)) =
                self.pool.alloc_child(parent, start as u32, template.opc())
            else {
                self.sq.set_tail(tail_before);
                self.pool.abandon_split(parent);
                return Err(NvmeError::QueueFull);
            };
            let mut sqe = template;
            if bytes_per_block != 0 {
                let len = n as usize * bytes_per_block;
                match prp::build_dptr(segs, start, len, page, page_iova, self.sgls) {
                    Ok(p) => {
                        sqe.prp1 = p.prp1;
                        sqe.prp2 = p.prp2;
                        sqe.set_psdt(p.psdt);
                    }
                    Err(e) => {
                        // Nothing was rung: take back the entries and requests.
                        self.sq.set_tail(tail_before);
                        self.pool.abandon_split(parent);
                        return Err(e);
                    }
                }
            }
            sqe.set_slba(lba + done as u64);
            sqe.cdw12 = (template.cdw12 & !0xffff) | (n - 1);
            self.push(cid, sqe);
            children += 1;
            done += n;
        }
        self.pool.set_children(parent, children);
        Ok(parent)
    }

    /// Writes the SQE for request `cid` into the SQ (doorbell not rung).
    #[inline(always)]
    pub(crate) fn push(&mut self, cid: u16, mut sqe: Sqe) {
        sqe.set_cid(cid);
        if self.opts.timeout.is_some() {
            self.pool.stamp(cid, Instant::now());
        }
        self.sq.push(&sqe);
        self.stat.submitted_requests += 1;
    }

    /// Rings the SQ doorbell after a submission, unless submissions are
    /// delayed; delayed ones are rung once `sq_ring_every` of them wait
    /// (one field read decides the common cases: see `QPair::push_ring`).
    #[inline(always)]
    pub(crate) fn after_push(&mut self) {
        let every = self.push_ring;
        if every != 0 {
            self.ring_after_push(every);
        }
    }

    /// The doorbell of [`QPair::after_push`], out of line: inlined, it
    /// made every submission's code larger, delayed ones included (about
    /// 5 instructions per I/O), where the ring it saves a call to is an
    /// MMIO write anyway.
    #[inline(never)]
    fn ring_after_push(&mut self, every: u16) {
        if every == 1 || self.sq.unrung() >= every {
            self.ring_sq();
        }
    }

    /// Announces the commands pushed since the last SQ doorbell. The CQ
    /// head is reported first if the controller could otherwise find the
    /// completion queue full before all of them complete: the head it
    /// knows of must leave room for every command in flight, the new ones
    /// included ([`CqRing::ring_lazy`](super::queue::CqRing::ring_lazy)).
    /// Between two SQ doorbells the controller gains no new commands, and
    /// each completion reaped moves one entry from in flight to consumed,
    /// so checking here is enough to keep it from ever waiting for room.
    #[inline(always)]
    pub(crate) fn ring_sq(&mut self) {
        if self.sq.pending() {
            self.cq.ring_lazy(self.pool.in_flight());
            self.sq.ring();
        }
    }
}
