//! Async I/O on a queue pair ([`AsyncQPair`]): `read`, `write`, `compare`,
//! `flush_ns` and `write_zeroes` as futures that take their DMA buffer and
//! hand it back with the status, as the bdev layer's async calls do.
//!
//! It sits over [`QPair`]'s callback API: each I/O gets a slot from a table
//! sized to the queue (made once; no allocation per I/O), its callback
//! (a weak reference and the slot number, stored inline in the request)
//! parks the completion in the slot and wakes the future. The queue pair
//! is polled by whoever awaits: a pending future runs
//! [`QPair::process_completions`] itself and asks to be polled again (a
//! polled-mode driver has no interrupt to wait for), and any completion
//! reaped there — or by a host that polls the queue pair itself with
//! [`AsyncQPair::process_completions`] — wakes its own future.
//!
//! Dropping a future before it completes does not stop the command: the
//! buffer stays with the request until the device is done with it, and
//! the completion frees the slot.

use super::buffer::{DmaSlice, IoBuf, IoCompletion};
use super::namespace::Namespace;
use super::qpair::QPair;
use super::NvmeError;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

/// Submits one I/O: `$call` runs with the queue pair `$qp` and the
/// completion callback `$cb`; a refusal before it hands `$buf` back.
macro_rules! submit_io {
    ($self:expr, $buf:ident, $qp:ident, $cb:ident => $call:expr) => {{
        match $self.begin() {
            Ok((mut $qp, idx, gen, $cb)) => {
                let r = $call;
                drop($qp);
                $self.submitted(idx, gen, r)
            }
            Err(e) => $self.refused(e, $buf),
        }
    }};
}

/// A failed async I/O: why, and the buffer it took, handed back.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct AsyncIoFailed {
    /// Why it failed: refused at submission (a bad range, a full queue:
    /// [`NvmeError::QueueFull`]) or completed with an error status.
    #[source]
    pub error: NvmeError,
    /// The buffer the I/O took.
    pub buf: IoBuf,
}

/// What an async I/O resolves to: the buffer on success; the error and the
/// buffer otherwise (boxed: the error path is the rare one).
pub type AsyncIoResult = Result<IoBuf, Box<AsyncIoFailed>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlotState {
    Free,
    /// Submitted; the future waits.
    InFlight,
    /// Completed; the future has not taken the result yet.
    Done,
    /// Submitted, and its future was dropped: the completion frees it.
    Orphan,
}

struct Slot {
    state: SlotState,
    /// Bumped on each use: a future only takes the result of its own I/O.
    gen: u32,
    result: Result<(), NvmeError>,
    buf: IoBuf,
    waker: Option<Waker>,
}

struct Slots {
    slot: Vec<Slot>,
    free: Vec<u32>,
}

struct Inner {
    qp: RefCell<QPair>,
    slots: RefCell<Slots>,
}

