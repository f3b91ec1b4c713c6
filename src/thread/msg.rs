//! `Msg`: a type-erased `FnOnce() + Send` stored inline (no heap allocation)
//! when the closure fits [`MSG_INLINE_SIZE`] bytes, boxed otherwise.
//!
//! The storage is the environment's [`InlineFn`] (the NVMe driver's
//! completion callbacks are one too); this file is only its face for a
//! message, with no `unsafe` of its own.

use crate::env::inline_fn::{self, InlineFn, Sendable};

/// Bytes a message closure may capture and still be stored without a heap
/// allocation (its alignment must also be at most a pointer's).
pub const MSG_INLINE_SIZE: usize = inline_fn::INLINE_FN_BYTES;

/// A message: a closure to run once on a lightweight thread.
///
/// A closure of up to [`MSG_INLINE_SIZE`] bytes (pointer-aligned) is stored
/// inside the `Msg` itself, so sending it costs no heap allocation; a larger
/// one is boxed. Dropping a `Msg` without running it drops the closure.
/// `Send` (its closure is), not `Sync`.
pub struct Msg(InlineFn<(), Sendable>);

impl Msg {
    /// Wraps `f`; inline when it fits, boxed otherwise.
    #[inline]
    pub fn new<F: FnOnce() + Send + 'static>(f: F) -> Msg {
        // The adapter captures `f` alone: it is exactly as large.
        Msg(InlineFn::new_send(move |()| f()))
    }

    /// Whether a closure of type `F` is stored without a heap allocation.
    pub const fn fits_inline<F>() -> bool {
        inline_fn::fits_inline::<F>()
    }

    /// Runs the closure, consuming the message.
    #[inline]
    pub fn run(self) {
        self.0.call(())
    }
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn small_closure_runs_once_with_its_captures() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let m = Msg::new(move || {
            h.fetch_add(7, Ordering::SeqCst);
        });
        m.run();
        assert_eq!(hits.load(Ordering::SeqCst), 7);
        assert_eq!(
            Arc::strong_count(&hits),
            1,
            "captured Arc dropped after run"
        );
    }

    #[test]
    fn large_closure_falls_back_to_a_box_and_still_runs() {
        let big = [3u64; 32];
        let out = Arc::new(AtomicUsize::new(0));
        let o = out.clone();
        let f = move || {
            o.store(big.iter().sum::<u64>() as usize, Ordering::SeqCst);
        };
        assert!(!Msg::fits_inline_of(&f));
        Msg::new(f).run();
        assert_eq!(out.load(Ordering::SeqCst), 96);
    }

    #[test]
    fn dropping_an_unrun_message_drops_its_captures() {
        let token = Arc::new(());
        let t = token.clone();
        let m = Msg::new(move || drop(t));
        assert_eq!(Arc::strong_count(&token), 2);
        drop(m);
        assert_eq!(Arc::strong_count(&token), 1);
    }

    #[test]
    fn a_message_is_one_cache_line() {
        assert_eq!(std::mem::size_of::<Msg>(), 64);
    }

    #[test]
    fn over_aligned_capture_is_boxed() {
        #[repr(align(64))]
        struct Wide(u8);
        let w = Wide(5);
        let f = move || {
            let whole = w; // capture the whole value, not just the field
            assert_eq!(whole.0, 5);
        };
        assert!(!Msg::fits_inline_of(&f));
        Msg::new(f).run();
    }

    impl Msg {
        fn fits_inline_of<F>(_: &F) -> bool {
            Self::fits_inline::<F>()
        }
    }
}
