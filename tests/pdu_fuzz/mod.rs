//! Reproducible fuzzing tools shared by the hostile-peer tests of both
//! NVMe/TCP sides: a seeded generator of random numbers and boundary
//! values, and the corruption of a well-formed PDU's header.
#![allow(dead_code)]

use spdk_io::nvme::tcp::pdu::{CAPSULE_CMD_HLEN, CH_LEN, DIGEST_LEN};

/// xorshift64*: reproducible pseudo-random numbers from a fixed seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    /// One of `v`.
    pub fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A 32-bit value that is often a boundary.
pub fn edgy32(r: &mut Rng) -> u32 {
    match r.below(6) {
        0 => 0,
        1 => u32::MAX,
        2 => r.pick(&[
            1, 7, 8, 15, 16, 511, 512, 4095, 4096, 4097, 8192, 65535, 131072,
        ]),
        3 => r.pick(&[
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffe,
            0xffff_0000,
            0x0000_ffff,
        ]),
        _ => r.next() as u32,
    }
}

/// `pdu` with hostile corruption: common-header fields set to boundary
/// values, random bytes of the header flipped, or the PDU cut short.
pub fn mutate(r: &mut Rng, mut pdu: Vec<u8>) -> Vec<u8> {
    if pdu.len() < CH_LEN {
        return pdu;
    }
    for _ in 0..=r.below(3) {
        match r.below(7) {
            0 => pdu[0] = r.below(12) as u8,
            1 => pdu[1] = r.next() as u8,
            2 => pdu[2] = r.pick(&[0, 8, 23, 24, 25, 72, 128, 255]),
            3 => {
                let any = r.next() as u8;
                pdu[3] = r.pick(&[0, 8, 24, 72, 76, 80, 128, 255, any]);
            }
            4 => {
                let plen = pdu.len() as u32;
                let v = r.pick(&[
                    0,
                    1,
                    8,
                    plen.wrapping_sub(1),
                    plen + 1,
                    plen + 4,
                    0x0010_0000,
                    u32::MAX,
                ]);
                pdu[4..8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let span = pdu.len().min(CAPSULE_CMD_HLEN + DIGEST_LEN);
                let at = r.below(span as u64) as usize;
                pdu[at] = r.next() as u8;
            }
        }
    }
    if r.one_in(6) {
        let keep = r.below(pdu.len() as u64 + 1) as usize;
        pdu.truncate(keep);
    }
    pdu
}

/// One of `v`, or (as often as each of them) a boundary value.
pub fn pick_or_edgy(r: &mut Rng, v: &[u32]) -> u32 {
    let e = edgy32(r);
    let i = r.below(v.len() as u64 + 1) as usize;
    v.get(i).copied().unwrap_or(e)
}
