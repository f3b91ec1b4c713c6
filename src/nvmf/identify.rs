//! Identify data the target returns (NVMe Base Specification, Identify):
//! the controller (with the NVMe over Fabrics fields), a namespace made
//! from its bdev, the active namespace list and the namespace
//! identification descriptors.

use super::ctrlr::{Ctrlr, KAS, MAX_AERS, VERSION};
use super::subsystem::{NamespaceConfig, SubsystemType};
use super::target::TransportOpts;
use crate::nvme::spec::{self, IdentifyController, IdentifyNamespace};

/// ANA Transition Time in seconds (SPDK's `ANA_TRANSITION_TIME_IN_SEC`).
pub const ANA_TRANSITION_TIME_S: u8 = 10;

/// Firmware revision reported (SPDK reports its version).
pub const FIRMWARE: &str = "25.09";

fn put_ascii(field: &mut [u8], s: &str) {
    field.fill(b' ');
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Identify Controller data of `ctrlr` (CNS 01h).
pub fn controller(ctrlr: &Ctrlr, opts: &TransportOpts, vwc: bool) -> IdentifyController {
    let mut d: IdentifyController = spec::zeroed();
    let subsys = ctrlr.subsystem();
    let st = subsys.lock();
    d.vid = 0x8086;
    d.ssvid = 0x8086;
    put_ascii(&mut d.sn, &st.serial_number);
    put_ascii(&mut d.mn, &st.model_number);
    put_ascii(&mut d.fr, FIRMWARE);
    d.rab = 6;
    d.ieee = [0xe4, 0xd2, 0x5c];
    d.cntlid = ctrlr.cntlid();
    d.ver = VERSION;
    let nqn = subsys.nqn().as_bytes();
    d.subnqn[..nqn.len()].copy_from_slice(nqn);
    d.sqes = 0x66;
    d.cqes = 0x44;
    d.lpa = 1 << 2; // extended data for Get Log Page
    d.elpe = 127;
    d.kas = KAS;
    // SGLs supported (dword aligned not needed), offsets in capsule allowed.
    d.sgls = 1 | 1 << 20;
    // IOCCSZ / IORCSZ in 16-byte units, ICDOFF 0, MSDBD 1.
    let ioccsz = (64 + opts.in_capsule_data_size) / 16;
    d.nvmf[0..4].copy_from_slice(&ioccsz.to_le_bytes());
    d.nvmf[4..8].copy_from_slice(&1u32.to_le_bytes());
    d.nvmf[11] = 1;
    match subsys.subtype() {
        SubsystemType::Discovery => {
            d.cntrltype = 2;
            d.mdts = opts.mdts();
            d.maxcmd = opts.max_aq_depth;
        }
        SubsystemType::Nvme => {
            d.cntrltype = 1;
            d.cmic = 0b11; // multi-port, multi-controller
            d.mdts = opts.mdts();
            d.oaes = 1 << 8; // namespace attribute notices
            d.ctratt = 1; // 128-bit host identifier
            d.acl = 3;
            d.aerl = MAX_AERS as u8 - 1;
            d.frmw = 0b11; // slot 1 read-only, one slot
            d.maxcmd = opts.max_queue_depth;
            d.nn = st.max_namespaces;
            // Compare, Dataset Management, Write Zeroes.
            d.oncs = spec::identify::ONCS_COMPARE
                | spec::identify::ONCS_DSM
                | spec::identify::ONCS_WRITE_ZEROES;
            d.fuses = 1; // compare and write
                         // Present when any bdev caches writes; flush broadcast not supported.
            d.vwc = if vwc { 1 | 2 << 1 } else { 0 };
            d.mnan = 0;
            if st.ana_reporting {
                d.cmic |= 1 << 3; // ANA reporting
                d.oaes |= 1 << 11; // ANA change notices
                d.anatt = ANA_TRANSITION_TIME_S;
                // Optimized, non-optimized, inaccessible, persistent loss and
                // change states; ANAGRPID does not change while attached.
                d.anacap = 0x1f | 1 << 6;
                d.anagrpmax = st.max_namespaces;
                d.nanagrpid = st.max_namespaces;
            }
        }
    }
    d
}

/// Identify Namespace data of a namespace over a bdev of `num_blocks`
/// blocks of `block_size` bytes (CNS 00h).
pub fn namespace(ns: &NamespaceConfig, block_size: u32, num_blocks: u64) -> IdentifyNamespace {
    let mut d: IdentifyNamespace = spec::zeroed();
    d.nsze = num_blocks;
    d.ncap = num_blocks;
    d.nuse = num_blocks;
    d.nlbaf = 0;
    d.flbas = 0;
    d.lbaf[0].lbads = block_size.trailing_zeros() as u8;
    d.nmic = 1; // may be attached to several controllers
    d.nguid = ns.nguid;
    d.eui64 = ns.eui64;
    d
}

/// The Active Namespace ID list after `after` (CNS 02h): up to 1024 IDs, ascending.
pub fn active_ns_list(nsids: impl Iterator<Item = u32>, after: u32, out: &mut [u8]) {
    let n = out.len().min(4096);
    out[..n].fill(0);
    for (i, id) in nsids.filter(|&id| id > after).take(n / 4).enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&id.to_le_bytes());
    }
}

