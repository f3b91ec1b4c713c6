//! The common submission steps of every I/O command: argument checks,
//! request allocation, MDTS splitting into child commands, SQE placement
//! and the (possibly delayed) doorbell.

use super::buffer::{IoBuf, IoCompletion, SubmitError};
use super::namespace::Namespace;
use super::prp::{self, Segment};
use super::qpair::QPair;
use super::request::{Callback, Notify};
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
    #[inline]
    pub(crate) fn check_usable(&self) -> Result<(), NvmeError> {
        let g = self
            .ctrlr
            .generation
            .load(std::sync::atomic::Ordering::Relaxed);
        if g != self.generation {
            if self.shut_down.is_some() {
                return Err(NvmeError::QPairShutDown(self.qid));
            }
            return Err(
                if self
                    .ctrlr
                    .detached
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    NvmeError::ControllerUnavailable
                } else {
                    NvmeError::AbortedByReset
                },
            );
        }
        Ok(())
    }

    /// Submits one command with no data pointer.
    pub(crate) fn submit_one(
        &mut self,
        sqe: Sqe,
        buf: IoBuf,
        cb: Notify,
    ) -> Result<(), SubmitError> {
        if let Err(e) = self.check_usable() {
            return Err(reject(e, buf));
        }
        let Some(cid) = self.pool.alloc() else {
            return Err(reject(NvmeError::QueueFull, buf));
        };
        self.arm(cid, buf, cb, sqe.opc());
        self.push(cid, sqe);
        self.after_push();
        Ok(())
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
                self.arm(parent, buf, Notify::Call(Callback::new(cb)), template.opc());
                self.after_push();
                Ok(())
            }
            Err(e) => Err(reject(e, buf)),
        }
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
        let parent = self.pool.alloc().expect("free count checked");
        let tail_before = self.sq.tail();
        let mut done = 0u32;
        let mut children = 0u16;
        while done < lba_count {
            let n = per.min(lba_count - done);
            let cid = self.pool.alloc().expect("free count checked");
            self.pool.reqs[cid as usize].parent = parent;
            self.pool.reqs[cid as usize].data_off = (done as usize * bytes_per_block) as u32;
            let mut sqe = template;
            if bytes_per_block != 0 {
                let sgls = self.sgls;
                let r = &mut self.pool.reqs[cid as usize];
                let start = done as usize * bytes_per_block;
                let len = n as usize * bytes_per_block;
                match prp::build_dptr(segs, start, len, &mut r.page, r.page_iova, sgls) {
                    Ok(p) => {
                        sqe.prp1 = p.prp1;
                        sqe.prp2 = p.prp2;
                        sqe.set_psdt(p.psdt);
                    }
                    Err(e) => {
                        // Nothing was rung: take back the entries and requests.
                        self.sq.set_tail(tail_before);
                        for c in 0..self.pool.capacity() as u16 {
                            if self.pool.is_outstanding(c)
                                && self.pool.reqs[c as usize].parent == parent
                            {
                                self.pool.release(c);
                            }
                        }
                        self.pool.release(parent);
                        return Err(e);
                    }
                }
            }
            sqe.set_slba(lba + done as u64);
            sqe.cdw12 = (template.cdw12 & !0xffff) | (n - 1);
            self.pool.reqs[cid as usize].opc = sqe.opc();
            self.push(cid, sqe);
            children += 1;
            done += n;
        }
        self.pool.reqs[parent as usize].children_left = children;
        self.pool.reqs[parent as usize].child_error = None;
        Ok(parent)
    }

    /// Writes the SQE for request `cid` into the SQ (doorbell not rung).
    #[inline]
    pub(crate) fn push(&mut self, cid: u16, mut sqe: Sqe) {
        sqe.set_cid(cid);
        if self.opts.timeout.is_some() {
            self.pool.reqs[cid as usize].submitted = Some(Instant::now());
        }
        self.sq.push(&sqe);
        self.stat.submitted_requests += 1;
    }

    #[inline]
    pub(crate) fn after_push(&mut self) {
        if !self.opts.delay_cmd_submit {
            self.sq.ring();
        }
    }
}
