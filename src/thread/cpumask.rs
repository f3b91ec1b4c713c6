//! `CpuMask`: the set of cores a thread may run on (SPDK's `spdk_cpuset`).

use std::fmt;

/// Number of cores a [`CpuMask`] can name.
pub const MAX_CORES: usize = 256;

/// A set of CPU cores, written as SPDK writes it: a hex mask (`0x3`) or a
/// list (`[0,2-3]`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuMask {
    bits: [u64; MAX_CORES / 64],
}

impl CpuMask {
    /// The empty set.
    pub const fn new() -> CpuMask {
        CpuMask {
            bits: [0; MAX_CORES / 64],
        }
    }

    /// Every core (SPDK's default mask for a new thread).
    pub const fn all() -> CpuMask {
        CpuMask {
            bits: [u64::MAX; MAX_CORES / 64],
        }
    }

    /// A mask holding only `core` (ignored if `core >= MAX_CORES`).
    pub fn single(core: usize) -> CpuMask {
        let mut m = CpuMask::new();
        m.set(core);
        m
    }

    /// Adds `core` (ignored if `core >= MAX_CORES`).
    pub fn set(&mut self, core: usize) {
        if core < MAX_CORES {
            self.bits[core / 64] |= 1 << (core % 64);
        }
    }

    /// Removes `core`.
    pub fn clear(&mut self, core: usize) {
        if core < MAX_CORES {
            self.bits[core / 64] &= !(1 << (core % 64));
        }
    }

    /// Whether `core` is in the set.
    pub fn contains(&self, core: usize) -> bool {
        core < MAX_CORES && self.bits[core / 64] & (1 << (core % 64)) != 0
    }

    /// Number of cores in the set.
    pub fn count(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The cores in the set, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_CORES).filter(move |&c| self.contains(c))
    }

    /// Parses `0x3`, `3` (hex, as SPDK's `-m`) or a list `[0,2-3]`.
    pub fn parse(s: &str) -> Result<CpuMask, String> {
        let s = s.trim();
        let mut m = CpuMask::new();
        if let Some(list) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (lo, hi) = match part.split_once('-') {
                    Some((a, b)) => (parse_core(a)?, parse_core(b)?),
                    None => (parse_core(part)?, parse_core(part)?),
                };
                if lo > hi {
                    return Err(format!("core range '{part}' is reversed: write low-high"));
                }
                (lo..=hi).for_each(|c| m.set(c));
            }
            return Ok(m);
        }
        let hex = s.trim_start_matches("0x").trim_start_matches("0X");
        if hex.is_empty() || hex.len() > MAX_CORES / 4 {
            return Err(format!(
                "cpu mask '{s}' is not a hex mask of at most {MAX_CORES} cores (e.g. 0x3) nor a list (e.g. [0,2-3])"
            ));
        }
        for (i, ch) in hex.chars().rev().enumerate() {
            let nib = ch
                .to_digit(16)
                .ok_or_else(|| format!("cpu mask '{s}' has a non-hex digit '{ch}'"))?;
            for b in 0..4 {
                if nib & (1 << b) != 0 {
                    m.set(i * 4 + b);
                }
            }
        }
        Ok(m)
    }
}

fn parse_core(s: &str) -> Result<usize, String> {
    let c: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a core number"))?;
    if c >= MAX_CORES {
        return Err(format!(
            "core {c} is beyond the supported {MAX_CORES} cores"
        ));
    }
    Ok(c)
}

impl fmt::Debug for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for CpuMask {
    /// Hex, as SPDK prints a cpuset (`0x3`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let top = self.bits.iter().rposition(|&w| w != 0);
        match top {
            None => write!(f, "0x0"),
            Some(t) => {
                write!(f, "0x{:x}", self.bits[t])?;
                for w in self.bits[..t].iter().rev() {
                    write!(f, "{w:016x}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_list_forms_parse_to_the_same_set() {
        let a = CpuMask::parse("0xd").unwrap();
        let b = CpuMask::parse("[0,2-3]").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 2, 3]);
        assert_eq!(a.to_string(), "0xd");
    }

    #[test]
    fn high_cores_print_in_full_hex() {
        let m = CpuMask::single(64);
        assert_eq!(m.to_string(), "0x10000000000000000");
        assert_eq!(CpuMask::parse(&m.to_string()).unwrap(), m);
    }

    #[test]
    fn bad_masks_are_errors() {
        assert!(CpuMask::parse("0xg").is_err());
        assert!(CpuMask::parse("").is_err());
        assert!(CpuMask::parse("[3-1]").is_err());
        assert!(CpuMask::parse("[999]").is_err());
    }
}
