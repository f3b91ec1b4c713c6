//! A typed block of registers inside a BAR: a driver describes a device's
//! register map as a `#[repr(C)]` struct and reaches each register as a
//! field of a [`VolatilePtr`] to it (with volatile's `map_field!`), so
//! offsets come from the struct's layout instead of constants, and the
//! driver's view of each field can be narrowed to read-only or write-only.

use std::marker::PhantomData;

use volatile::VolatilePtr;

use super::Bar;

/// A type whose every bit pattern is a valid value, so reading it from
/// device memory (whatever the device put there) is sound: the unsigned
/// integers, arrays of them, and `#[repr(C)]` register maps of them made
/// with [`register_map!`](crate::pci::register_map).
///
/// # Safety
/// Implement only for types for which any bit pattern is a valid value.
pub unsafe trait Plain {}

// SAFETY: every bit pattern is a valid unsigned integer.
unsafe impl Plain for u8 {}
// SAFETY: as for u8.
unsafe impl Plain for u16 {}
// SAFETY: as for u8.
unsafe impl Plain for u32 {}
// SAFETY: as for u8.
unsafe impl Plain for u64 {}
// SAFETY: an array of values every bit pattern of which is valid.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

/// Declares a `#[repr(C)]` register map whose fields are all [`Plain`]
/// (checked at compile time), and marks it `Plain` itself, so it can be
/// placed in a BAR with [`RegisterBlock`].
macro_rules! register_map {
    ($(#[$m:meta])* $vis:vis struct $name:ident {
        $($(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$m])*
        #[repr(C)]
        $vis struct $name { $($(#[$fm])* $fvis $field: $ty),* }

        const _: () = {
            const fn plain<T: $crate::pci::Plain>() {}
            $(plain::<$ty>();)*
        };

        // SAFETY: #[repr(C)] and every field is Plain (checked just above), so
        // every bit pattern of the struct's fields is a valid value.
        unsafe impl $crate::pci::Plain for $name {}
    };
}
pub(crate) use register_map;

/// `T`'s registers at byte `off` of a [`Bar`], checked once to lie inside
/// it and to be aligned for `T`. Keeps a clone of the `Bar`, so the mapping
/// lives as long as the block.
pub struct RegisterBlock<T: Plain> {
    bar: Bar,
    off: usize,
    _layout: PhantomData<fn() -> T>,
}

impl<T: Plain> Clone for RegisterBlock<T> {
    fn clone(&self) -> Self {
        Self {
            bar: self.bar.clone(),
            off: self.off,
            _layout: PhantomData,
        }
    }
}

impl<T: Plain> RegisterBlock<T> {
    /// The block at byte `off` of `bar`, or None when `off + size_of::<T>()`
    /// passes the end of the BAR or `off` is not aligned for `T` (the
    /// mapping's base is 8-aligned, so `T` may need at most 8).
    pub fn new(bar: &Bar, off: usize) -> Option<Self> {
        bar.view::<T>(off).map(|_| Self {
            bar: bar.clone(),
            off,
            _layout: PhantomData,
        })
    }

    /// A volatile pointer to the whole block, read-write; a driver narrows
    /// each field to the access the device allows.
    #[inline]
    pub fn get(&self) -> VolatilePtr<'_, T> {
        self.bar
            .view(self.off)
            .expect("RegisterBlock::new checked the block against this very Bar")
    }

    /// The BAR the block lies in.
    pub fn bar(&self) -> &Bar {
        &self.bar
    }
}

impl<T: Plain> std::fmt::Debug for RegisterBlock<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterBlock")
            .field("bar", &self.bar)
            .field("off", &self.off)
            .field("layout", &std::any::type_name::<T>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::RegisterBlock;
    use crate::pci::Bar;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use volatile::map_field;

    /// `words` u64s of ordinary memory standing in for a BAR, and a handle to read it.
    fn fake_bar(words: usize) -> (Bar, Arc<[AtomicU64]>) {
        let mem: Arc<[AtomicU64]> = (0..words).map(|_| AtomicU64::new(0)).collect();
        (Bar::in_memory(mem.clone()), mem)
    }

    crate::pci::register_map! {
        struct Pair {
            a: u32,
            b: u32,
        }
    }

    #[test]
    fn a_block_reaches_its_fields_at_the_offset_it_was_placed() {
        let (bar, mem) = fake_bar(4);
        let block = RegisterBlock::<Pair>::new(&bar, 8).unwrap();
        let p = block.get();
        map_field!(p.b).write(0xdead_beef);
        assert_eq!(mem[1].load(Ordering::Relaxed), 0xdead_beef << 32);
        mem[1].store(7, Ordering::Relaxed);
        let p = block.get();
        assert_eq!(map_field!(p.a).read(), 7);
    }

    #[test]
    fn a_block_past_the_end_of_the_bar_or_misaligned_is_refused() {
        let (bar, _mem) = fake_bar(2);
        assert!(RegisterBlock::<Pair>::new(&bar, 8).is_some());
        assert!(
            RegisterBlock::<Pair>::new(&bar, 12).is_none(),
            "4 bytes short"
        );
        assert!(
            RegisterBlock::<Pair>::new(&bar, 2).is_none(),
            "not 4-aligned"
        );
        assert!(RegisterBlock::<Pair>::new(&bar, usize::MAX - 2).is_none());
        assert!(RegisterBlock::<[u64; 3]>::new(&bar, 0).is_none());
    }
}