/// Namespace Identification Descriptor types (NIDT).
pub mod nidt {
    /// IEEE EUI-64.
    pub const EUI64: u8 = 1;
    /// NGUID.
    pub const NGUID: u8 = 2;
    /// UUID.
    pub const UUID: u8 = 3;
    /// Command Set Identifier.
    pub const CSI: u8 = 4;
}

/// The Namespace Identification Descriptor list (CNS 03h): EUI-64 and
/// NGUID when set, the UUID, and the command set (NVM).
pub fn ns_id_descriptors(ns: &NamespaceConfig, out: &mut [u8]) {
    let n = out.len().min(4096);
    out[..n].fill(0);
    let mut at = 0;
    let mut put = |t: u8, id: &[u8]| {
        if at + 4 + id.len() > n {
            return;
        }
        out[at] = t;
        out[at + 1] = id.len() as u8;
        out[at + 4..at + 4 + id.len()].copy_from_slice(id);
        at += 4 + id.len();
    };
    if ns.eui64 != [0; 8] {
        put(nidt::EUI64, &ns.eui64);
    }
    if ns.nguid != [0; 16] {
        put(nidt::NGUID, &ns.nguid);
    }
    if ns.uuid != [0; 16] {
        put(nidt::UUID, &ns.uuid);
    }
    put(nidt::CSI, &[0]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::spec::NsIdDescriptor;

    fn ns() -> NamespaceConfig {
        NamespaceConfig {
            nsid: 3,
            bdev_name: "Malloc0".into(),
            uuid: [0xab; 16],
            nguid: [0x11; 16],
            eui64: [0; 8],
            anagrpid: 3,
        }
    }

    #[test]
    fn identify_namespace_gives_size_and_lba_format_from_the_bdev() {
        let d = namespace(&ns(), 4096, 1000);
        let b = spec::as_bytes(&d);
        assert_eq!(
            u64::from_le_bytes(b[0..8].try_into().unwrap()),
            1000,
            "NSZE"
        );
        assert_eq!(
            u64::from_le_bytes(b[8..16].try_into().unwrap()),
            1000,
            "NCAP"
        );
        assert_eq!(b[26] & 0xf, 0, "FLBAS picks format 0");
        assert_eq!(b[128 + 2], 12, "LBAF0.LBADS = log2(4096) at byte 130");
        assert_eq!(&b[104..120], &[0x11; 16], "NGUID at 104");
        assert_eq!(d.block_size(), 4096);
    }

    #[test]
    fn the_active_list_starts_after_the_given_id_and_ends_with_zero() {
        let mut out = [0xffu8; 4096];
        active_ns_list([1u32, 2, 5, 9].into_iter(), 2, &mut out);
        assert_eq!(spec::identify::parse_active_ns_list(&out), vec![5, 9]);
        assert_eq!(&out[8..12], &[0; 4]);
    }

    #[test]
    fn descriptors_list_nguid_uuid_and_csi_with_their_lengths() {
        let mut out = [0u8; 4096];
        ns_id_descriptors(&ns(), &mut out);
        assert_eq!(&out[0..4], &[nidt::NGUID, 16, 0, 0]);
        assert_eq!(&out[20..24], &[nidt::UUID, 16, 0, 0]);
        assert_eq!(&out[24..40], &[0xab; 16]);
        assert_eq!(&out[40..44], &[nidt::CSI, 1, 0, 0]);
        let parsed = NsIdDescriptor::parse_list(&out);
        assert_eq!(parsed.len(), 3);
    }
}
