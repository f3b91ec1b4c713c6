//! The lvol bdev's per-thread channel: each I/O goes through the blob I/O
//! channel of the submitting thread (offsets mapped there through the
//! blob's cluster map, the caller's buffer handed to the base bdev's
//! channel of that thread; only allocating writes visit the metadata
//! thread) and completes through the channel's completer. Reads and writes
//! use the blob channel's callback form with recycled completions: no task,
//! no message and no allocation per I/O once warm.
//!
//! The blob channel is made on the thread's first I/O (it asks the
//! metadata thread for the store's geometry). The reads and writes that
//! arrive meanwhile wait for it and go out together, as one batch: handed
//! out one by one as each made its own channel, they would stay staggered
//! and every later poll would carry one I/O instead of a queue's worth.

use super::LvsBdev;
use crate::bdev::IoId;
use crate::bdev::{Completer, IoBuf, IoData, IoRequest, IoStatus, IoType, ModuleChannel};
use crate::blob::{BdevBsDev, BlobError, BlobId, BlobIoChannel, BlobIoDone};
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
    completer: Completer,
    /// Made on the first I/O of this thread.
    ch: Rc<OnceCell<Rc<BlobCh>>>,
    /// Reads and writes waiting for `ch` while it is being made (`None`
    /// when nothing is making it).
    waiting: Rc<RefCell<Option<Vec<RwIo>>>>,
    /// Completions of reads and writes, kept for reuse.
    free: IoFree,
}

impl LvolChannel {
    /// The channel of lvol blob `blob_id` on the calling thread; its blob
    /// channel is made on the first I/O.
    pub(crate) fn new(lvs: Arc<LvsBdev>, blob_id: BlobId, completer: Completer) -> LvolChannel {
        LvolChannel {
            lvs,
            blob_id,
            completer,
            ch: Rc::default(),
            waiting: Rc::default(),
            free: Rc::default(),
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
        Ok(self.ch.get_or_init(|| Rc::new(c)).clone())
    }
}

/// The request's data as one [`IoBuf`]: its own buffer when it is one
/// (zero copy), else a copy, with the original pieces kept to receive a
/// read's bytes.
fn one_buf(data: IoData, len: usize) -> (IoBuf, Option<IoData>) {
    match data {
        IoData::Buf(b) if b.len() == len => (b, None),
        other => {
            let mut b = IoBuf::new(len);
            let mut at = 0;
            other.for_each(0, len, |p| {
                b[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            });
            (b, Some(other))
        }
    }
}

/// An lvol read or write in flight: what its completion needs. Recycled
/// through the channel's free list, so a steady stream of I/O allocates
/// nothing.
struct LvolIo {
    id: IoId,
    kind: IoType,
    /// The submitter's pieces when its data was not one buffer (a read's
    /// bytes are copied back into them).
    orig: Option<IoData>,
    off: u64,
    n: u64,
    done: Completer,
    free: IoFree,
}

type IoFree = Rc<RefCell<Vec<Box<LvolIo>>>>;

impl BlobIoDone for LvolIo {
    fn blob_io_done(mut self: Box<Self>, r: Result<IoBuf, BlobError>) {
        let (id, orig) = (self.id, self.orig.take());
        match r {
            Ok(b) => {
                let data = match orig {
                    None => IoData::Buf(b),
                    Some(mut o) if self.kind == IoType::Read => {
                        let mut at = 0;
                        o.for_each_mut(0, b.len(), |p| {
                            p.copy_from_slice(&b[at..at + p.len()]);
                            at += p.len();
                        });
                        o
                    }
                    Some(o) => o,
                };
                self.done.complete_with_data(id, IoStatus::Success, data);
            }
            Err(e) => {
                let (kind, off, n) = (self.kind, self.off, self.n);
                log::error!("lvol {kind:?} at block {off} (+{n}): {e}");
                self.done.complete(id, IoStatus::Failed);
            }
        }
        let free = self.free.clone();
        free.borrow_mut().push(self);
    }
}

impl LvolChannel {
    /// Hands a read or write to this thread's blob channel by callback
    /// (no task, no message; nothing allocated once warm).
    fn submit_rw(&self, ch: &Rc<BlobCh>, io: RwIo) {
        let recycled = self.free.borrow_mut().pop();
        let cb = match recycled {
            Some(mut c) => {
                (c.id, c.kind, c.orig, c.off, c.n) = (io.id, io.kind, io.orig, io.off, io.n);
                c
            }
            None => Box::new(LvolIo {
                id: io.id,
                kind: io.kind,
                orig: io.orig,
                off: io.off,
                n: io.n,
                done: self.completer.clone(),
                free: self.free.clone(),
            }),
        };
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
        let unit = self.lvs.lvs.block_size() as u64;
        // Offsets in the blob's io units (the base device's blocks).
        let (uoff, ulen) = (off * bl / unit, n * bl / unit);
        let kind = io.io_type;
        match kind {
            IoType::Read | IoType::Write => {
                let len = io.len_bytes();
                let (buf, orig) = match io.take_data() {
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
            IoType::Unmap | IoType::WriteZeroes => self.submit_md(kind, id, uoff, ulen, off, n),
            // SPDK's lvol fails a reset (`lvol_reset`).
            _ => self.completer.complete(id, IoStatus::Failed),
        }
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
