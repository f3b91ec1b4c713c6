//! The lvol bdev's per-thread channel: each I/O goes through the blob I/O
//! channel of the submitting thread (offsets mapped there through the
//! blob's cluster map, the caller's buffer handed to the base bdev's
//! channel of that thread; only allocating writes visit the metadata
//! thread) and completes through the channel's completer. A read or write
//! whose blocks are one run of clusters it may use is passed through to
//! the base bdev's module as the lvol's own request (`passed`: the buffers
//! stay in it, the base's channel counts it); when the base's channel
//! cannot take it so (a reset, a range lock, a split at the base), it goes
//! to the base's descriptor with the request's own buffers and one
//! recycled completion that leaves the blob's map and reports to the
//! lvol's channel; the rest use the blob channel's callback form. No task,
//! no message and no allocation per I/O once warm.
//!
//! The blob channel is made on the thread's first I/O (it asks the
//! metadata thread for the store's geometry). The reads and writes that
//! arrive meanwhile wait for it and go out together, as one batch: handed
//! out one by one as each made its own channel, they would stay staggered
//! and every later poll would carry one I/O instead of a queue's worth.

use super::passed::{Entered, Passed};
use super::rw_done::{one_buf, IoFree, LvolIo};
use super::LvsBdev;
use crate::bdev::{BdevError, IoCompletion, IoId, PassThrough};
use crate::bdev::{Completer, IoBuf, IoData, IoRequest, IoStatus, IoType, ModuleChannel};
use crate::blob::channel::Cached;
use crate::blob::channel_cb::DirectRun;
use crate::blob::{BdevBsDev, BlobId, BlobIoChannel};
use crate::thread::spawn_local;
use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

/// The blob I/O channel of one thread.
type BlobCh = BlobIoChannel<BdevBsDev, BdevBsDev>;

#[derive(Clone)]
pub(crate) struct LvolChannel {
    lvs: Arc<LvsBdev>,
    blob_id: BlobId,
    /// The blob's io unit in bytes (the store's block size).
    unit: u64,
    completer: Completer,
    /// Made on the first I/O of this thread.
    ch: Rc<OnceCell<Rc<BlobCh>>>,
    /// Reads and writes waiting for `ch` while it is being made (`None`
    /// when nothing is making it).
    waiting: Rc<RefCell<Option<Vec<RwIo>>>>,
    /// Completions of reads and writes, kept for reuse.
    free: IoFree,
    /// The pass-through to the base bdev, made with `ch`.
    pt: Rc<OnceCell<PassThrough>>,
    /// The blob maps entered by the requests passed through.
    entered: Rc<Entered>,
}

impl LvolChannel {
    /// The channel of lvol blob `blob_id` on the calling thread; its blob
    /// channel is made on the first I/O.
    pub(crate) fn new(lvs: Arc<LvsBdev>, blob_id: BlobId, completer: Completer) -> LvolChannel {
        LvolChannel {
            unit: lvs.lvs.block_size() as u64,
            lvs,
            blob_id,
            completer,
            ch: Rc::default(),
            waiting: Rc::default(),
            free: Rc::default(),
            pt: Rc::default(),
            entered: Entered::with_capacity(crate::bdev::io_pool_size()),
        }
    }

    async fn blob_channel(&self) -> Result<Rc<BlobCh>, String> {
        if let Some(c) = self.ch.get() {
            return Ok(c.clone());
        }
        let dev = BdevBsDev::on_this_thread(&self.lvs.base_desc).map_err(|e| e.to_string())?;
        let c = BlobIoChannel::new(self.lvs.lvs.blobstore(), dev)
            .await
            .map_err(|e| e.to_string())?;
        if let Some((desc, bch)) = &c.bdev {
            let up = Passed {
                entered: self.entered.clone(),
                done: self.completer.clone(),
            };
            let pt =
                PassThrough::new(desc, bch.clone(), Box::new(up)).map_err(|e| e.to_string())?;
            let _ = self.pt.set(pt);
        }
        Ok(self.ch.get_or_init(|| Rc::new(c)).clone())
    }
}

/// What identifies one request to its completion.
#[derive(Clone, Copy)]
struct Req {
    id: IoId,
    kind: IoType,
    /// In the lvol's blocks, for messages.
    off: u64,
    n: u64,
}

