//! The callback form of blob channel I/O, for code that completes by
//! callback (a bdev module's submit path): an I/O whose blocks are one run
//! of mapped clusters goes straight to this thread's bdev channel with the
//! caller's buffer — no message, and no allocation once warm: the bdev
//! completion that carries it is recycled through the channel's free list,
//! and the caller's completion is its own box ([`BlobIoDone`] takes
//! `self: Box<Self>`, so a caller may recycle it too) — and `cb` runs on
//! this thread when the bdev completes it. A write to clusters the blob
//! does not own yet waits, parked, for this channel's next allocation
//! batch (`alloc_queue`) and then goes the same way. Anything else (a
//! frozen blob, zeroes, a split, a device that is not a bdev) runs the
//! async form as a task of this thread.

use std::cell::RefCell;
use std::rc::Rc;

use crate::bdev::{IoBuf, IoCompletion, IoDone, IoStatus, IoType};
use crate::thread::spawn_local;

use super::alloc_queue::Outcome;
use super::channel::{dev_err, BlobIoChannel, Cached, Run, ALLOC_ROUNDS};
use super::dev::BsDev;
use super::error::Result;
use super::BlobId;

/// A completion of blob channel I/O by callback, called once on the
/// submitting thread with the buffer back, or the error.
///
/// It takes `self: Box<Self>` so a caller can keep a preallocated object
/// that travels with the I/O and comes back here, ready for the next one:
/// no allocation per I/O. Every `FnOnce(Result<IoBuf>)` closure is one too.
pub trait BlobIoDone: 'static {
    /// Called once when the I/O completes.
    fn blob_io_done(self: Box<Self>, r: Result<IoBuf>);
}

impl<F: FnOnce(Result<IoBuf>) + 'static> BlobIoDone for F {
    fn blob_io_done(self: Box<Self>, r: Result<IoBuf>) {
        (*self)(r)
    }
}

/// A completion callback of blob channel I/O: the buffer back, or the error.
pub type BlobIoCb = Box<dyn BlobIoDone>;

/// Where an I/O checked by [`BlobIoChannel::enter_direct`] goes.
pub(crate) enum DirectRun {
    /// One run of device blocks from this one, the blob's map entered.
    Dev(Rc<Cached>, u64),
    /// A read of clusters that read as zeroes: no device I/O.
    Zeroes,
}

/// The bdev completions of a channel's direct I/Os, kept for reuse.
pub(crate) type DirectFree = Rc<RefCell<Vec<Box<Direct>>>>;

/// The bdev completion of one direct I/O: leaves the blob's map and hands
/// the result to the caller's completion; goes back to its channel's free
/// list when done.
pub(crate) struct Direct {
    m: Option<Rc<Cached>>,
    cb: Option<BlobIoCb>,
    write: bool,
    lba: u64,
    n: u64,
    free: DirectFree,
}

impl IoDone for Direct {
    fn io_done(mut self: Box<Self>, c: IoCompletion) {
        if let Some(m) = self.m.take() {
            m.exit();
        }
        let (op, lba, n) = (if self.write { "write" } else { "read" }, self.lba, self.n);
        let r = if c.status.is_success() {
            c.data
                .into_buf()
                .ok_or_else(|| dev_err(op, lba, n, "no buffer came back"))
        } else {
            Err(dev_err(op, lba, n, format!("{:?}", c.status)))
        };
        let cb = self.cb.take();
        let free = self.free.clone();
        free.borrow_mut().push(self);
        if let Some(cb) = cb {
            cb.blob_io_done(r)
        }
    }
}

impl<D: BsDev + 'static, C: BsDev + 'static> BlobIoChannel<D, C> {
    /// Callback form of [`Self::read`]: `cb` gets the filled buffer (or the
    /// error) on this thread, never inside this call.
    pub fn read_cb(self: &Rc<Self>, id: BlobId, offset: u64, buf: IoBuf, cb: BlobIoCb) {
        self.submit_cb(IoType::Read, id, offset, buf, cb)
    }

    /// Callback form of [`Self::write`]: `cb` gets the buffer back (or the
    /// error) on this thread, never inside this call.
    pub fn write_cb(self: &Rc<Self>, id: BlobId, offset: u64, buf: IoBuf, cb: BlobIoCb) {
        self.submit_cb(IoType::Write, id, offset, buf, cb)
    }

    fn submit_cb(self: &Rc<Self>, t: IoType, id: BlobId, offset: u64, buf: IoBuf, cb: BlobIoCb) {
        self.route(t, id, offset, buf, cb, ALLOC_ROUNDS, None)
    }

