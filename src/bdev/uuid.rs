//! A bdev's UUID (RFC 4122 text form, as SPDK prints it).

use std::fmt;

/// A 128-bit UUID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID; randomness from the OS, or a clock-and-counter
    /// mix when the OS source is unavailable.
    pub fn random() -> Uuid {
        use std::io::Read;
        let mut b = [0u8; 16];
        let ok = std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut b))
            .is_ok();
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
        for (i, x) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{x:02x}")?;
        }
        Ok(())
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
}
