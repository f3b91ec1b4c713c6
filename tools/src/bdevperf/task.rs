//! One in-flight I/O of a job: a preallocated [`Task`] that owns its
//! buffers, picks its next I/O and resubmits itself from its completion.

use super::breakdown::Sample;
use super::job::Job;
use super::pattern;
use super::Workload;
use spdk_io::bdev::{self, BdevError, IoBuf, IoCompletion, IoData, IoDone, IoType};
use std::rc::Rc;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A plain I/O of the workload.
    Io,
    /// Verify: the pattern write is in flight.
    VerifyWrite,
    /// Verify: the read-back is in flight.
    VerifyRead,
}

pub(crate) struct Task {
    pub(crate) job: Rc<Job>,
    /// The data buffer while no I/O holds it.
    pub(crate) buf: Option<IoBuf>,
    /// Verify: the written pattern, kept to compare the read-back against.
    pub(crate) wbuf: Option<IoBuf>,
    pub(crate) phase: Phase,
    pub(crate) offset_blocks: u64,
    /// `--latency-breakdown`: the sample current when the I/O was submitted.
    pub(crate) sub: Sample,
}

impl Task {
    /// Picks and submits this task's next I/O, or retires the task. A
    /// verify task gives up the blocks of its last pair first.
    pub(crate) fn next(mut self: Box<Self>, job: &Job) {
        if self.phase != Phase::Io {
            job.release(self.offset_blocks);
            self.phase = Phase::Io;
        }
        let data = self.buf.take().map_or(IoData::None, IoData::Buf);
        self.next_with(job, data)
    }

    /// [`Task::next`] with the data the last I/O handed back (if any),
    /// passed on as it came: a workload of one data-moving type submits it
    /// again without taking the buffer out and wrapping it anew, and makes
    /// no workload decisions per I/O. Always inlined: a call frame of its
    /// own cost every I/O about 20 instructions.
    #[inline(always)]
    fn next_with(mut self: Box<Self>, job: &Job, data: IoData) {
        if job.stopping.get() {
            self.buf = data.into_buf();
            return job.task_done();
        }
        let off = job.next_offset(job.random);
        self.offset_blocks = off;
        if job.breakdown.is_some() {
            self.sub = job.breakdown_sample();
        }
        let n = job.io_blocks;
        let r = match job.plain {
            Some(IoType::Read) => {
                let data = job.with_buf(data);
                job.desc.submit(&job.ch, IoType::Read, off, n, data, self)
            }
            Some(IoType::Write) => {
                let data = job.with_buf(data);
                job.desc.submit(&job.ch, IoType::Write, off, n, data, self)
            }
            _ => {
                self.buf = data.into_buf();
                return self.next_other(job, off);
            }
        };
        job.rejected(r)
    }

    /// The steady state's next I/O: of type `t` (read or write), with the
    /// data the last one handed back, taken from its completion in place.
    #[inline(always)]
    fn resubmit(mut self: Box<Self>, job: &Job, t: IoType, data: &mut IoData) {
        let off = job.next_offset(job.random);
        self.offset_blocks = off;
        let n = job.io_blocks;
        job.fill_buf(data);
        let r = if t == IoType::Read {
            job.desc
                .submit_from(&job.ch, IoType::Read, off, n, data, self)
        } else {
            job.desc
                .submit_from(&job.ch, IoType::Write, off, n, data, self)
        };
        job.rejected(r)
    }

    /// The next I/O of the other workloads: mixed, verify, and those
    /// without data.
    #[inline(never)]
    fn next_other(mut self: Box<Self>, job: &Job, off: u64) {
        let w = job.cfg.workload;
        let n = job.io_blocks;
        let io_type = match (w, w.single_type()) {
            (_, Some(t)) => t,
            (Workload::Verify, None) => {
                self.phase = Phase::VerifyWrite;
                let seq = job.seq.get() + 1;
                job.seq.set(seq);
                let mut wb = self.wbuf.take().unwrap_or_else(|| job.new_buf());
                pattern::fill(&mut wb, off, job.block_size, seq);
                let r = job.desc.write_blocks(&job.ch, wb, off, n, self);
                return job.rejected(r);
            }
            // Rw and Randrw: `-M` percent reads.
            _ if (job.rand() % 100) < job.cfg.rwmixread as u64 => IoType::Read,
            _ => IoType::Write,
        };
        self.phase = Phase::Io;
        let data = if io_type.has_data() {
            bdev::IoData::Buf(self.buf.take().unwrap_or_else(|| job.new_buf()))
        } else {
            bdev::IoData::None
        };
        let r = job.desc.submit(&job.ch, io_type, off, n, data, self);
        job.rejected(r)
    }
}

