//! `InlineFn`: a type-erased `FnOnce(A)` stored inline, in a fixed
//! buffer of [`INLINE_FN_BYTES`], so handing a closure over costs no heap
//! allocation (SPDK passes a function pointer and a `void *ctx` instead).
//! The thread layer's messages and the NVMe driver's completion callbacks
//! are both this one type, behind a typed face of their own.
//!
//! The unsafe rules are small: the buffer is written exactly once, when
//! the closure is stored, and the closure is moved out exactly once —
//! run by [`InlineFn::call`] (or by the [`Detached`] a [`InlineFn::detach`]
//! made) or dropped by `Drop`, never both.

use std::marker::PhantomData;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

/// Bytes of captured state an [`InlineFn`] holds without a heap allocation
/// (its alignment must also be at most 8, a pointer's).
pub const INLINE_FN_BYTES: usize = 48;

/// The buffer: pointer-aligned words.
type Storage = [MaybeUninit<usize>; INLINE_FN_BYTES / size_of::<usize>()];

/// Marks an [`InlineFn`] that stays on its thread (`!Send`): its closure
/// may capture `Rc`s.
pub struct Local(PhantomData<*mut ()>);

/// Marks an [`InlineFn`] made from a `Send` closure: it is `Send` itself.
pub struct Sendable(PhantomData<*mut ()>);

/// A type-erased `FnOnce(A)` stored inline.
///
/// `M` is [`Local`] (any closure, the value stays on its thread) or
/// [`Sendable`] (a `Send` closure, the value may move to another thread).
/// Neither is `Sync`: nothing reaches the closure through a shared
/// reference anyway. A closure that does not fit (more than
/// [`INLINE_FN_BYTES`], or aligned beyond a pointer) is boxed by the
/// constructors that say so, and refused at compile time by
/// [`InlineFn::new_inline`]:
/// ```compile_fail
/// use spdk_io::env::InlineFn;
/// let big = [0u64; 7];
/// InlineFn::<()>::new_inline(move |()| drop(big));
/// ```
/// A [`Local`] one cannot be sent to another thread:
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<spdk_io::env::InlineFn<()>>();
/// ```
/// while a [`Sendable`] one can:
/// ```
/// fn assert_send<T: Send>() {}
/// assert_send::<spdk_io::env::InlineFn<(), spdk_io::env::inline_fn::Sendable>>();
/// ```
pub struct InlineFn<A, M = Local> {
    data: MaybeUninit<Storage>,
    call: unsafe fn(*mut u8, A),
    drop_fn: unsafe fn(*mut u8),
    _marker: PhantomData<M>,
}

// SAFETY: an InlineFn<_, Sendable> is only built from an `F: Send` (see
// `new_send`), so moving it to another OS thread moves a `Send` value; its
// other fields are plain function pointers. It stays `!Sync`.
unsafe impl<A> Send for InlineFn<A, Sendable> {}

/// Moves the `F` stored at `p` out and runs it with `a`.
///
/// # Safety
/// `p` holds a live, suitably aligned `F` that nobody reads or drops again.
unsafe fn call_impl<A, F: FnOnce(A)>(p: *mut u8, a: A) {
    // SAFETY: the caller guarantees `p` holds a live F, moved out here
    // exactly once, before it runs (which may reuse the memory).
    let f = unsafe { p.cast::<F>().read() };
    f(a)
}

/// Drops the `F` stored at `p` in place.
///
/// # Safety
/// `p` holds a live, suitably aligned `F` that nobody reads or drops again.
unsafe fn drop_impl<F>(p: *mut u8) {
    // SAFETY: the caller guarantees `p` holds a live F, dropped here exactly once.
    unsafe { p.cast::<F>().drop_in_place() }
}

/// Whether a closure of type `F` is stored without a heap allocation.
pub const fn fits_inline<F>() -> bool {
    size_of::<F>() <= INLINE_FN_BYTES && align_of::<F>() <= align_of::<Storage>()
}

