//! A fixed-length bit array (SPDK's spdk_bit_array) for the in-memory
//! used-page, used-cluster and used-blob-id maps.

/// Bits numbered from 0, stored least significant bit first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BitArray {
    words: Vec<u64>,
    len: u32,
}

impl BitArray {
    /// `len` clear bits.
    pub fn new(len: u32) -> BitArray {
        BitArray {
            words: vec![0; (len as usize).div_ceil(64)],
            len,
        }
    }

    /// From packed bytes (bit i = byte i/8, bit i%8); bits past `len` are dropped.
    pub fn from_bytes(bytes: &[u8], len: u32) -> BitArray {
        let mut b = BitArray::new(len);
        for i in 0..len {
            let byte = bytes.get(i as usize / 8).copied().unwrap_or(0);
            if byte >> (i % 8) & 1 == 1 {
                b.set(i);
            }
        }
        b
    }

    /// Packed bytes, `ceil(len / 8)` of them.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; (self.len as usize).div_ceil(8)];
        for i in 0..self.len {
            if self.get(i) {
                out[i as usize / 8] |= 1 << (i % 8);
            }
        }
        out
    }

    /// Number of bits.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the array has no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Grows (new bits clear) or shrinks to `len` bits.
    pub fn resize(&mut self, len: u32) {
        for i in len..self.len {
            self.clear(i);
        }
        self.words.resize((len as usize).div_ceil(64), 0);
        self.len = len;
    }

    /// Bit `i`; false past the end.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.words[i as usize / 64] >> (i % 64) & 1 == 1
    }

    /// Sets bit `i` (ignored past the end).
    pub fn set(&mut self, i: u32) {
        if i < self.len {
            self.words[i as usize / 64] |= 1 << (i % 64);
        }
    }

    /// Clears bit `i` (ignored past the end).
    pub fn clear(&mut self, i: u32) {
        if i < self.len {
            self.words[i as usize / 64] &= !(1 << (i % 64));
        }
    }

    /// The first clear bit at or after `from`.
    pub fn find_first_clear(&self, from: u32) -> Option<u32> {
        (from..self.len).find(|&i| !self.get(i))
    }

    /// How many bits are set.
    pub fn count_set(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Indices of the set bits.
    pub fn iter_set(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|&i| self.get(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_array_finds_first_clear_and_packs_lsb_first() {
        let mut b = BitArray::new(70);
        b.set(0);
        b.set(1);
        b.set(65);
        assert_eq!(b.find_first_clear(0), Some(2));
        assert_eq!(b.to_bytes()[0], 0b11);
        assert_eq!(BitArray::from_bytes(&b.to_bytes(), 70), b);
        assert_eq!(b.count_set(), 3);
        b.resize(10);
        assert_eq!(b.count_set(), 2);
    }
}
