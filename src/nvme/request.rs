//! Preallocated per-qpair requests: the completion callback stored inline
//! (no heap allocation per I/O), the owned buffer, the PRP list page, and the
//! parent/child links of an I/O split at the maximum transfer size.

use super::buffer::{IoBuf, IoCompletion};
use super::qpair::QPair;
use super::NvmeError;
use crate::env::DmaBuf;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::time::Instant;

/// Bytes available inline for a completion callback's captured state.
pub const CALLBACK_INLINE_BYTES: usize = 48;

type Slot = [usize; CALLBACK_INLINE_BYTES / size_of::<usize>()];

/// A type-erased `FnOnce(&mut QPair, IoCompletion)` stored inline.
pub(crate) struct Callback {
    data: MaybeUninit<Slot>,
    call: unsafe fn(*mut u8, &mut QPair, IoCompletion),
    drop_fn: unsafe fn(*mut u8),
}

unsafe fn call_impl<F: FnOnce(&mut QPair, IoCompletion)>(
    p: *mut u8,
    qp: &mut QPair,
    c: IoCompletion,
) {
    // SAFETY: `p` holds a live F written by Callback::new, read exactly once
    // (the Callback is not dropped afterwards: see invoke).
    let f = unsafe { p.cast::<F>().read() };
    f(qp, c)
}

unsafe fn drop_impl<F>(p: *mut u8) {
    // SAFETY: `p` holds a live F not yet read (drop runs only when invoke did not).
    unsafe { p.cast::<F>().drop_in_place() }
}

impl Callback {
    /// Stores `f` inline. A closure that captures more than
    /// [`CALLBACK_INLINE_BYTES`] fails to compile: capture a reference-counted
    /// pointer or an index instead.
    #[inline]
    pub(crate) fn new<F: FnOnce(&mut QPair, IoCompletion) + 'static>(f: F) -> Self {
        const {
            assert!(
                size_of::<F>() <= CALLBACK_INLINE_BYTES,
                "I/O completion callback captures too much: keep it within CALLBACK_INLINE_BYTES"
            );
            assert!(align_of::<F>() <= align_of::<Slot>());
        }
        let mut data = MaybeUninit::<Slot>::uninit();
        // SAFETY: the slot is large and aligned enough for F (checked above).
        unsafe { data.as_mut_ptr().cast::<F>().write(f) };
        Callback {
            data,
            call: call_impl::<F>,
            drop_fn: drop_impl::<F>,
        }
    }

    /// Runs the callback once.
    #[inline]
    pub(crate) fn invoke(self, qp: &mut QPair, c: IoCompletion) {
        let mut me = ManuallyDrop::new(self);
        // SAFETY: the slot holds the F that `call` was instantiated for; `me`
        // is never dropped, so F is moved out exactly once.
        unsafe { (me.call)(me.data.as_mut_ptr().cast(), qp, c) }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        // SAFETY: the callback was not invoked (invoke forgets self), so F is live.
        unsafe { (self.drop_fn)(self.data.as_mut_ptr().cast()) }
    }
}

/// Who hears of a request's completion.
pub(crate) enum Notify {
    /// Nobody: a child of a split I/O, or a request whose queue was
    /// deleted with it in flight.
    None,
    /// Its callback.
    Call(Callback),
    /// The handler passed to [`QPair::process_completions_tagged`], with
    /// this tag.
    Tag(u64),
}

/// No parent: a request that completes to its own callback.
pub(crate) const NO_PARENT: u16 = u16::MAX;

/// What a request slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqState {
    /// On the free list.
    Free,
    /// A command in the submission queue (or a parent waiting for its children).
    Outstanding,
}

