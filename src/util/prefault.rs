//! Memory written once before it is needed, so that first use in the
//! middle of a run never waits for the kernel.
//!
//! `Vec::with_capacity` reserves memory but writes none of it; a fresh
//! reservation is often pages the process has never touched, and the
//! first push onto each of them takes a page fault (tens of microseconds
//! in a virtual machine). A per-channel queue filled for the first time
//! in the middle of a run delays every I/O of the batch that pays it.

/// An empty `Vec` with room for `n` values whose memory has been written
/// once (with `fill()`'s values, then forgotten): pushing up to `n` values
/// onto it later neither allocates nor faults a page in.
pub fn vec_with_capacity<T>(n: usize, fill: impl Fn() -> T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    v.extend((0..n).map(|_| fill()));
    // The values must reach memory: they are what faults the pages in.
    std::hint::black_box(v.as_ptr());
    v.clear();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefaulted_vec_is_empty_and_takes_its_capacity_without_moving() {
        let mut v = vec_with_capacity(1000, || 7u64);
        assert!(v.is_empty());
        assert!(v.capacity() >= 1000);
        let at = v.as_ptr();
        v.extend(0..1000u64);
        assert_eq!(v.as_ptr(), at, "pushing within the capacity reallocated");
        assert_eq!(v.iter().sum::<u64>(), 999 * 1000 / 2);
    }

    #[test]
    fn a_prefaulted_vec_drops_its_fill_values() {
        use std::rc::Rc;
        let probe = Rc::new(());
        let v = vec_with_capacity(5, || probe.clone());
        assert!(v.is_empty());
        assert_eq!(
            Rc::strong_count(&probe),
            1,
            "the fill values were not dropped"
        );
        assert!(vec_with_capacity(0, || 1u8).is_empty());
    }
}
