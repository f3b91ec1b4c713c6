//! Completion callbacks stored inline in a request: a type-erased
//! `FnOnce(&mut QPair, IoCompletion)` in a fixed-size slot, so arming a
//! request never allocates.

use super::buffer::IoCompletion;
use super::qpair::QPair;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

/// Bytes available inline for a completion callback's captured state.
pub const CALLBACK_INLINE_BYTES: usize = 48;

type Slot = [usize; CALLBACK_INLINE_BYTES / size_of::<usize>()];

/// A type-erased `FnOnce(&mut QPair, IoCompletion)` stored inline.
pub(crate) struct Callback {
    data: MaybeUninit<Slot>,
    call: unsafe fn(*mut u8, &mut QPair, &mut ManuallyDrop<IoCompletion>),
    drop_fn: unsafe fn(*mut u8),
}

/// The trampoline: the completion is passed by address (by value, each
/// call through a function pointer would copy it again).
unsafe fn call_impl<F: FnOnce(&mut QPair, IoCompletion)>(
    p: *mut u8,
    qp: &mut QPair,
    c: &mut ManuallyDrop<IoCompletion>,
) {
    // SAFETY: `p` holds a live F written by Callback::new, read exactly once
    // (the Callback is not dropped afterwards: see invoke and detach), and
    // read before `f` runs, which may reuse the memory.
    let f = unsafe { p.cast::<F>().read() };
    // SAFETY: `c` holds a live completion its owner gave up (see
    // Pending::invoke). A `&mut` (unlike a raw pointer) tells the compiler
    // nothing else writes it, so its fields are read where used, not copied first.
    f(qp, unsafe { ManuallyDrop::take(c) })
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
}

/// A callback taken out of its request ([`Callback::detach`]): the
/// function to run and a bitwise copy of the captured state, which the
/// function moves out when it runs.
pub(crate) struct Pending {
    call: unsafe fn(*mut u8, &mut QPair, &mut ManuallyDrop<IoCompletion>),
    data: MaybeUninit<Slot>,
}

impl Callback {
    /// The function and a bitwise copy of the captured state (the drop
    /// function is not needed: a `Pending` is always run).
    ///
    /// # Safety
    /// The caller must then forget this `Callback` (never drop it): the
    /// state now belongs to the `Pending`, which must be run once.
    #[inline(always)]
    pub(crate) unsafe fn detach(&mut self) -> Pending {
        Pending {
            call: self.call,
            data: self.data,
        }
    }
}

impl Pending {
    /// Runs the detached callback once, moving the completion out of `c`
    /// (passed by address: moved by value it would be copied on the way).
    ///
    /// # Safety
    /// `c` must hold a live completion, which the caller gives up: it must
    /// not be used or dropped afterwards.
    #[inline(always)]
    pub(crate) unsafe fn invoke(mut self, qp: &mut QPair, c: &mut ManuallyDrop<IoCompletion>) {
        // SAFETY: `data` holds the live F that `call` was instantiated for
        // (copied by `detach`, whose Callback was forgotten), read exactly
        // once, by `call`, since `self` is consumed; `call` moves the
        // completion out of `c`, which the caller gives up.
        unsafe { (self.call)(self.data.as_mut_ptr().cast(), qp, c) }
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        // SAFETY: the callback was not invoked (invoke forgets self), so F is live.
        unsafe { (self.drop_fn)(self.data.as_mut_ptr().cast()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Instant;

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
