//! Identify Namespace (CNS 00h) with its LBA formats, the active namespace
//! ID list (CNS 02h) and namespace identification descriptors (CNS 03h).

use super::Pod;
use std::mem::{offset_of, size_of};

/// One LBA Format descriptor of Identify Namespace.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LbaFormat {
    /// Metadata Size in bytes per LBA.
    pub ms: u16,
    /// LBA Data Size as a power of two (9 = 512 B, 12 = 4 KiB).
    pub lbads: u8,
    /// Relative Performance (bits 1:0).
    pub rp: u8,
}

const _: () = assert!(size_of::<LbaFormat>() == 4);

impl LbaFormat {
    /// The data size of one logical block in bytes (0 if the format is unused).
    pub fn data_size(&self) -> u32 {
        if self.lbads < 9 || self.lbads > 31 {
            0
        } else {
            1 << self.lbads
        }
    }
}

/// Identify Namespace data structure (4096 bytes), NVM command set.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyNamespace {
    /// Namespace Size (LBAs).
    pub nsze: u64,
    /// Namespace Capacity (LBAs).
    pub ncap: u64,
    /// Namespace Utilization (LBAs).
    pub nuse: u64,
    /// Namespace Features (bit 0 thin provisioning).
    pub nsfeat: u8,
    /// Number of LBA Formats, 0's based.
    pub nlbaf: u8,
    /// Formatted LBA Size (bits 3:0 and 6:5 index, bit 4 extended metadata).
    pub flbas: u8,
    /// Metadata Capabilities.
    pub mc: u8,
    /// End-to-end Data Protection Capabilities.
    pub dpc: u8,
    /// End-to-end Data Protection Type Settings.
    pub dps: u8,
    /// Namespace Multi-path I/O and Namespace Sharing Capabilities.
    pub nmic: u8,
    /// Reservation Capabilities.
    pub rescap: u8,
    /// Format Progress Indicator.
    pub fpi: u8,
    /// Deallocate Logical Block Features (bits 2:0: what a deallocated block reads as).
    pub dlfeat: u8,
    /// Namespace Atomic Write Unit Normal.
    pub nawun: u16,
    /// Namespace Atomic Write Unit Power Fail.
    pub nawupf: u16,
    /// Namespace Atomic Compare & Write Unit.
    pub nacwu: u16,
    /// Namespace Atomic Boundary Size Normal.
    pub nabsn: u16,
    /// Namespace Atomic Boundary Offset.
    pub nabo: u16,
    /// Namespace Atomic Boundary Size Power Fail.
    pub nabspf: u16,
    /// Namespace Optimal I/O Boundary.
    pub noiob: u16,
    /// NVM Capacity (bytes, 128-bit).
    pub nvmcap: [u8; 16],
    /// Namespace Preferred Write Granularity.
    pub npwg: u16,
    /// Namespace Preferred Write Alignment.
    pub npwa: u16,
    /// Namespace Preferred Deallocate Granularity.
    pub npdg: u16,
    /// Namespace Preferred Deallocate Alignment.
    pub npda: u16,
    /// Namespace Optimal Write Size.
    pub nows: u16,
    /// Maximum Single Source Range Length.
    pub mssrl: u16,
    /// Maximum Copy Length.
    pub mcl: u32,
    /// Maximum Source Range Count.
    pub msrc: u8,
    /// Reserved.
    pub rsvd81: [u8; 11],
    /// ANA Group Identifier.
    pub anagrpid: u32,
    /// Reserved.
    pub rsvd96: [u8; 3],
    /// Namespace Attributes.
    pub nsattr: u8,
    /// NVM Set Identifier.
    pub nvmsetid: u16,
    /// Endurance Group Identifier.
    pub endgid: u16,
    /// Namespace Globally Unique Identifier.
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier.
    pub eui64: [u8; 8],
    /// LBA Format Support 0..63.
    pub lbaf: [LbaFormat; 64],
    /// Reserved.
    pub rsvd384: [u8; 3328],
    /// Vendor Specific.
    pub vs: [u8; 384],
}