impl LvolChannel {
    /// A completion for `r`, from the free list when there is one.
    fn lvol_io(&self, r: Req, orig: Option<IoData>, m: Option<Rc<Cached>>) -> Box<LvolIo> {
        let recycled = self.free.borrow_mut().pop();
        match recycled {
            Some(mut c) => {
                (c.id, c.kind, c.orig, c.off, c.n, c.m) = (r.id, r.kind, orig, r.off, r.n, m);
                c
            }
            None => Box::new(LvolIo {
                id: r.id,
                kind: r.kind,
                orig,
                off: r.off,
                n: r.n,
                m,
                done: self.completer.clone(),
                free: self.free.clone(),
            }),
        }
    }

    /// Hands a read or write entered on the blob's map `m` (its blocks one
    /// run from base block `lba`) to the base bdev with the request's own
    /// buffers.
    fn submit_direct(
        &self,
        ch: &BlobCh,
        m: Rc<Cached>,
        lba: u64,
        r: Req,
        data: IoData,
        len: usize,
    ) {
        let Some((desc, bch)) = &ch.bdev else {
            m.exit();
            return self
                .completer
                .complete_with_data(r.id, IoStatus::Failed, data);
        };
        let blocks = ch.block.div(len as u64);
        let cb = self.lvol_io(r, None, Some(m));
        if let Err(rej) = desc.submit(bch, r.kind, lba, blocks, data, cb) {
            let status = if rej.error == BdevError::NoMem {
                IoStatus::NoMem
            } else {
                log::warn!(
                    "lvol {:?} at base block {lba} refused: {}",
                    r.kind,
                    rej.error
                );
                IoStatus::Failed
            };
            match rej.cb {
                Some(done) => done.io_done(IoCompletion {
                    status,
                    io_type: r.kind,
                    offset_blocks: lba,
                    num_blocks: blocks,
                    data: rej.data,
                    submit_tick: 0,
                    complete_tick: 0,
                }),
                None => self.completer.complete_with_data(r.id, status, rej.data),
            }
        }
    }

    /// Hands a read or write to this thread's blob channel by callback
    /// (no task, no message; nothing allocated once warm).
    fn submit_rw(&self, ch: &Rc<BlobCh>, io: RwIo) {
        let r = Req {
            id: io.id,
            kind: io.kind,
            off: io.off,
            n: io.n,
        };
        let cb = self.lvol_io(r, io.orig, None);
        if io.kind == IoType::Read {
            ch.read_cb(self.blob_id, io.uoff, io.buf, cb)
        } else {
            ch.write_cb(self.blob_id, io.uoff, io.buf, cb)
        }
    }

    /// An I/O before this thread's blob channel exists: the first one
    /// starts making it (on the metadata thread's answer); it and every
    /// one arriving meanwhile are submitted together once it is there.
    fn submit_first(&self, io: RwIo) {
        if let Some(q) = self.waiting.borrow_mut().as_mut() {
            q.push(io);
            return;
        }
        *self.waiting.borrow_mut() = Some(vec![io]);
        let me = self.clone();
        let task = async move {
            let r = me.blob_channel().await;
            let ios = me.waiting.borrow_mut().take().unwrap_or_default();
            match r {
                Ok(ch) => ios.into_iter().for_each(|io| me.submit_rw(&ch, io)),
                Err(e) => {
                    log::error!("lvol: no blob channel on this thread: {e}");
                    ios.iter()
                        .for_each(|io| me.completer.complete(io.id, IoStatus::Failed))
                }
            }
        };
        if let Err(e) = spawn_local(task) {
            log::error!("lvol I/O needs an spdk-io thread to run on: {e}");
            let ios = self.waiting.borrow_mut().take().unwrap_or_default();
            ios.iter()
                .for_each(|io| self.completer.complete(io.id, IoStatus::Failed));
        }
    }
}

/// A read or write ready for the blob channel.
struct RwIo {
    id: IoId,
    kind: IoType,
    buf: IoBuf,
    orig: Option<IoData>,
    /// In the blob's io units.
    uoff: u64,
    /// In the lvol's blocks, for messages.
    off: u64,
    n: u64,
}