impl<A, M> InlineFn<A, M> {
    /// Stores `f`, which the caller checked fits ([`fits_inline`]).
    #[inline(always)]
    fn store<F: FnOnce(A) + 'static>(f: F) -> Self {
        // Decided at compile time: every caller checked it first.
        assert!(fits_inline::<F>());
        let mut data = MaybeUninit::<Storage>::uninit();
        // SAFETY: F's size and alignment fit the buffer (asserted above), and
        // the buffer is fresh: writing an F at its start is in bounds and
        // aligned, and overwrites nothing live.
        unsafe { data.as_mut_ptr().cast::<F>().write(f) };
        InlineFn {
            data,
            call: call_impl::<A, F>,
            drop_fn: drop_impl::<F>,
            _marker: PhantomData,
        }
    }

    /// Runs the closure with `a`, consuming it.
    #[inline(always)]
    pub fn call(self, a: A) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: the buffer holds the live F that `call` was instantiated
        // for; ManuallyDrop keeps `Drop` from touching it again, so it is
        // moved out exactly once (also if it panics).
        unsafe { (this.call)(this.data.as_mut_ptr().cast(), a) }
    }

    /// The function and a bitwise copy of the captured state, to run
    /// later without the drop function (a [`Detached`] is always run).
    ///
    /// # Safety
    /// The caller must then forget this `InlineFn` (never drop or call
    /// it): the state now belongs to the `Detached`, which must be run
    /// exactly once.
    #[inline(always)]
    pub unsafe fn detach(&mut self) -> Detached<A> {
        Detached {
            call: self.call,
            data: self.data,
        }
    }
}

impl<A> InlineFn<A, Local> {
    /// Stores `f`: inline when it fits, boxed otherwise.
    #[inline(always)]
    pub fn new<F: FnOnce(A) + 'static>(f: F) -> Self {
        if fits_inline::<F>() {
            Self::store(f)
        } else {
            Self::store(Box::new(f))
        }
    }

    /// Stores `f` inline; a closure that does not fit fails to compile
    /// (capture a reference-counted pointer or an index instead).
    #[inline(always)]
    pub fn new_inline<F: FnOnce(A) + 'static>(f: F) -> Self {
        const {
            assert!(
                fits_inline::<F>(),
                "closure captures too much to be stored inline: keep it within INLINE_FN_BYTES (pointer-aligned)"
            )
        };
        Self::store(f)
    }
}

impl<A> InlineFn<A, Sendable> {
    /// Stores the `Send` closure `f`: inline when it fits, boxed otherwise.
    #[inline(always)]
    pub fn new_send<F: FnOnce(A) + Send + 'static>(f: F) -> Self {
        if fits_inline::<F>() {
            Self::store(f)
        } else {
            Self::store(Box::new(f))
        }
    }
}

impl<A, M> Drop for InlineFn<A, M> {
    fn drop(&mut self) {
        // SAFETY: an InlineFn that is dropped was neither called (call
        // forgets it) nor detached (the caller forgets it), so the buffer
        // still holds the live F matching `drop_fn`.
        unsafe { (self.drop_fn)(self.data.as_mut_ptr().cast()) }
    }
}

impl<A, M> std::fmt::Debug for InlineFn<A, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InlineFn")
    }
}

/// An [`InlineFn`] taken apart by [`InlineFn::detach`]: the function and
/// the captured state it moves out when it runs. It has no drop function:
/// it must be run, with [`Detached::call`].
pub struct Detached<A> {
    call: unsafe fn(*mut u8, A),
    data: MaybeUninit<Storage>,
}

