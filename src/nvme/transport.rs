//! Transport IDs written as SPDK writes them: `trtype:PCIe traddr:0000:00:04.0`.

use super::NvmeError;
use crate::pci::PciAddress;
use std::fmt;
use std::str::FromStr;

/// Which transport reaches the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// NVMe over PCIe (VFIO or uio).
    Pcie,
}

/// Identifies one controller: SPDK's `spdk_nvme_transport_id`.
///
/// Parses `trtype:PCIe traddr:0000:01:00.0` (keys case-insensitive, separated
/// by spaces; `traddr` also accepts `0000.01.00.0` and `01:00.0`), or a bare PCI address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransportId {
    /// Transport type.
    pub trtype: TransportType,
    /// PCI address of the controller.
    pub traddr: PciAddress,
}

impl TransportId {
    /// A PCIe transport ID for `addr`.
    pub fn pcie(addr: PciAddress) -> Self {
        TransportId {
            trtype: TransportType::Pcie,
            traddr: addr,
        }
    }
}

impl fmt::Display for TransportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.trtype {
            TransportType::Pcie => write!(f, "trtype:PCIe traddr:{}", self.traddr),
        }
    }
}

impl FromStr for TransportId {
    type Err = NvmeError;

    fn from_str(s: &str) -> Result<Self, NvmeError> {
        let bad = |why: &str| {
            NvmeError::InvalidTransportId(format!(
                "{s:?}: {why} (expected e.g. \"trtype:PCIe traddr:0000:00:04.0\")"
            ))
        };
        if let Ok(a) = s.trim().parse::<PciAddress>() {
            return Ok(Self::pcie(a));
        }
        let mut trtype = None;
        let mut traddr = None;
        for kv in s.split_whitespace() {
            let (k, v) = kv
                .split_once(':')
                .or_else(|| kv.split_once('='))
                .ok_or_else(|| bad("each field is key:value"))?;
            match k.to_ascii_lowercase().as_str() {
                "trtype" => {
                    if !v.eq_ignore_ascii_case("pcie") {
                        return Err(bad("only trtype PCIe is supported"));
                    }
                    trtype = Some(TransportType::Pcie);
                }
                "traddr" => {
                    // SPDK also writes PCI addresses with dots: 0000.00.04.0
                    let norm = if v.matches('.').count() == 3 {
                        let mut p: Vec<&str> = v.split('.').collect();
                        let f = p.pop().unwrap_or_default();
                        format!("{}.{f}", p.join(":"))
                    } else {
                        v.to_string()
                    };
                    traddr = Some(norm.parse::<PciAddress>().map_err(|_| bad("bad traddr"))?);
                }
                // Fields of other transports or options we do not use.
                "adrfam" | "trsvcid" | "subnqn" | "hostnqn" | "ns" | "alt_traddr" => {}
                _ => return Err(bad("unknown key")),
            }
        }
        Ok(TransportId {
            trtype: trtype.unwrap_or(TransportType::Pcie),
            traddr: traddr.ok_or_else(|| bad("missing traddr"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_spdk_pcie_trid() {
        let t: TransportId = "trtype:PCIe traddr:0000:00:04.0".parse().unwrap();
        assert_eq!(t.traddr.to_string(), "0000:00:04.0");
        assert_eq!(t.to_string(), "trtype:PCIe traddr:0000:00:04.0");
        let dotted: TransportId = "trtype:pcie traddr:0000.01.00.0".parse().unwrap();
        assert_eq!(dotted.traddr.to_string(), "0000:01:00.0");
        let bare: TransportId = "01:00.0".parse().unwrap();
        assert_eq!(bare, dotted);
    }

    #[test]
    fn rejects_other_transports_and_garbage() {
        for s in [
            "trtype:TCP traddr:127.0.0.1",
            "trtype:PCIe",
            "traddr:zz",
            "nonsense",
        ] {
            let e = s.parse::<TransportId>().unwrap_err();
            assert!(e.to_string().contains("trtype:PCIe"), "{e}");
        }
    }
}
