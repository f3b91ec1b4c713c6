//! Identify data structures: Identify Controller (CNS 01h), Identify
//! Namespace (CNS 00h), the active namespace ID list (CNS 02h) and the
//! namespace identification descriptor list (CNS 03h); the namespace
//! structures live in `identify_ns.rs` and are re-exported here.

pub use super::identify_ns::{parse_active_ns_list, IdentifyNamespace, LbaFormat, NsIdDescriptor};
use super::{ascii_field, Pod};
use std::mem::{offset_of, size_of};

/// Identify Controller data structure (4096 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IdentifyController {
    /// PCI Vendor ID.
    pub vid: u16,
    /// PCI Subsystem Vendor ID.
    pub ssvid: u16,
    /// Serial Number (ASCII, space padded).
    pub sn: [u8; 20],
    /// Model Number (ASCII, space padded).
    pub mn: [u8; 40],
    /// Firmware Revision (ASCII).
    pub fr: [u8; 8],
    /// Recommended Arbitration Burst.
    pub rab: u8,
    /// IEEE OUI Identifier.
    pub ieee: [u8; 3],
    /// Controller Multi-Path I/O and Namespace Sharing Capabilities.
    pub cmic: u8,
    /// Maximum Data Transfer Size, 2^MDTS × CAP.MPSMIN (0 = no limit).
    pub mdts: u8,
    /// Controller ID.
    pub cntlid: u16,
    /// Version (same layout as the VS register).
    pub ver: u32,
    /// RTD3 Resume Latency (µs).
    pub rtd3r: u32,
    /// RTD3 Entry Latency (µs).
    pub rtd3e: u32,
    /// Optional Asynchronous Events Supported.
    pub oaes: u32,
    /// Controller Attributes.
    pub ctratt: u32,
    /// Read Recovery Levels Supported.
    pub rrls: u16,
    /// Reserved.
    pub rsvd102: [u8; 9],
    /// Controller Type (1 I/O, 2 discovery, 3 administrative).
    pub cntrltype: u8,
    /// FRU Globally Unique Identifier.
    pub fguid: [u8; 16],
    /// Command Retry Delay Times 1..3 (100 ms units).
    pub crdt: [u16; 3],
    /// Reserved.
    pub rsvd134: [u8; 106],
    /// NVMe Management Interface fields.
    pub nvme_mi: [u8; 16],
    /// Optional Admin Command Support (bit 3 namespace management, bit 8 Doorbell Buffer Config).
    pub oacs: u16,
    /// Abort Command Limit, 0's based.
    pub acl: u8,
    /// Asynchronous Event Request Limit, 0's based.
    pub aerl: u8,
    /// Firmware Updates.
    pub frmw: u8,
    /// Log Page Attributes.
    pub lpa: u8,
    /// Error Log Page Entries, 0's based.
    pub elpe: u8,
    /// Number of Power States Support, 0's based.
    pub npss: u8,
    /// Admin Vendor Specific Command Configuration.
    pub avscc: u8,
    /// Autonomous Power State Transition Attributes.
    pub apsta: u8,
    /// Warning Composite Temperature Threshold (K).
    pub wctemp: u16,
    /// Critical Composite Temperature Threshold (K).
    pub cctemp: u16,
    /// Maximum Time for Firmware Activation (100 ms units).
    pub mtfa: u16,
    /// Host Memory Buffer Preferred Size (4 KiB units).
    pub hmpre: u32,
    /// Host Memory Buffer Minimum Size (4 KiB units).
    pub hmmin: u32,
    /// Total NVM Capacity (bytes, 128-bit little endian).
    pub tnvmcap: [u8; 16],
    /// Unallocated NVM Capacity (bytes, 128-bit little endian).
    pub unvmcap: [u8; 16],
    /// Replay Protected Memory Block Support.
    pub rpmbs: u32,
    /// Extended Device Self-test Time (minutes).
    pub edstt: u16,
    /// Device Self-test Options.
    pub dsto: u8,
    /// Firmware Update Granularity.
    pub fwug: u8,
    /// Keep Alive Support (100 ms units).
    pub kas: u16,
    /// Host Controlled Thermal Management Attributes.
    pub hctma: u16,
    /// Minimum Thermal Management Temperature.
    pub mntmt: u16,
    /// Maximum Thermal Management Temperature.
    pub mxtmt: u16,
    /// Sanitize Capabilities.
    pub sanicap: u32,
    /// Host Memory Buffer Minimum Descriptor Entry Size.
    pub hmminds: u32,
    /// Host Memory Maximum Descriptors Entries.
    pub hmmaxd: u16,
    /// NVM Set Identifier Maximum.
    pub nsetidmax: u16,
    /// Endurance Group Identifier Maximum.
    pub endgidmax: u16,
    /// ANA Transition Time.
    pub anatt: u8,
    /// Asymmetric Namespace Access Capabilities.
    pub anacap: u8,
    /// ANA Group Identifier Maximum.
    pub anagrpmax: u32,
    /// Number of ANA Group Identifiers.
    pub nanagrpid: u32,
    /// Persistent Event Log Size.
    pub pels: u32,
    /// Domain Identifier.
    pub domainid: u16,
    /// Reserved.
    pub rsvd358: [u8; 10],
    /// Max Endurance Group Capacity.
    pub megcap: [u8; 16],
    /// Reserved.
    pub rsvd384: [u8; 128],
    /// Submission Queue Entry Size (bits 3:0 required, 7:4 maximum, as powers of two).
    pub sqes: u8,
    /// Completion Queue Entry Size (bits 3:0 required, 7:4 maximum).
    pub cqes: u8,
    /// Maximum Outstanding Commands.
    pub maxcmd: u16,
    /// Number of Namespaces (the largest valid NSID).
    pub nn: u32,
    /// Optional NVM Command Support (bit 2 DSM, bit 3 write zeroes, bit 0 compare).
    pub oncs: u16,
    /// Fused Operation Support.
    pub fuses: u16,
    /// Format NVM Attributes.
    pub fna: u8,
    /// Volatile Write Cache (bit 0 present).
    pub vwc: u8,
    /// Atomic Write Unit Normal.
    pub awun: u16,
    /// Atomic Write Unit Power Fail.
    pub awupf: u16,
    /// I/O Command Set Vendor Specific Command Configuration.
    pub icsvscc: u8,
    /// Namespace Write Protection Capabilities.
    pub nwpc: u8,
    /// Atomic Compare & Write Unit.
    pub acwu: u16,
    /// Optional Copy Formats Supported.
    pub ocfs: u16,
    /// SGL Support (bits 1:0 nonzero when SGLs are supported).
    pub sgls: u32,
    /// Maximum Number of Allowed Namespaces.
    pub mnan: u32,
    /// Maximum Domain Namespace Attachments.
    pub maxdna: [u8; 16],
    /// Maximum I/O Controller Namespace Attachments.
    pub maxcna: u32,
    /// Reserved.
    pub rsvd564: [u8; 204],
    /// NVM Subsystem NVMe Qualified Name.
    pub subnqn: [u8; 256],
    /// Reserved.
    pub rsvd1024: [u8; 768],
    /// NVMe over Fabrics fields.
    pub nvmf: [u8; 256],
    /// Power State Descriptors 0..31 (32 bytes each).
    pub psd: [[u8; 32]; 32],
    /// Vendor Specific.
    pub vs: [u8; 1024],
}