impl<A> Detached<A> {
    /// Runs the detached closure once with `a`.
    #[inline(always)]
    pub fn call(mut self, a: A) {
        // SAFETY: `data` holds the live F that `call` was instantiated for
        // (copied by `detach`, whose InlineFn was forgotten, as its contract
        // says); `self` is consumed, so it is moved out exactly once.
        unsafe { (self.call)(self.data.as_mut_ptr().cast(), a) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Counts its drops in a shared cell.
    struct DropCount(Rc<Cell<u32>>);

    impl Drop for DropCount {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn a_called_closure_runs_once_and_drops_its_captures_once() {
        let drops = Rc::new(Cell::new(0));
        let runs = Rc::new(Cell::new(0u32));
        let (d, r) = (DropCount(drops.clone()), runs.clone());
        let f = InlineFn::<u32>::new(move |x| {
            let _keep = &d;
            r.set(r.get() + x);
        });
        assert_eq!(drops.get(), 0);
        f.call(5);
        assert_eq!(runs.get(), 5);
        assert_eq!(drops.get(), 1, "captures dropped once, after the run");
    }

    #[test]
    fn an_uncalled_closure_drops_its_captures_once() {
        let drops = Rc::new(Cell::new(0));
        let d = DropCount(drops.clone());
        let f = InlineFn::<()>::new_inline(move |()| drop(d));
        drop(f);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_detached_closure_runs_once_and_the_original_is_forgotten() {
        let drops = Rc::new(Cell::new(0));
        let d = DropCount(drops.clone());
        let mut f = InlineFn::<u8>::new_inline(move |x| {
            assert_eq!(x, 9);
            drop(d)
        });
        // SAFETY: `f` is forgotten just below and the Detached is run once.
        let det = unsafe { f.detach() };
        std::mem::forget(f);
        assert_eq!(drops.get(), 0);
        det.call(9);
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn a_closure_that_panics_still_drops_its_captures_once() {
        let drops = Rc::new(Cell::new(0));
        let d = DropCount(drops.clone());
        let f = InlineFn::<()>::new(move |()| {
            let _keep = d;
            panic!("inside");
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f.call(())));
        assert!(r.is_err());
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn six_words_fit_and_a_seventh_is_boxed() {
        let six = [1usize; 6];
        let seven = [1usize; 7];
        let f6 = move |()| assert_eq!(six.iter().sum::<usize>(), 6);
        let f7 = move |()| assert_eq!(seven.iter().sum::<usize>(), 7);
        assert!(fits_inline_of(&f6));
        assert!(!fits_inline_of(&f7));
        InlineFn::new(f6).call(());
        // Boxed: still runs, and drops once.
        let drops = Rc::new(Cell::new(0));
        let d = DropCount(drops.clone());
        let big = move |()| {
            let _keep = &d;
            assert_eq!(seven.iter().sum::<usize>(), 7);
        };
        assert!(!fits_inline_of(&big));
        InlineFn::new(big).call(());
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn an_over_aligned_capture_is_boxed_and_read_aligned() {
        #[repr(align(64))]
        struct Wide(u8);
        let w = Wide(5);
        let f = move |()| {
            let whole = w;
            assert_eq!(&whole as *const Wide as usize % 64, 0);
            assert_eq!(whole.0, 5);
        };
        assert!(!fits_inline_of(&f));
        InlineFn::new(f).call(());
        let w = Wide(6);
        InlineFn::new_send(move |()| {
            let whole = w;
            assert_eq!(whole.0, 6);
        })
        .call(());
    }

    #[test]
    fn a_sendable_closure_crosses_threads() {
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let h = hits.clone();
        let f = InlineFn::new_send(move |x: u32| {
            h.fetch_add(x, std::sync::atomic::Ordering::SeqCst);
        });
        std::thread::spawn(move || f.call(3))
            .join()
            .expect("thread");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(std::sync::Arc::strong_count(&hits), 1);
    }

    #[test]
    fn the_stored_closure_is_one_cache_line() {
        assert_eq!(size_of::<InlineFn<()>>(), 64);
        assert_eq!(size_of::<InlineFn<(), Sendable>>(), 64);
    }

    fn fits_inline_of<F>(_: &F) -> bool {
        fits_inline::<F>()
    }
}
