//! Shared plumbing of virtual bdevs: a per-thread [`Forwarder`] that sends
//! a request on to the base bdev and reports the base's completion back,
//! and [`BaseLink`], the open-and-claim of a base with hot-remove wiring.
//!
//! Forwarding passes the request through to the base's module channel
//! ([`PassThrough`]: the buffers stay in the request, the base's channel
//! counts it, the completion comes straight back) whenever the base's
//! channel allows; otherwise (a reset, a range lock, QoS, a split at the
//! base...) it takes the submitter's buffers ([`IoRequest::take_data`]),
//! submits a base I/O through the descriptor, and returns them with the
//! completion. The callback objects of that path are recycled through a
//! free list, so forwarding allocates nothing per I/O once warm.

use super::{
    open_ext, Bdev, BdevError, BdevEvent, Channel, Completer, Desc, IoCompletion, IoData, IoDone,
    IoId, IoRequest, IoStatus, IoType, PassThrough, Result,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};

/// A base bdev opened (writable) and claimed by a virtual bdev module.
/// When the base is removed, the virtual bdev on top is unregistered.
pub struct BaseLink {
    /// The descriptor on the base.
    pub desc: Desc,
    top: Tops,
}

impl BaseLink {
    /// Opens `base` for writing and claims it for `module`.
    pub fn open(base: &str, module: &str) -> Result<BaseLink> {
        let top: Tops = Arc::new(Mutex::new(Vec::new()));
        let t = top.clone();
        let desc = open_ext(base, true, move |ev, _| {
            if ev == BdevEvent::Remove {
                let tops: Vec<Arc<Bdev>> = t
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .filter_map(Weak::upgrade)
                    .collect();
                for b in tops {
                    b.unregister();
                }
            }
        })?;
        desc.claim(module)?;
        Ok(BaseLink { desc, top })
    }

    /// A handle that records the virtual bdev built on the base, so a
    /// hot-remove of the base unregisters it.
    pub fn top_setter(&self) -> TopSetter {
        TopSetter(self.top.clone())
    }
}

/// Records the virtual bdevs on top of a [`BaseLink`].
pub struct TopSetter(Tops);

impl TopSetter {
    /// Records `top` (call once per virtual bdev on the base).
    pub fn set(&self, top: &Arc<Bdev>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(top));
    }
}

type Tops = Arc<Mutex<Vec<Weak<Bdev>>>>;

type FreeList = Rc<RefCell<Vec<Box<Forwarded>>>>;

/// The callback of one forwarded I/O; goes back to the free list when done.
struct Forwarded {
    id: IoId,
    done: Completer,
    free: FreeList,
}

impl IoDone for Forwarded {
    fn io_done(self: Box<Self>, c: IoCompletion) {
        self.done.complete_with_data(self.id, c.status, c.data);
        let free = self.free.clone();
        free.borrow_mut().push(self);
    }
}

/// One thread's path from a virtual bdev to its base.
pub struct Forwarder {
    /// Descriptor on the base.
    pub desc: Desc,
    /// This thread's channel to the base.
    pub ch: Channel,
    /// The virtual bdev channel's completer.
    pub done: Completer,
    pt: PassThrough,
    free: FreeList,
}

impl Forwarder {
    /// A forwarder for this thread.
    pub fn new(desc: Desc, done: Completer) -> Result<Forwarder> {
        let ch = desc.get_io_channel()?;
        let pt = PassThrough::new(&desc, ch.clone(), Box::new(done.clone()))?;
        Ok(Forwarder {
            desc,
            ch,
            done,
            pt,
            free: Rc::new(RefCell::new(Vec::new())),
        })
    }

    /// Sends `io` to the base at `offset_blocks + shift`; the base's status
    /// (and the buffers) come back as `io`'s completion.
    #[inline]
    pub fn forward(&mut self, mut io: IoRequest<'_>, shift: u64) {
        if io.io_type != IoType::Reset {
            let (off, n) = (io.offset_blocks + shift, io.num_blocks);
            if self.pt.submit(&mut io, off, n) {
                return;
            }
        }
        self.forward_whole(io, shift)
    }

    /// The ordinary path: a base I/O through the descriptor.
    #[cold]
    fn forward_whole(&mut self, mut io: IoRequest<'_>, shift: u64) {
        let Some(data) = io.take_data() else {
            log::error!("virtual bdev: a split piece its base's channel must see whole cannot be forwarded (the base's limits are tighter than the virtual bdev's)");
            self.done.complete(io.id, IoStatus::Failed);
            return;
        };
        let cb = match self.free.borrow_mut().pop() {
            Some(mut b) => {
                b.id = io.id;
                b
            }
            None => Box::new(Forwarded {
                id: io.id,
                done: self.done.clone(),
                free: self.free.clone(),
            }),
        };
        let r = if io.io_type == IoType::Reset {
            self.desc.reset(&self.ch, cb)
        } else {
            self.desc.submit(
                &self.ch,
                io.io_type,
                io.offset_blocks + shift,
                io.num_blocks,
                data,
                cb,
            )
        };
        if let Err(rej) = r {
            let status = if rej.error == BdevError::NoMem {
                IoStatus::NoMem
            } else {
                IoStatus::Failed
            };
            if status == IoStatus::Failed {
                log::error!("forwarding to base failed: {}", rej.error);
            }
            self.done.complete_with_data(io.id, status, rej.data);
        }
    }

    /// Completes `io` without forwarding.
    pub fn fail(&self, io: &mut IoRequest<'_>, status: IoStatus) {
        let data = io.take_data().unwrap_or(IoData::None);
        self.done.complete_with_data(io.id, status, data);
    }

    /// Polls the base channel (called from the virtual channel's poll).
    pub fn poll(&mut self) -> usize {
        self.ch.poll()
    }

    /// For the virtual channel's [`ModuleChannel::shutdown`](super::ModuleChannel::shutdown):
    /// waits (bounded) for the requests passed through to the base; `false`
    /// if some are still there (see [`PassThrough::drain`]).
    pub fn shutdown(&mut self) -> bool {
        self.pt.drain()
    }
}