const _: () = assert!(size_of::<IdentifyController>() == 4096);
const _: () = assert!(offset_of!(IdentifyController, sn) == 4);
const _: () = assert!(offset_of!(IdentifyController, mn) == 24);
const _: () = assert!(offset_of!(IdentifyController, fr) == 64);
const _: () = assert!(offset_of!(IdentifyController, mdts) == 77);
const _: () = assert!(offset_of!(IdentifyController, cntlid) == 78);
const _: () = assert!(offset_of!(IdentifyController, ver) == 80);
const _: () = assert!(offset_of!(IdentifyController, cntrltype) == 111);
const _: () = assert!(offset_of!(IdentifyController, crdt) == 128);
const _: () = assert!(offset_of!(IdentifyController, oacs) == 256);
const _: () = assert!(offset_of!(IdentifyController, tnvmcap) == 280);
const _: () = assert!(offset_of!(IdentifyController, kas) == 320);
const _: () = assert!(offset_of!(IdentifyController, domainid) == 356);
const _: () = assert!(offset_of!(IdentifyController, sqes) == 512);
const _: () = assert!(offset_of!(IdentifyController, nn) == 516);
const _: () = assert!(offset_of!(IdentifyController, oncs) == 520);
const _: () = assert!(offset_of!(IdentifyController, vwc) == 525);
const _: () = assert!(offset_of!(IdentifyController, sgls) == 536);
const _: () = assert!(offset_of!(IdentifyController, subnqn) == 768);
const _: () = assert!(offset_of!(IdentifyController, psd) == 2048);
const _: () = assert!(offset_of!(IdentifyController, vs) == 3072);

// SAFETY: repr(C), integers and byte arrays, no padding (size and offsets asserted).
unsafe impl Pod for IdentifyController {}