impl ModuleChannel for LvolChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let (id, bl) = (io.id, io.block_size as u64);
        let (off, n) = (io.offset_blocks, io.num_blocks);
        let unit = self.unit;
        // Offsets in the blob's io units (the base device's blocks): the
        // lvol's own blocks unless their sizes differ.
        let units = |x: u64| if bl == unit { x } else { x * bl / unit };
        let uoff = units(off);
        let kind = io.io_type;
        match kind {
            IoType::Read | IoType::Write => {
                let len = io.len_bytes();
                // The common case: one run of clusters, straight to the base.
                if let Some(ch) = self.ch.get() {
                    let write = kind == IoType::Write;
                    let run = ch.enter_direct(self.blob_id, uoff, len, write);
                    if let Some(DirectRun::Zeroes) = run {
                        // Thin clusters never written: zeroes, no device I/O.
                        io.for_each_mut(|p| p.fill(0));
                        return self.completer.complete_ok(id);
                    }
                    if let Some(DirectRun::Dev(m, lba)) = run {
                        let m = match self.pt.get() {
                            Some(pt) => {
                                let blocks = ch.block.div(len as u64);
                                self.entered.put(id, m);
                                if pt.submit(&mut io, lba, blocks) {
                                    return;
                                }
                                self.entered.take(id)
                            }
                            None => Some(m),
                        };
                        // Not passed: through the base's descriptor.
                        if let Some(m) = m {
                            if let Some(d) = io.take_data() {
                                let r = Req { id, kind, off, n };
                                return self.submit_direct(ch, m, lba, r, d, len);
                            }
                            m.exit();
                        }
                    }
                }
                let data = io.take_data();
                let (buf, orig) = match data {
                    Some(d) => one_buf(d, len),
                    // A piece of a split I/O: its buffers are shared.
                    None if kind == IoType::Write => {
                        let mut b = IoBuf::new(len);
                        let mut at = 0;
                        io.for_each(|p| {
                            b[at..at + p.len()].copy_from_slice(p);
                            at += p.len();
                        });
                        (b, None)
                    }
                    None => {
                        log::error!("lvol: a split read cannot be served; failing it");
                        return self.completer.complete(id, IoStatus::Failed);
                    }
                };
                let rw = RwIo {
                    id,
                    kind,
                    buf,
                    orig,
                    uoff,
                    off,
                    n,
                };
                match self.ch.get() {
                    Some(ch) => self.submit_rw(ch, rw),
                    None => self.submit_first(rw),
                }
            }
            // Unmap and write-zeroes change the map: the metadata thread does them.
            IoType::Unmap | IoType::WriteZeroes => self.submit_md(kind, id, uoff, units(n), off, n),
            // SPDK's lvol fails a reset (`lvol_reset`).
            _ => self.completer.complete(id, IoStatus::Failed),
        }
    }

    /// Requests passed through to the base use this channel's buffers:
    /// wait (bounded) for the base to finish them before they are freed.
    fn shutdown(&mut self) -> bool {
        self.pt.get().map_or(true, PassThrough::drain)
    }
}

impl LvolChannel {
    /// Unmap or write-zeroes, as a task (each goes to the metadata thread).
    fn submit_md(&self, kind: IoType, id: IoId, uoff: u64, ulen: u64, off: u64, n: u64) {
        let me = self.clone();
        let task = async move {
            let done = &me.completer;
            let ch = match me.blob_channel().await {
                Ok(c) => c,
                Err(e) => {
                    log::error!("lvol: no blob channel on this thread: {e}");
                    return done.complete(id, IoStatus::Failed);
                }
            };
            let blob = me.blob_id;
            let r = match kind {
                IoType::Unmap => ch.unmap(blob, uoff, ulen).await,
                _ => ch.write_zeroes(blob, uoff, ulen).await,
            };
            match r {
                Ok(()) => done.complete_ok(id),
                Err(e) => {
                    log::error!("lvol {kind:?} at block {off} (+{n}): {e}");
                    done.complete(id, IoStatus::Failed)
                }
            }
        };
        if let Err(e) = spawn_local(task) {
            log::error!("lvol I/O needs an spdk-io thread to run on: {e}");
            self.completer.complete(id, IoStatus::Failed);
        }
    }
}
