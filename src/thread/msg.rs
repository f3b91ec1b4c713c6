//! `Msg`: a type-erased `FnOnce() + Send` stored inline (no heap allocation)
//! when the closure fits [`MSG_INLINE_SIZE`] bytes, boxed otherwise.
//!
//! One of the two places in the thread layer with `unsafe` (the other is
//! moving a thread between reactors): storing a closure of any type in a
//! fixed buffer, as SPDK passes a function pointer and a `void *ctx`. The rules are small: the buffer is
//! written exactly once in [`Msg::new`], and read or dropped exactly once,
//! either by [`Msg::run`] or by `Drop`.

use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::ptr;

/// Bytes a message closure may capture and still be stored without a heap
/// allocation (its alignment must also be at most 16).
pub const MSG_INLINE_SIZE: usize = 48;

#[repr(C, align(16))]
struct Storage([MaybeUninit<u8>; MSG_INLINE_SIZE]);

struct VTable {
    call: unsafe fn(*mut u8),
    drop: unsafe fn(*mut u8),
}

struct Shim<F>(PhantomData<F>);

// The inline closure buffer: reading/dropping an erased `F` in place.
#[allow(unsafe_code)]
impl<F: FnOnce()> Shim<F> {
    const VTABLE: VTable = VTable {
        call: Self::call,
        drop: Self::drop_in_place,
    };

    /// # Safety
    /// `p` points to an initialized, suitably aligned `F` that nobody reads again.
    unsafe fn call(p: *mut u8) {
        // SAFETY: the caller guarantees `p` holds a live `F` that is moved out here exactly once.
        let f = unsafe { ptr::read(p.cast::<F>()) };
        f()
    }

    /// # Safety
    /// `p` points to an initialized, suitably aligned `F` that nobody reads again.
    unsafe fn drop_in_place(p: *mut u8) {
        // SAFETY: the caller guarantees `p` holds a live `F` that is dropped here exactly once.
        unsafe { ptr::drop_in_place(p.cast::<F>()) }
    }
}

/// A message: a closure to run once on a lightweight thread.
///
/// A closure of up to [`MSG_INLINE_SIZE`] bytes (alignment ≤ 16) is stored
/// inside the `Msg` itself, so sending it costs no heap allocation; a larger
/// one is boxed. Dropping a `Msg` without running it drops the closure.
pub struct Msg {
    vtable: &'static VTable,
    storage: Storage,
    /// The erased closure's auto traits are unknown: opt out of both,
    /// then opt back into `Send` below.
    _erased: PhantomData<*mut ()>,
}

#[allow(unsafe_code)]
// SAFETY: a Msg is only constructed from an `F: Send` (see `Msg::new`), so
// moving it to another OS thread moves a `Send` value. It stays `!Sync`.
unsafe impl Send for Msg {}

// Writing the closure into the buffer and moving it out to run it.
#[allow(unsafe_code)]
impl Msg {
    /// Wraps `f`; inline when it fits, boxed otherwise.
    pub fn new<F: FnOnce() + Send + 'static>(f: F) -> Msg {
        if Self::fits_inline::<F>() {
            Self::inline(f)
        } else {
            let boxed = Box::new(f);
            Self::inline(boxed)
        }
    }

    /// Whether a closure of type `F` is stored without a heap allocation.
    pub const fn fits_inline<F>() -> bool {
        size_of::<F>() <= MSG_INLINE_SIZE && align_of::<F>() <= align_of::<Storage>()
    }

    fn inline<F: FnOnce() + Send + 'static>(f: F) -> Msg {
        assert!(Self::fits_inline::<F>());
        let mut storage = Storage([MaybeUninit::uninit(); MSG_INLINE_SIZE]);
        // SAFETY: F's size and alignment fit the buffer (asserted above) and
        // the buffer is fresh, so writing an F at its start is in bounds and aligned.
        unsafe { ptr::write(storage.0.as_mut_ptr().cast::<F>(), f) };
        Msg {
            vtable: &Shim::<F>::VTABLE,
            storage,
            _erased: PhantomData,
        }
    }

    /// Runs the closure, consuming the message.
    pub fn run(self) {
        let mut this = ManuallyDrop::new(self);
        let call = this.vtable.call;
        // SAFETY: the storage holds the live F written by `inline` with the
        // matching vtable; ManuallyDrop keeps `Drop` from touching it again,
        // so the closure is moved out exactly once (also if it panics).
        unsafe { call(this.storage.0.as_mut_ptr().cast::<u8>()) }
    }
}

// Dropping an unrun closure in place.
#[allow(unsafe_code)]
impl Drop for Msg {
    fn drop(&mut self) {
        let drop_fn = self.vtable.drop;
        // SAFETY: a Msg that is dropped was never run (run() forgets it), so
        // the storage still holds the live F matching this vtable.
        unsafe { drop_fn(self.storage.0.as_mut_ptr().cast::<u8>()) }
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