/// OACS bit 3: Namespace Management supported.
pub const OACS_NS_MANAGEMENT: u16 = 1 << 3;
/// OACS bit 8: Doorbell Buffer Config supported (shadow doorbells).
pub const OACS_DOORBELL_BUFFER_CONFIG: u16 = 1 << 8;
/// ONCS bit 0: Compare supported.
pub const ONCS_COMPARE: u16 = 1 << 0;
/// ONCS bit 2: Dataset Management supported.
pub const ONCS_DSM: u16 = 1 << 2;
/// ONCS bit 3: Write Zeroes supported.
pub const ONCS_WRITE_ZEROES: u16 = 1 << 3;

impl IdentifyController {
    /// Serial number, trimmed.
    pub fn serial(&self) -> String {
        ascii_field(&self.sn)
    }
    /// Model number, trimmed.
    pub fn model(&self) -> String {
        ascii_field(&self.mn)
    }
    /// Firmware revision, trimmed.
    pub fn firmware(&self) -> String {
        ascii_field(&self.fr)
    }
    /// Subsystem NQN, trimmed.
    pub fn subsystem_nqn(&self) -> String {
        let end = self.subnqn.iter().position(|&b| b == 0).unwrap_or(256);
        ascii_field(&self.subnqn[..end])
    }
    /// Total NVM capacity in bytes.
    pub fn total_capacity(&self) -> u128 {
        u128::from_le_bytes(self.tnvmcap)
    }
    /// True when the controller supports SGLs for NVM commands.
    pub fn supports_sgl(&self) -> bool {
        self.sgls & 0x3 != 0
    }
}

impl std::fmt::Debug for IdentifyController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifyController")
            .field("vid", &format_args!("{:#06x}", self.vid))
            .field("sn", &self.serial())
            .field("mn", &self.model())
            .field("fr", &self.firmware())
            .field("mdts", &self.mdts)
            .field("cntlid", &self.cntlid)
            .field("oacs", &format_args!("{:#x}", self.oacs))
            .field("oncs", &format_args!("{:#x}", self.oncs))
            .field("nn", &self.nn)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{as_bytes, from_bytes, zeroed};
    use super::*;

    #[test]
    fn identify_controller_reads_serial_model_and_mdts_from_raw_bytes() {
        let mut raw = vec![0u8; 4096];
        raw[4..15].copy_from_slice(b"SPDKIOA0001");
        raw[15..24].fill(b' ');
        raw[24..38].copy_from_slice(b"QEMU NVMe Ctrl");
        raw[38..64].fill(b' ');
        raw[77] = 7;
        raw[256] = 0x0a;
        raw[257] = 0x01; // OACS bit 8
        raw[516..520].copy_from_slice(&256u32.to_le_bytes());
        let id: IdentifyController = from_bytes(&raw).unwrap();
        assert_eq!(id.serial(), "SPDKIOA0001");
        assert_eq!(id.model(), "QEMU NVMe Ctrl");
        assert_eq!(id.mdts, 7);
        assert_eq!(id.nn, 256);
        assert_ne!(id.oacs & OACS_DOORBELL_BUFFER_CONFIG, 0);
        assert_eq!(as_bytes(&id), &raw[..]);
    }

    #[test]
    fn namespace_block_size_follows_flbas() {
        let mut ns: IdentifyNamespace = zeroed();
        assert!(ns.is_inactive());
        ns.nsze = 8192;
        ns.nlbaf = 1;
        ns.lbaf[0].lbads = 9;
        ns.lbaf[1].lbads = 12;
        assert_eq!(ns.block_size(), 512);
        ns.flbas = 1;
        assert_eq!(ns.block_size(), 4096);
        ns.flbas = 0x20; // index 16 through the high bits
        ns.lbaf[16].lbads = 12;
        assert_eq!(ns.lba_format_index(), 16);
    }

    #[test]
    fn active_ns_list_stops_at_zero_and_descriptors_parse() {
        let mut raw = vec![0u8; 4096];
        raw[0..4].copy_from_slice(&1u32.to_le_bytes());
        raw[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(parse_active_ns_list(&raw), vec![1, 2]);

        let mut d = vec![0u8; 4096];
        d[0] = 3;
        d[1] = 16;
        d[4..20].copy_from_slice(&[0xab; 16]);
        d[20] = 4;
        d[21] = 1;
        d[24] = 0;
        assert_eq!(
            NsIdDescriptor::parse_list(&d),
            vec![NsIdDescriptor::Uuid([0xab; 16]), NsIdDescriptor::Csi(0)]
        );
    }
}
