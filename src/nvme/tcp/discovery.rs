//! The discovery controller (NVMe over Fabrics): its Discovery Log Page
//! (Get Log Page 70h) read whole and decoded into entries, each naming a
//! subsystem port as a transport ID.

use crate::nvme::{Controller, NvmeError, TransportId, TransportType};

/// Log Identifier of the Discovery log page.
pub const LID_DISCOVERY: u8 = 0x70;
/// Length of the log page header and of each entry.
pub const ENTRY_LEN: usize = 1024;
/// Most entries read (a guard against an absurd NUMREC).
pub const MAX_ENTRIES: u64 = 1024;

/// One Discovery Log Page entry (TRSVCID at byte 32, SUBNQN at 256,
/// TRADDR at 512).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryEntry {
    /// TRTYPE (1 RDMA, 2 FC, 3 TCP, 254 intra-host).
    pub trtype: u8,
    /// ADRFAM (1 IPv4, 2 IPv6, 3 IB, 4 FC, 254 intra-host).
    pub adrfam: u8,
    /// SUBTYPE (1 referral to a discovery service, 2 NVM subsystem,
    /// 3 current discovery subsystem).
    pub subtype: u8,
    /// TREQ: transport requirements (bits 1:0 secure channel: 0 not
    /// specified, 1 required, 2 not required).
    pub treq: u8,
    /// EFLAGS (bit 0 duplicate returned information, bit 1 explicit
    /// persistent connection support for discovery).
    pub eflags: u16,
    /// PORTID.
    pub portid: u16,
    /// CNTLID (0xFFFF: the dynamic controller model).
    pub cntlid: u16,
    /// ASQSZ: the admin queue size the port accepts.
    pub asqsz: u16,
    /// TRSVCID (the port number for TCP).
    pub trsvcid: String,
    /// TRADDR.
    pub traddr: String,
    /// SUBNQN.
    pub subnqn: String,
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim().to_string()
}

impl DiscoveryEntry {
    /// Decodes one 1024-byte entry (`None` when shorter).
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < ENTRY_LEN {
            return None;
        }
        let le16 = |at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
        Some(DiscoveryEntry {
            trtype: b[0],
            adrfam: b[1],
            subtype: b[2],
            treq: b[3],
            eflags: le16(10),
            portid: le16(4),
            cntlid: le16(6),
            asqsz: le16(8),
            trsvcid: text(&b[32..64]),
            subnqn: text(&b[256..512]),
            traddr: text(&b[512..768]),
        })
    }

    /// The transport ID of the entry, as SPDK writes it (`None` for a
    /// transport this driver does not know).
    pub fn trid(&self) -> Option<TransportId> {
        let trtype = match self.trtype {
            1 => TransportType::Rdma,
            3 => TransportType::Tcp,
            _ => return None,
        };
        let adrfam = match self.adrfam {
            1 => Some("IPv4".to_string()),
            2 => Some("IPv6".to_string()),
            _ => None,
        };
        Some(TransportId {
            trtype,
            adrfam,
            traddr: self.traddr.clone(),
            trsvcid: Some(self.trsvcid.clone()),
            subnqn: Some(self.subnqn.clone()),
            hostnqn: None,
        })
    }
}

/// A whole Discovery Log Page: its header and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryLog {
    /// GENCTR: changes whenever the log changes.
    pub genctr: u64,
    /// NUMREC: how many entries the log has.
    pub numrec: u64,
    /// RECFMT: the format of the entries (0).
    pub recfmt: u16,
    /// The entries read.
    pub entries: Vec<DiscoveryEntry>,
}

impl Controller {
    /// Reads the Discovery Log Page of a discovery controller (attached
    /// with the discovery NQN, or without `subnqn:`): every entry.
    pub fn discovery_log(&self) -> Result<Vec<DiscoveryEntry>, NvmeError> {
        Ok(self.discovery_log_page()?.entries)
    }

    /// Reads the Discovery Log Page with its header (generation counter,
    /// record count and format), as `spdk_nvme_identify` prints it.
    pub fn discovery_log_page(&self) -> Result<DiscoveryLog, NvmeError> {
        let head = self.get_log_page(LID_DISCOVERY, 0, ENTRY_LEN)?;
        let genctr = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
        let numrec = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        let recfmt = u16::from_le_bytes([head[16], head[17]]);
        if numrec > MAX_ENTRIES {
            return Err(NvmeError::InvalidArgument(format!(
                "the discovery log page says it has {numrec} entries; at most {MAX_ENTRIES} are read"
            )));
        }
        let entries = if numrec == 0 {
            Vec::new()
        } else {
            let raw =
                self.get_log_page(LID_DISCOVERY, ENTRY_LEN as u64, numrec as usize * ENTRY_LEN)?;
            raw.chunks_exact(ENTRY_LEN)
                .filter_map(DiscoveryEntry::parse)
                .collect()
        };
        Ok(DiscoveryLog {
            genctr,
            numrec,
            recfmt,
            entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_decodes_into_an_spdk_transport_id() {
        let mut b = vec![0u8; ENTRY_LEN];
        b[0] = 3;
        b[1] = 1;
        b[2] = 2;
        b[3] = 2;
        b[4] = 7;
        b[10] = 3;
        b[6..8].copy_from_slice(&0xffffu16.to_le_bytes());
        b[32..36].copy_from_slice(b"4420");
        b[256..267].copy_from_slice(b"nqn.x:sub-1");
        b[512..521].copy_from_slice(b"127.0.0.1");
        let e = DiscoveryEntry::parse(&b).unwrap();
        assert_eq!((e.subtype, e.portid, e.cntlid), (2, 7, 0xffff));
        assert_eq!((e.treq, e.eflags), (2, 3), "TREQ and EFLAGS");
        assert_eq!(
            e.trid().unwrap().to_string(),
            "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.x:sub-1"
        );
        assert!(DiscoveryEntry::parse(&b[..1000]).is_none());
    }
}
