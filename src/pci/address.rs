//! PCI addresses (`domain:bus:device.function`) and SPDK-style transport IDs.

use std::fmt;
use std::str::FromStr;

use super::PciError;

/// A PCI function's address, written `0000:00:04.0` (domain, bus, device, function).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    /// PCI segment (domain), 16 bits in sysfs names.
    pub domain: u32,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..=31.
    pub device: u8,
    /// Function number, 0..=7.
    pub function: u8,
}

impl PciAddress {
    /// Builds an address, checking the device (< 32) and function (< 8) ranges.
    pub fn new(domain: u32, bus: u8, device: u8, function: u8) -> Result<Self, PciError> {
        if device >= 32 || function >= 8 {
            return Err(PciError::InvalidAddress(format!(
                "{domain:04x}:{bus:02x}:{device:02x}.{function:x}: device must be < 0x20 and function < 8"
            )));
        }
        Ok(Self {
            domain,
            bus,
            device,
            function,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl FromStr for PciAddress {
    type Err = PciError;

    /// Parses `DDDD:BB:DD.F`, or `BB:DD.F` with domain 0 (as lspci prints it).
    fn from_str(s: &str) -> Result<Self, PciError> {
        let bad =
            || PciError::InvalidAddress(format!("{s:?}: expected DDDD:BB:DD.F, e.g. 0000:00:04.0"));
        let (head, func) = s.rsplit_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, dev) = match parts.as_slice() {
            [d, b, v] => (*d, *b, *v),
            [b, v] => ("0", *b, *v),
            _ => return Err(bad()),
        };
        let hex = |t: &str, max_len: usize| -> Result<u32, PciError> {
            if t.is_empty() || t.len() > max_len {
                return Err(bad());
            }
            u32::from_str_radix(t, 16).map_err(|_| bad())
        };
        let domain = hex(domain, 8)?;
        let bus = hex(bus, 2)? as u8;
        let device = hex(dev, 2)?;
        let function = hex(func, 1)?;
        if device >= 32 || function >= 8 {
            return Err(bad());
        }
        Self::new(domain, bus, device as u8, function as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_full_address() {
        let a: PciAddress = "0000:01:00.0".parse().unwrap();
        assert_eq!(a, PciAddress::new(0, 1, 0, 0).unwrap());
        assert_eq!(a.to_string(), "0000:01:00.0");
        let b: PciAddress = "00:04.0".parse().unwrap();
        assert_eq!(b.to_string(), "0000:00:04.0");
        let c: PciAddress = "10000:ff:1f.7".parse().unwrap();
        assert_eq!(c.to_string(), "10000:ff:1f.7");
    }

    #[test]
    fn rejects_malformed_addresses() {
        for s in [
            "",
            "0000:00:04",
            "0000:00:20.0",
            "0000:00:04.8",
            "zz:00.0",
            "0000:100:00.0",
            "a:b:c:d.0",
        ] {
            assert!(s.parse::<PciAddress>().is_err(), "{s} should not parse");
        }
    }
}
