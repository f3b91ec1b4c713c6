//! The completions of the lvol reads and writes that do not pass through
//! to the base: one object per I/O in flight ([`LvolIo`]), recycled through
//! its channel's free list, for the blob channel's callback form and for
//! the base's descriptor; and the one-buffer view of a request's data the
//! blob channel needs.

use crate::bdev::{Completer, IoBuf, IoCompletion, IoData, IoDone, IoId, IoStatus, IoType};
use crate::blob::channel::Cached;
use crate::blob::{BlobError, BlobIoDone};
use std::cell::RefCell;
use std::rc::Rc;

/// The request's data as one [`IoBuf`]: its own buffer when it is one
/// (zero copy), else a copy, with the original pieces kept to receive a
/// read's bytes.
pub(super) fn one_buf(data: IoData, len: usize) -> (IoBuf, Option<IoData>) {
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
pub(super) struct LvolIo {
    pub id: IoId,
    pub kind: IoType,
    /// The submitter's pieces when its data was not one buffer (a read's
    /// bytes are copied back into them).
    pub orig: Option<IoData>,
    pub off: u64,
    pub n: u64,
    /// The blob's map, entered, when the I/O went straight to the base.
    pub m: Option<Rc<Cached>>,
    pub done: Completer,
    pub free: IoFree,
}

pub(super) type IoFree = Rc<RefCell<Vec<Box<LvolIo>>>>;

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

/// The completion of a read or write that went straight to the base bdev.
impl IoDone for LvolIo {
    fn io_done(mut self: Box<Self>, c: IoCompletion) {
        if let Some(m) = self.m.take() {
            m.exit();
        }
        let status = match c.status {
            IoStatus::Success => IoStatus::Success,
            // Refused for want of a base request: the bdev layer retries it.
            IoStatus::NoMem => IoStatus::NoMem,
            other => {
                let (kind, off, n) = (self.kind, self.off, self.n);
                log::error!("lvol {kind:?} at block {off} (+{n}): the base bdev says {other:?}");
                IoStatus::Failed
            }
        };
        self.done.complete_with_data(self.id, status, c.data);
        let free = self.free.clone();
        free.borrow_mut().push(self);
    }
}
