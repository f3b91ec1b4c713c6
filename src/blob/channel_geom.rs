//! The fixed arithmetic of a blob I/O channel: its divisors (io unit,
//! device block, cluster), shifts when they are powers of two, and the
//! hasher of its map cache.

use std::hash::Hasher;

/// A divisor fixed when the channel is made: a shift when it is a power
/// of two (it almost always is), a division otherwise.
pub(crate) struct Divisor {
    pub(crate) d: u64,
    shift: Option<u32>,
}

impl Divisor {
    pub(crate) fn new(d: u64) -> Divisor {
        Divisor {
            d,
            shift: d.is_power_of_two().then(|| d.trailing_zeros()),
        }
    }
    #[inline]
    pub(crate) fn div(&self, x: u64) -> u64 {
        match self.shift {
            Some(s) => x >> s,
            None => x / self.d,
        }
    }
    #[inline]
    pub(crate) fn rem(&self, x: u64) -> u64 {
        match self.shift {
            Some(_) => x & (self.d - 1),
            None => x % self.d,
        }
    }
}

/// Hashes blob ids (`(1 << 32) | page`) with one multiplication.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