    /// Sends an I/O where it can go now: straight to the bdev; for a write
    /// to clusters the blob does not own yet, to this channel's next
    /// allocation batch (routed again when the batch has run, with
    /// `rounds` one less, or failed with `failed`, the error of the last
    /// batch, if its clusters are still not the blob's); else the async
    /// form, as a task.
    #[allow(clippy::too_many_arguments)]
    fn route(
        self: &Rc<Self>,
        t: IoType,
        id: BlobId,
        offset: u64,
        buf: IoBuf,
        cb: BlobIoCb,
        rounds: u8,
        failed: Outcome,
    ) {
        let write = t == IoType::Write;
        if let Some(DirectRun::Dev(m, lba)) = self.enter_direct(id, offset, buf.len(), write) {
            return self.submit_direct(t, m, lba, buf, cb);
        }
        if write && self.bdev.is_some() {
            if let Some(need) = self.unowned(id, offset, buf.len()) {
                if let Some(e) = failed {
                    return cb.blob_io_done(Err(e.duplicate()));
                }
                if rounds > 0 {
                    let this = self.clone();
                    let again = move |o: Outcome| this.route(t, id, offset, buf, cb, rounds - 1, o);
                    return self.alloc.wait(&self.bs, need, Box::new(again));
                }
            }
        }
        self.submit_task(write, id, offset, buf, cb)
    }

    /// For a caller that submits to this channel's bdev itself (the lvol
    /// bdev): when `bytes` at io unit `offset` of open blob `id` are one
    /// run of clusters the I/O may use directly (for a write: clusters the
    /// blob owns), the blob's map entered for the I/O (the caller calls
    /// [`Cached::exit`] through it when the I/O is done) and the first
    /// device block; for a read of clusters that read as zeroes (thin, never
    /// written), [`DirectRun::Zeroes`]: the caller fills the buffer itself.
    /// `None` when the I/O must take the general path ([`Self::read`],
    /// [`Self::write`]): no bdev, a frozen or read-only blob, bad
    /// arguments, a split, an allocating write.
    #[inline(always)]
    pub(crate) fn enter_direct(
        &self,
        id: BlobId,
        offset: u64,
        bytes: usize,
        write: bool,
    ) -> Option<DirectRun> {
        self.bdev.as_ref()?;
        let m = match self.map_last(id) {
            Some(m) => m,
            None => self.map_slow(id).ok()?,
        };
        if write && m.data_ro() {
            return None;
        }
        let units = self.units(id, &m, offset, bytes).ok()?;
        if !m.enter() {
            return None;
        }
        match self.run(&m, offset, units, write) {
            Run::Dev(lba) => Some(DirectRun::Dev(m, lba)),
            Run::Zero => {
                m.exit();
                Some(DirectRun::Zeroes)
            }
            Run::Split => {
                m.exit();
                None
            }
        }
    }

    /// Submits to the bdev an I/O entered on map `m` (its blocks at `lba`).
    fn submit_direct(&self, t: IoType, m: Rc<Cached>, lba: u64, buf: IoBuf, cb: BlobIoCb) {
        let Some((desc, ch)) = &self.bdev else {
            m.exit();
            return cb.blob_io_done(Err(dev_err("submit", lba, 0, "the channel has no bdev")));
        };
        let n = self.block.div(buf.len() as u64);
        let write = t == IoType::Write;
        let op = if write { "write" } else { "read" };
        let recycled = self.free.borrow_mut().pop();
        let done = match recycled {
            Some(mut d) => {
                (d.m, d.cb, d.write, d.lba, d.n) = (Some(m), Some(cb), write, lba, n);
                d
            }
            None => Box::new(Direct {
                m: Some(m),
                cb: Some(cb),
                write,
                lba,
                n,
                free: self.free.clone(),
            }),
        };
        let submitted = match t {
            IoType::Write => desc.write_blocks(ch, buf, lba, n, done),
            _ => desc.read_blocks(ch, buf, lba, n, done),
        };
        if let Err(rej) = submitted {
            log::warn!(
                "blob {op} at block {lba} refused by the bdev: {}",
                rej.error
            );
            if let Some(done) = rej.cb {
                done.io_done(IoCompletion {
                    status: IoStatus::Failed,
                    io_type: t,
                    offset_blocks: lba,
                    num_blocks: n,
                    data: rej.data,
                    submit_tick: 0,
                    complete_tick: 0,
                });
            }
        }
    }

    fn submit_task(
        self: &Rc<Self>,
        write: bool,
        id: BlobId,
        offset: u64,
        buf: IoBuf,
        cb: BlobIoCb,
    ) {
        let this = self.clone();
        let task = spawn_local(async move {
            let r = if write {
                this.write(id, offset, buf).await
            } else {
                this.read(id, offset, buf).await
            };
            cb.blob_io_done(r)
        });
        if let Err(e) = task {
            log::error!("blob channel I/O lost: no thread to run it on: {e}");
        }
    }
}
