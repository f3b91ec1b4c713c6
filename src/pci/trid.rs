//! SPDK transport IDs: `trtype:PCIe traddr:0000:00:04.0`.

use std::fmt;
use std::str::FromStr;

use super::{PciAddress, PciError};

/// The transport of a transport ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportType {
    /// Local PCIe (VFIO or uio).
    Pcie,
    /// NVMe over TCP.
    Tcp,
    /// NVMe over RDMA.
    Rdma,
}

impl TransportType {
    /// The name as SPDK prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportType::Pcie => "PCIe",
            TransportType::Tcp => "TCP",
            TransportType::Rdma => "RDMA",
        }
    }
}

/// An SPDK transport ID (spdk_nvme_transport_id): whitespace-separated
/// `key:value` (or `key=value`) pairs, keys case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransportId {
    /// `trtype`.
    pub trtype: TransportType,
    /// `adrfam` (IPv4, IPv6) for fabrics.
    pub adrfam: Option<String>,
    /// `traddr`: a PCI address for PCIe (normalized to `0000:00:04.0`), an IP address for fabrics.
    pub traddr: String,
    /// `trsvcid`: the port for fabrics.
    pub trsvcid: Option<String>,
    /// `subnqn`: the subsystem NQN for fabrics.
    pub subnqn: Option<String>,
    /// `hostnqn`: the host NQN to connect as (fabrics; SPDK's perf and
    /// identify accept it in the transport ID string).
    pub hostnqn: Option<String>,
}

impl TransportId {
    /// A PCIe transport ID for `addr`.
    pub fn pcie(addr: PciAddress) -> Self {
        Self {
            trtype: TransportType::Pcie,
            adrfam: None,
            traddr: addr.to_string(),
            trsvcid: None,
            subnqn: None,
            hostnqn: None,
        }
    }

    /// The PCI address of a PCIe transport ID.
    pub fn pci_address(&self) -> Result<PciAddress, PciError> {
        if self.trtype != TransportType::Pcie {
            return Err(PciError::InvalidTransportId(format!(
                "{self}: trtype is {}, not PCIe",
                self.trtype.as_str()
            )));
        }
        self.traddr.parse()
    }
}

impl FromStr for TransportId {
    type Err = PciError;

    fn from_str(s: &str) -> Result<Self, PciError> {
        let bad = |why: &str| {
            PciError::InvalidTransportId(format!(
                "{s:?}: {why} (expected e.g. \"trtype:PCIe traddr:0000:00:04.0\")"
            ))
        };
        let (mut trtype, mut adrfam, mut traddr, mut trsvcid, mut subnqn, mut hostnqn) =
            (None, None, None, None, None, None);
        for pair in s.split_whitespace() {
            let (k, v) = pair
                .split_once([':', '='])
                .ok_or_else(|| bad(&format!("{pair:?} is not key:value")))?;
            if v.is_empty() {
                return Err(bad(&format!("{k} has no value")));
            }
            let slot = match k.to_ascii_lowercase().as_str() {
                "trtype" => {
                    trtype = Some(match v.to_ascii_lowercase().as_str() {
                        "pcie" => TransportType::Pcie,
                        "tcp" => TransportType::Tcp,
                        "rdma" => TransportType::Rdma,
                        _ => return Err(bad(&format!("unknown trtype {v:?}"))),
                    });
                    continue;
                }
                "adrfam" => &mut adrfam,
                "traddr" => &mut traddr,
                "trsvcid" => &mut trsvcid,
                "subnqn" => &mut subnqn,
                "hostnqn" => &mut hostnqn,
                _ => return Err(bad(&format!("unknown key {k:?}"))),
            };
            if slot.replace(v.to_string()).is_some() {
                return Err(bad(&format!("{k} given twice")));
            }
        }
        let trtype = trtype.ok_or_else(|| bad("no trtype"))?;
        let mut traddr = traddr.ok_or_else(|| bad("no traddr"))?;
        if trtype == TransportType::Pcie {
            traddr = traddr.parse::<PciAddress>()?.to_string();
        }
        Ok(Self {
            trtype,
            adrfam,
            traddr,
            trsvcid,
            subnqn,
            hostnqn,
        })
    }
}

impl fmt::Display for TransportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trtype:{}", self.trtype.as_str())?;
        if let Some(a) = &self.adrfam {
            write!(f, " adrfam:{a}")?;
        }
        write!(f, " traddr:{}", self.traddr)?;
        if let Some(p) = &self.trsvcid {
            write!(f, " trsvcid:{p}")?;
        }
        if let Some(n) = &self.subnqn {
            write!(f, " subnqn:{n}")?;
        }
        if let Some(n) = &self.hostnqn {
            write!(f, " hostnqn:{n}")?;
        }
        Ok(())
    }
}
