//! Completion callbacks stored inline in a request: a type-erased
//! `FnOnce(&mut QPair, IoCompletion)` in the environment's [`InlineFn`]
//! (the thread layer's messages are one too), so arming a request never
//! allocates. This file is its face for a completion: the queue pair and
//! the completion travel by address, so the completion is not copied on
//! the way (moved by value, each call through a function pointer would
//! copy it again).

use super::buffer::IoCompletion;
use super::qpair::QPair;
use crate::env::inline_fn::{Detached, InlineFn, INLINE_FN_BYTES};
use std::mem::ManuallyDrop;

/// Bytes available inline for a completion callback's captured state.
pub const CALLBACK_INLINE_BYTES: usize = INLINE_FN_BYTES;

/// What the erased function gets: the queue pair and the completion, by address.
type Args = (*mut QPair, *mut ManuallyDrop<IoCompletion>);

/// A type-erased `FnOnce(&mut QPair, IoCompletion)` stored inline.
pub(crate) struct Callback(InlineFn<Args>);

impl Callback {
    /// Stores `f` inline. A closure that captures more than
    /// [`CALLBACK_INLINE_BYTES`] fails to compile: capture a reference-counted
    /// pointer or an index instead.
    #[inline]
    pub(crate) fn new<F: FnOnce(&mut QPair, IoCompletion) + 'static>(f: F) -> Self {
        // The adapter captures `f` alone: it is exactly as large.
        Callback(InlineFn::new_inline(move |(qp, c): Args| {
            // SAFETY: `Pending::invoke`, the only caller, passes a live queue
            // pair borrowed mutably for the call and a live completion its
            // owner gave up: both are used here once. A `&mut` (unlike the
            // raw pointer) tells the compiler nothing else writes the
            // completion, so its fields are read where used, not copied first.
            unsafe { f(&mut *qp, ManuallyDrop::take(&mut *c)) }
        }))
    }

    /// The function and a bitwise copy of the captured state (the drop
    /// function is not needed: a `Pending` is always run).
    ///
    /// # Safety
    /// The caller must then forget this `Callback` (never drop it): the
    /// state now belongs to the `Pending`, which must be run once.
    #[inline(always)]
    pub(crate) unsafe fn detach(&mut self) -> Pending {
        // SAFETY: the caller forgets this Callback, as `InlineFn::detach` asks.
        Pending(unsafe { self.0.detach() })
    }
}

/// A callback taken out of its request ([`Callback::detach`]): the
/// function to run and a bitwise copy of the captured state, which the
/// function moves out when it runs.
pub(crate) struct Pending(Detached<Args>);

impl Pending {
    /// Runs the detached callback once, moving the completion out of `c`
    /// (passed by address: moved by value it would be copied on the way).
    ///
    /// # Safety
    /// `c` must hold a live completion, which the caller gives up: it must
    /// not be used or dropped afterwards.
    #[inline(always)]
    pub(crate) unsafe fn invoke(self, qp: &mut QPair, c: &mut ManuallyDrop<IoCompletion>) {
        // The callback (see `Callback::new`) takes the completion out of
        // `c`, which the caller gives up, and uses `qp` only for the call.
        self.0.call((qp as *mut QPair, c as *mut _))
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
        assert!(std::mem::size_of_val(&f) <= CALLBACK_INLINE_BYTES);
        drop(Callback::new(f));
    }
}