impl Inner {
    /// A completion, from inside the queue pair's poll.
    fn complete(&self, idx: u32, c: IoCompletion) {
        let waker = {
            let mut slots = self.slots.borrow_mut();
            let Slots { slot, free } = &mut *slots;
            let s = &mut slot[idx as usize];
            match s.state {
                SlotState::InFlight => {
                    s.state = SlotState::Done;
                    s.result = c.result;
                    s.buf = c.buf;
                    s.waker.take()
                }
                // Nobody waits: the buffer goes with the completion.
                _ => {
                    s.state = SlotState::Free;
                    s.waker = None;
                    free.push(idx);
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A queue pair whose I/O calls are futures (see the module docs). `!Send`,
/// like the queue pair; cloning gives another handle to the same one.
///
/// ```
/// use spdk_io::env::{self, DmaBuf, EnvOpts};
/// use spdk_io::nvme::emu::EmuController;
/// use spdk_io::nvme::{AsyncQPair, Controller, ControllerOpts, QPairOpts};
/// use spdk_io::thread::Thread;
/// use std::sync::Arc;
///
/// env::init(EnvOpts::no_huge())?;
/// let emu = Arc::new(EmuController::builder().namespace(512, 1024).build()?);
/// let ctrlr = Controller::attach(emu, ControllerOpts::default())?;
/// let ns = ctrlr.namespace(1)?;
/// let qp = AsyncQPair::new(ctrlr.alloc_io_qpair(QPairOpts::default())?);
/// let t = Thread::new("app");
/// let back = t.block_on(async {
///     let mut buf = DmaBuf::alloc_zeroed(4096, 4096)?;
///     buf.fill(0xa5);
///     let buf = qp.write(&ns, buf, 0, 8).await?;
///     let mut buf = buf.into_dma_buf().ok_or("one buffer back")?;
///     buf.fill(0);
///     let buf = qp.read(&ns, buf, 0, 8).await?;
///     Ok::<_, Box<dyn std::error::Error>>(buf.into_dma_buf().ok_or("one buffer back")?)
/// })??;
/// assert!(back.iter().all(|&b| b == 0xa5));
/// # drop((back, qp)); t.shutdown()?; t.destroy()?; drop(ctrlr); env::fini();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AsyncQPair {
    inner: Rc<Inner>,
}

impl AsyncQPair {
    /// Wraps `qp`; its slot table holds as many I/Os as the queue has
    /// requests.
    pub fn new(qp: QPair) -> AsyncQPair {
        let n = qp.free_requests().max(1);
        let slot = (0..n)
            .map(|_| Slot {
                state: SlotState::Free,
                gen: 0,
                result: Ok(()),
                buf: IoBuf::None,
                waker: None,
            })
            .collect();
        let free = (0..n as u32).rev().collect();
        AsyncQPair {
            inner: Rc::new(Inner {
                qp: RefCell::new(qp),
                slots: RefCell::new(Slots { slot, free }),
            }),
        }
    }

    /// Runs `f` on the queue pair (its counters, its callback API).
    /// Panics if called from inside one of the queue pair's callbacks.
    pub fn with_qpair<R>(&self, f: impl FnOnce(&mut QPair) -> R) -> R {
        f(&mut self.inner.qp.borrow_mut())
    }

    /// Polls the queue pair once ([`QPair::process_completions`]): for a
    /// host that polls it from its own loop or poller. Completions wake
    /// their futures. Returns the I/Os completed.
    pub fn process_completions(&self) -> Result<usize, NvmeError> {
        self.inner.qp.borrow_mut().process_completions(0)
    }

    /// I/Os submitted through this wrapper and not completed yet (their
    /// futures may have been dropped).
    pub fn outstanding(&self) -> usize {
        let s = self.inner.slots.borrow();
        s.slot.len() - s.free.len()
    }

    /// Reads `lba_count` blocks at `lba` into `buf`; resolves to the buffer.
    pub fn read(
        &self,
        ns: &Namespace,
        buf: impl Into<DmaSlice>,
        lba: u64,
        lba_count: u32,
    ) -> NvmeIo {
        let buf: DmaSlice = buf.into();
        submit_io!(self, buf, qp, cb => qp.read(ns, buf, lba, lba_count, cb))
    }

    /// Writes `buf` to `lba_count` blocks at `lba`; resolves to the buffer.
    pub fn write(
        &self,
        ns: &Namespace,
        buf: impl Into<DmaSlice>,
        lba: u64,
        lba_count: u32,
    ) -> NvmeIo {
        let buf: DmaSlice = buf.into();
        submit_io!(self, buf, qp, cb => qp.write(ns, buf, lba, lba_count, cb))
    }

    /// Compares `buf` with `lba_count` blocks at `lba`; a difference fails
    /// with the media status "Compare Failure".
    pub fn compare(
        &self,
        ns: &Namespace,
        buf: impl Into<DmaSlice>,
        lba: u64,
        lba_count: u32,
    ) -> NvmeIo {
        let buf: DmaSlice = buf.into();
        submit_io!(self, buf, qp, cb => qp.compare(ns, buf, lba, lba_count, cb))
    }

    /// NVMe Flush: commits the namespace's volatile write cache (not
    /// [`QPair::flush`], which rings the doorbell).
    pub fn flush_ns(&self, ns: &Namespace) -> NvmeIo {
        let none = IoBuf::None;
        submit_io!(self, none, qp, cb => qp.flush_ns(ns, cb))
    }

    /// Write Zeroes over `lba_count` blocks at `lba`.
    pub fn write_zeroes(&self, ns: &Namespace, lba: u64, lba_count: u32) -> NvmeIo {
        let none = IoBuf::None;
        submit_io!(self, none, qp, cb => qp.write_zeroes(ns, lba, lba_count, cb))
    }

    /// Borrows the queue pair and takes a free slot: the slot's number and
    /// generation, and the callback that completes it (a weak reference
    /// and a number, stored inline in the request).
    #[allow(clippy::type_complexity)]
    fn begin(
        &self,
    ) -> Result<
        (
            std::cell::RefMut<'_, QPair>,
            u32,
            u32,
            impl FnOnce(&mut QPair, IoCompletion) + 'static,
        ),
        NvmeError,
    > {
        let qp = self.inner.qp.try_borrow_mut().map_err(|_| {
            NvmeError::InvalidArgument(
                "async I/O submitted from inside one of the queue pair's own callbacks: submit from the task instead".into(),
            )
        })?;
        let mut slots = self.inner.slots.borrow_mut();
        let idx = slots.free.pop().ok_or(NvmeError::QueueFull)?;
        let s = &mut slots.slot[idx as usize];
        s.gen = s.gen.wrapping_add(1);
        s.state = SlotState::InFlight;
        let gen = s.gen;
        let weak: Weak<Inner> = Rc::downgrade(&self.inner);
        let cb = move |_qp: &mut QPair, c: IoCompletion| {
            if let Some(inner) = weak.upgrade() {
                inner.complete(idx, c);
            }
        };
        Ok((qp, idx, gen, cb))
    }

    /// The future of an I/O the queue pair took, or of one it refused
    /// (the slot goes back, the buffer comes back).
    fn submitted(&self, idx: u32, gen: u32, r: Result<(), super::SubmitError>) -> NvmeIo {
        match r {
            Ok(()) => NvmeIo {
                inner: self.inner.clone(),
                st: IoState::Waiting { idx, gen },
            },
            Err(e) => {
                let mut slots = self.inner.slots.borrow_mut();
                slots.slot[idx as usize].state = SlotState::Free;
                slots.free.push(idx);
                drop(slots);
                self.refused(e.error, e.buf)
            }
        }
    }

    fn refused(&self, error: NvmeError, buf: impl Into<IoBuf>) -> NvmeIo {
        NvmeIo {
            inner: self.inner.clone(),
            st: IoState::Refused(Some(Box::new(AsyncIoFailed {
                error,
                buf: buf.into(),
            }))),
        }
    }
}

impl From<QPair> for AsyncQPair {
    fn from(qp: QPair) -> Self {
        AsyncQPair::new(qp)
    }
}

/// The future of one I/O on an [`AsyncQPair`]; resolves to the buffer, or
/// to the error and the buffer ([`AsyncIoResult`]).
#[must_use = "the I/O runs anyway; await the future to get the buffer back"]
pub struct NvmeIo {
    inner: Rc<Inner>,
    st: IoState,
}

enum IoState {
    Waiting { idx: u32, gen: u32 },
    Refused(Option<Box<AsyncIoFailed>>),
    Finished,
}

impl Future for NvmeIo {
    type Output = AsyncIoResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AsyncIoResult> {
        let (idx, gen) = match &mut self.st {
            IoState::Waiting { idx, gen } => (*idx, *gen),
            IoState::Refused(f) => {
                let f = f.take();
                self.st = IoState::Finished;
                return Poll::Ready(Err(f.unwrap_or_else(finished_twice)));
            }
            IoState::Finished => return Poll::Ready(Err(finished_twice())),
        };
        if let Some(r) = self.take(idx, gen) {
            return Poll::Ready(r);
        }
        // Nothing wakes a polled-mode queue pair but its poll: run it.
        let polled = match self.inner.qp.try_borrow_mut() {
            Ok(mut qp) => qp.process_completions(0).map(|_| ()),
            Err(_) => Ok(()),
        };
        if let Some(r) = self.take(idx, gen) {
            return Poll::Ready(r);
        }
        if let Err(e) = polled {
            // The queue pair failed (controller gone or reset failed): the
            // I/O will not complete. The buffer stays with the request.
            self.forget(idx);
            return Poll::Ready(Err(Box::new(AsyncIoFailed {
                error: e,
                buf: IoBuf::None,
            })));
        }
        {
            let mut slots = self.inner.slots.borrow_mut();
            let s = &mut slots.slot[idx as usize];
            if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.waker = Some(cx.waker().clone());
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl NvmeIo {
    /// The result of slot `idx` if its I/O completed (and frees the slot).
    fn take(&mut self, idx: u32, gen: u32) -> Option<AsyncIoResult> {
        let mut slots = self.inner.slots.borrow_mut();
        let Slots { slot, free } = &mut *slots;
        let s = &mut slot[idx as usize];
        if s.gen != gen || s.state != SlotState::Done {
            return None;
        }
        s.state = SlotState::Free;
        s.waker = None;
        let buf = std::mem::take(&mut s.buf);
        let result = std::mem::replace(&mut s.result, Ok(()));
        free.push(idx);
        drop(slots);
        self.st = IoState::Finished;
        Some(match result {
            Ok(()) => Ok(buf),
            Err(error) => Err(Box::new(AsyncIoFailed { error, buf })),
        })
    }

    /// Leaves slot `idx` to its completion (the future is done with it).
    fn forget(&mut self, idx: u32) {
        let mut slots = self.inner.slots.borrow_mut();
        let Slots { slot, free } = &mut *slots;
        let s = &mut slot[idx as usize];
        s.waker = None;
        match s.state {
            SlotState::InFlight => s.state = SlotState::Orphan,
            SlotState::Done => {
                s.state = SlotState::Free;
                s.buf = IoBuf::None;
                free.push(idx);
            }
            _ => {}
        }
        self.st = IoState::Finished;
    }
}

impl Drop for NvmeIo {
    fn drop(&mut self) {
        if let IoState::Waiting { idx, gen } = self.st {
            if self.inner.slots.borrow().slot[idx as usize].gen == gen {
                self.forget(idx);
            }
        }
    }
}

fn finished_twice() -> Box<AsyncIoFailed> {
    Box::new(AsyncIoFailed {
        error: NvmeError::InvalidArgument("async I/O future polled after it finished".into()),
        buf: IoBuf::None,
    })
}