impl Job {
    /// Handles a refused submission: wait for a free request on NOMEM,
    /// otherwise count the failure and retire the task.
    #[inline(always)]
    pub(crate) fn rejected(&self, r: bdev::Submitted) {
        if let Err(rej) = r {
            self.refused(*rej);
        }
    }

    #[cold]
    #[inline(never)]
    fn refused(&self, rej: bdev::Rejected) {
        match (rej.error, rej.cb) {
            (BdevError::NoMem, Some(cb)) => {
                // Resubmit from scratch when a request frees up: give the
                // completion a synthetic success-less path by retrying `next`.
                // The refused buffers go back with it, so the retry
                // allocates nothing.
                let retry = Retry(Some((cb, rej.data)));
                self.ch.queue_io_wait(move || retry.fire());
            }
            (e, _) => {
                log::error!("bdevperf {}: submit failed: {e}", self.cfg.bdev);
                self.error.borrow_mut().get_or_insert_with(|| e.to_string());
                self.failed.set(self.failed.get() + 1);
                self.stop();
                self.task_done();
            }
        }
    }
}

/// A task waiting in the io_wait queue, with the buffers its refused I/O
/// handed back. The task's callback is resumed with an aborted completion
/// carrying them, so it picks its next I/O again.
struct Retry(Option<(Box<dyn IoDone>, bdev::IoData)>);

impl Retry {
    fn fire(mut self) {
        if let Some((cb, data)) = self.0.take() {
            cb.io_done(IoCompletion {
                status: bdev::IoStatus::NoMem,
                io_type: IoType::Read,
                offset_blocks: 0,
                num_blocks: 0,
                data,
                submit_tick: 0,
                complete_tick: 0,
            });
        }
    }
}

impl IoDone for Task {
    fn io_done(mut self: Box<Self>, mut c: IoCompletion) {
        let job = self.job.clone();
        // The steady state of a plain workload: record and resubmit, with
        // one test for everything that could make this I/O different.
        if c.status == bdev::IoStatus::Success {
            if let Some(t) = job.steady.get() {
                job.record_ok(&c);
                self.resubmit(&job, t, &mut c.data);
                // The data was taken (`submit_from` leaves `IoData::None`):
                // nothing to drop (a drop call otherwise).
                std::mem::forget(c);
                return;
            }
        }
        if c.status == bdev::IoStatus::NoMem {
            // Resumed from the io_wait queue: nothing completed; take the
            // refused buffer back (a verify write's is the pattern buffer)
            // and try again.
            if let Some(b) = c.data.into_buf() {
                match self.phase {
                    Phase::VerifyWrite => self.wbuf = Some(b),
                    _ => self.buf = Some(b),
                }
            }
            return self.next(&job);
        }
        match self.phase {
            Phase::Io => {
                job.record_io(&c, self.sub);
                self.next_with(&job, c.data)
            }
            Phase::VerifyWrite => {
                // A verify pair counts once, at its read-back (as SPDK
                // bdevperf counts); a failed write counts as a failure.
                if !c.success() {
                    job.record(&c);
                }
                let ok = c.success();
                self.wbuf = c.data.into_buf();
                if !ok || job.stopping.get() {
                    return self.next(&job);
                }
                self.phase = Phase::VerifyRead;
                if let Some(b) = &job.breakdown {
                    self.sub = b.at_submit();
                }
                let rb = self.buf.take().unwrap_or_else(|| job.new_buf());
                let (off, n) = (self.offset_blocks, job.io_blocks);
                let r = job.desc.read_blocks(&job.ch, rb, off, n, self);
                job.rejected(r)
            }
            Phase::VerifyRead => {
                job.record_io(&c, self.sub);
                let ok = c.success();
                let rb = c.data.into_buf();
                if ok {
                    if let (Some(r), Some(w)) = (&rb, &self.wbuf) {
                        if let Some(at) = pattern::first_mismatch(r, w) {
                            let m = job.miscompares.get() + 1;
                            job.miscompares.set(m);
                            if m <= 10 {
                                eprintln!(
                                    "bdevperf: VERIFY MISMATCH on {} at block {} (byte {at} of the I/O): wrote {:#04x}, read {:#04x}",
                                    job.cfg.bdev, self.offset_blocks + (at / job.block_size) as u64, w[at], r[at]
                                );
                            }
                        }
                    }
                }
                self.buf = rb;
                self.next(&job)
            }
        }
    }
}