const _: () = assert!(size_of::<IdentifyNamespace>() == 4096);
const _: () = assert!(offset_of!(IdentifyNamespace, nsfeat) == 24);
const _: () = assert!(offset_of!(IdentifyNamespace, flbas) == 26);
const _: () = assert!(offset_of!(IdentifyNamespace, dlfeat) == 33);
const _: () = assert!(offset_of!(IdentifyNamespace, nvmcap) == 48);
const _: () = assert!(offset_of!(IdentifyNamespace, anagrpid) == 92);
const _: () = assert!(offset_of!(IdentifyNamespace, nguid) == 104);
const _: () = assert!(offset_of!(IdentifyNamespace, eui64) == 120);
const _: () = assert!(offset_of!(IdentifyNamespace, lbaf) == 128);
const _: () = assert!(offset_of!(IdentifyNamespace, vs) == 3712);

// SAFETY: repr(C), integers and byte arrays, no padding (size and offsets asserted).
unsafe impl Pod for IdentifyNamespace {}
// SAFETY: repr(C) integers, no padding.
unsafe impl Pod for LbaFormat {}

impl IdentifyNamespace {
    /// Index of the LBA format in use (FLBAS bits 3:0 and 6:5).
    pub fn lba_format_index(&self) -> usize {
        ((self.flbas & 0xf) | ((self.flbas >> 5) & 0x3) << 4) as usize
    }
    /// The LBA format in use.
    pub fn lba_format(&self) -> LbaFormat {
        self.lbaf[self.lba_format_index().min(63)]
    }
    /// Logical block data size in bytes.
    pub fn block_size(&self) -> u32 {
        self.lba_format().data_size()
    }
    /// True when the namespace is inactive (an all-zero structure).
    pub fn is_inactive(&self) -> bool {
        self.nsze == 0
    }
}

impl std::fmt::Debug for IdentifyNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyNamespace")
            .field("nsze", &self.nsze)
            .field("ncap", &self.ncap)
            .field("nuse", &self.nuse)
            .field("nlbaf", &self.nlbaf)
            .field("flbas", &self.flbas)
            .field("block_size", &self.block_size())
            .finish_non_exhaustive()
    }
}

/// Active namespace ID list (CNS 02h): up to 1024 NSIDs in increasing order, zero-terminated.
pub fn parse_active_ns_list(raw: &[u8]) -> Vec<u32> {
    raw.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&id| id != 0)
        .collect()
}

/// One Namespace Identification Descriptor (CNS 03h).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsIdDescriptor {
    /// NIDT 1: IEEE Extended Unique Identifier.
    Eui64([u8; 8]),
    /// NIDT 2: Namespace Globally Unique Identifier.
    Nguid([u8; 16]),
    /// NIDT 3: Namespace UUID.
    Uuid([u8; 16]),
    /// NIDT 4: Command Set Identifier.
    Csi(u8),
    /// Another type, kept raw.
    Other {
        /// NIDT: the identifier type.
        nidt: u8,
        /// NID: the identifier.
        nid: Vec<u8>,
    },
}

impl NsIdDescriptor {
    /// Parses a descriptor list (4096 bytes): each entry is NIDT, NIDL, 2 reserved bytes, NID.
    /// Stops at the first NIDT of 0 or at a truncated entry.
    pub fn parse_list(raw: &[u8]) -> Vec<NsIdDescriptor> {
        let mut out = Vec::new();
        let mut off = 0;
        while off + 4 <= raw.len() {
            let (nidt, nidl) = (raw[off], raw[off + 1] as usize);
            if nidt == 0 || off + 4 + nidl > raw.len() {
                break;
            }
            let nid = &raw[off + 4..off + 4 + nidl];
            out.push(match (nidt, nidl) {
                (1, 8) => Self::Eui64(nid.try_into().expect("8 bytes")),
                (2, 16) => Self::Nguid(nid.try_into().expect("16 bytes")),
                (3, 16) => Self::Uuid(nid.try_into().expect("16 bytes")),
                (4, 1) => Self::Csi(nid[0]),
                _ => Self::Other {
                    nidt,
                    nid: nid.to_vec(),
                },
            });
            off += 4 + nidl;
        }
        out
    }
}
