//! A bdev's UUID (RFC 4122 text form, as SPDK prints it).

use std::fmt;

/// OS randomness read 4 KiB at a time (a config of 100,000 bdevs would
/// otherwise open `/dev/urandom` 100,000 times).
struct Pool {
    buf: [u8; 4096],
    used: usize,
}

static POOL: std::sync::Mutex<Pool> = std::sync::Mutex::new(Pool {
    buf: [0; 4096],
    used: 4096,
});

/// Fills `out` (at most 4 KiB) from the OS; false when it cannot be read.
fn os_random(out: &mut [u8]) -> bool {
    use std::io::Read;
    let mut p = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if p.used + out.len() > p.buf.len() {
        let ok = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut p.buf))
            .is_ok();
        if !ok {
            return false;
        }
        p.used = 0;
    }
    let at = p.used;
    out.copy_from_slice(&p.buf[at..at + out.len()]);
    // Each byte is handed out once.
    p.buf[at..at + out.len()].fill(0);
    p.used += out.len();
    true
}

/// A 128-bit UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID; randomness from the OS, or a clock-and-counter
    /// mix when the OS source is unavailable.
    pub fn random() -> Uuid {
        let mut b = [0u8; 16];
        let ok = os_random(&mut b);
        if !ok {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
            let t = super::ticks::ticks();
            let n = N.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
            b[..8].copy_from_slice(&(t ^ n).to_le_bytes());
            b[8..].copy_from_slice(
                &n.rotate_left(17)
                    .wrapping_mul(0xff51_afd7_ed55_8ccd)
                    .to_le_bytes(),
            );
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }

    /// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, either case).
    pub fn parse(s: &str) -> Option<Uuid> {
        let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
        if hex.len() != 32
            || s.len() != 36
            || [8, 13, 18, 23].iter().any(|&i| s.as_bytes()[i] != b'-')
        {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, pair) in hex.chunks(2).enumerate() {
            let txt = std::str::from_utf8(pair).ok()?;
            b[i] = u8::from_str_radix(txt, 16).ok()?;
        }
        Some(Uuid(b))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = [0u8; 36];
        let mut at = 0;
        for (i, x) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s[at] = b'-';
                at += 1;
            }
            s[at] = HEX[usize::from(x >> 4)];
            s[at + 1] = HEX[usize::from(x & 15)];
            at += 2;
        }
        // Only ASCII hex digits and dashes were written.
        f.write_str(std::str::from_utf8(&s).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Uuid;

    #[test]
    fn uuid_text_round_trips() {
        let u = Uuid::random();
        assert_eq!(Uuid::parse(&u.to_string()), Some(u));
        assert_eq!(Uuid::parse("not-a-uuid"), None);
    }

    #[test]
    fn random_uuids_from_the_buffered_pool_are_distinct_version_4() {
        let all: std::collections::HashSet<Uuid> = (0..2000).map(|_| Uuid::random()).collect();
        assert_eq!(all.len(), 2000, "the 4 KiB pool is refilled, never reused");
        assert!(all.iter().all(|u| u.0[6] >> 4 == 4 && u.0[8] >> 6 == 0b10));
    }
}