/// One request slot; its index is the command identifier (CID).
pub(crate) struct Request {
    pub(crate) state: ReqState,
    pub(crate) notify: Notify,
    pub(crate) buf: IoBuf,
    /// PRP list page (also holds Dataset Management ranges).
    pub(crate) page: DmaBuf,
    pub(crate) page_iova: u64,
    pub(crate) parent: u16,
    /// Children not yet completed (parents only).
    pub(crate) children_left: u16,
    /// First failure among the children (parents only).
    pub(crate) child_error: Option<NvmeError>,
    /// When submitted (only recorded when timeouts are enabled).
    pub(crate) submitted: Option<Instant>,
    /// An Abort was already sent for this command.
    pub(crate) abort_sent: bool,
    /// Opcode, for timeout reports.
    pub(crate) opc: u8,
    /// A child's byte offset in its parent's buffer (set by a split; an
    /// NVMe/TCP queue pair sends and receives the child's data there).
    pub(crate) data_off: u32,
    /// NVMe/TCP only: the bytes a tagged I/O ([`QPair::rw_tagged`]) lent
    /// (start, length), which the connection sends from or receives into.
    pub(crate) lent: (*mut u8, usize),
}

/// The per-qpair request pool: slots and a LIFO free list.
pub(crate) struct RequestPool {
    pub(crate) reqs: Vec<Request>,
    free: Vec<u16>,
}

impl RequestPool {
    /// `n` requests, each with its own 4 KiB PRP list page.
    pub(crate) fn new(n: u16) -> Result<Self, NvmeError> {
        let mut reqs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let page = DmaBuf::alloc_zeroed(super::prp::PAGE_SIZE, super::prp::PAGE_SIZE)?;
            let page_iova = page.iova();
            reqs.push(Request {
                state: ReqState::Free,
                notify: Notify::None,
                buf: IoBuf::None,
                page,
                page_iova,
                parent: NO_PARENT,
                children_left: 0,
                child_error: None,
                submitted: None,
                abort_sent: false,
                opc: 0,
                data_off: 0,
                lent: (std::ptr::null_mut(), 0),
            });
        }
        let free = (0..n).rev().collect();
        Ok(RequestPool { reqs, free })
    }
    /// Free requests.
    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }
    /// Total requests.
    pub(crate) fn capacity(&self) -> usize {
        self.reqs.len()
    }
    /// Takes a free request (state becomes Outstanding).
    #[inline]
    pub(crate) fn alloc(&mut self) -> Option<u16> {
        let cid = self.free.pop()?;
        let r = &mut self.reqs[cid as usize];
        r.state = ReqState::Outstanding;
        r.parent = NO_PARENT;
        r.children_left = 0;
        r.abort_sent = false;
        r.submitted = None;
        Some(cid)
    }
    /// Returns a request to the free list (its notification and buffer must have been taken).
    #[inline]
    pub(crate) fn release(&mut self, cid: u16) {
        let r = &mut self.reqs[cid as usize];
        debug_assert_eq!(r.state, ReqState::Outstanding);
        r.state = ReqState::Free;
        self.free.push(cid);
    }
    /// Gives up every request's PRP list page without freeing it (see
    /// [`QPair::shutdown`] returning false). Call only when the pool is
    /// about to be dropped.
    pub(crate) fn leak(&mut self) {
        std::mem::forget(std::mem::take(&mut self.reqs));
    }
    /// True when `cid` names an outstanding request.
    pub(crate) fn is_outstanding(&self, cid: u16) -> bool {
        self.reqs
            .get(cid as usize)
            .is_some_and(|r| r.state == ReqState::Outstanding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn a_callback_never_invoked_still_drops_what_it_captured() {
        let token = Rc::new(());
        let t = token.clone();
        let cb = Callback::new(move |_: &mut QPair, _: IoCompletion| drop(t));
        assert_eq!(Rc::strong_count(&token), 2);
        drop(cb);
        assert_eq!(
            Rc::strong_count(&token),
            1,
            "captured state dropped exactly once"
        );
    }

    #[test]
    fn the_inline_slot_fits_a_shared_pointer_and_a_timestamp() {
        // What a typical completion captures: a context pointer and a submit time.
        let rc = Rc::new(std::cell::Cell::new(0u32));
        let now = Instant::now();
        let f = move |_: &mut QPair, _: IoCompletion| rc.set(now.elapsed().as_nanos() as u32);
        assert!(size_of_val(&f) <= CALLBACK_INLINE_BYTES);
        drop(Callback::new(f));
    }
}
