//! Fabrics commands (NVMe Base Specification, Fabrics Command Set): Connect,
//! Property Get and Property Set, as SQEs, and the Connect data; plus the
//! SGL descriptors an NVMe/TCP command carries its data with.

use crate::nvme::spec::Sqe;

/// Opcode of every Fabrics command.
pub const OPC_FABRICS: u8 = 0x7f;
/// FCTYPE Property Set.
pub const FCTYPE_PROPERTY_SET: u8 = 0x00;
/// FCTYPE Connect.
pub const FCTYPE_CONNECT: u8 = 0x01;
/// FCTYPE Property Get.
pub const FCTYPE_PROPERTY_GET: u8 = 0x04;
/// Length of the Connect command's data.
pub const CONNECT_DATA_LEN: usize = 1024;
/// Length of an NQN field of the Connect data (NUL-terminated).
pub const NQN_FIELD_LEN: usize = 256;
/// Longest NQN (NVMe Base: 223 bytes).
pub const NQN_MAX_LEN: usize = 223;
/// The well-known NQN of a discovery controller.
pub const DISCOVERY_NQN: &str = "nqn.2014-08.org.nvmexpress.discovery";
/// Controller ID asking the subsystem for any controller (dynamic model).
pub const CNTLID_DYNAMIC: u16 = 0xffff;
/// Most in-capsule data on the admin queue and for Fabrics commands
/// (SPDK's `SPDK_NVME_TCP_IN_CAPSULE_DATA_MAX_SIZE`).
pub const ADMIN_IN_CAPSULE_MAX: usize = 8192;

/// Status codes of the command-specific type that Connect returns.
pub mod sc {
    /// Connect Incompatible Format.
    pub const INCOMPATIBLE_FORMAT: u8 = 0x80;
    /// Connect Controller Busy.
    pub const CONTROLLER_BUSY: u8 = 0x81;
    /// Connect Invalid Parameters.
    pub const INVALID_PARAMETERS: u8 = 0x82;
    /// Connect Restart Discovery.
    pub const RESTART_DISCOVERY: u8 = 0x83;
    /// Connect Invalid Host.
    pub const INVALID_HOST: u8 = 0x84;

    /// The name of a Connect status code.
    pub fn name(v: u8) -> Option<&'static str> {
        Some(match v {
            INCOMPATIBLE_FORMAT => "Connect Incompatible Format",
            CONTROLLER_BUSY => "Connect Controller Busy",
            INVALID_PARAMETERS => {
                "Connect Invalid Parameters (wrong subsystem NQN, host NQN or controller ID?)"
            }
            RESTART_DISCOVERY => "Connect Restart Discovery",
            INVALID_HOST => "Connect Invalid Host (the host NQN is not allowed on this subsystem)",
            _ => return None,
        })
    }
}

/// A Fabrics command with `fctype` (it sits where the NSID would).
fn fabrics(fctype: u8) -> Sqe {
    Sqe::new(OPC_FABRICS, fctype as u32)
}

/// Connect for queue `qid` with `sqsize` entries (sent 0's based) and a
/// keep-alive timeout of `kato_ms` (admin queue only; 0 = none).
pub fn connect_cmd(qid: u16, entries: u16, kato_ms: u32) -> Sqe {
    let mut s = fabrics(FCTYPE_CONNECT);
    s.cdw10 = (qid as u32) << 16; // RECFMT 0
    s.cdw11 = entries.saturating_sub(1) as u32; // SQSIZE, CATTR 0
    s.cdw12 = kato_ms;
    s
}

/// Property Get of the `size` (4 or 8) byte property at `offset`.
pub fn property_get_cmd(offset: u32, size: u8) -> Sqe {
    let mut s = fabrics(FCTYPE_PROPERTY_GET);
    s.cdw10 = (size == 8) as u32; // ATTRIB.SIZE
    s.cdw11 = offset;
    s
}

/// Property Set of the `size` (4 or 8) byte property at `offset`.
pub fn property_set_cmd(offset: u32, size: u8, value: u64) -> Sqe {
    let mut s = fabrics(FCTYPE_PROPERTY_SET);
    s.cdw10 = (size == 8) as u32;
    s.cdw11 = offset;
    s.cdw12 = value as u32;
    s.cdw13 = (value >> 32) as u32;
    s
}

/// The Connect command's data: host ID, controller ID, subsystem and host NQNs.
pub fn connect_data(
    hostid: &[u8; 16],
    cntlid: u16,
    subnqn: &str,
    hostnqn: &str,
) -> [u8; CONNECT_DATA_LEN] {
    let mut d = [0u8; CONNECT_DATA_LEN];
    d[..16].copy_from_slice(hostid);
    d[16..18].copy_from_slice(&cntlid.to_le_bytes());
    let put = |d: &mut [u8; CONNECT_DATA_LEN], at: usize, s: &str| {
        let n = s.len().min(NQN_FIELD_LEN - 1);
        d[at..at + n].copy_from_slice(&s.as_bytes()[..n]);
    };
    put(&mut d, 256, subnqn);
    put(&mut d, 512, hostnqn);
    d
}

/// PSDT: SGLs, metadata pointer to a contiguous buffer (what fabrics use).
pub const PSDT_SGL: u8 = 1;
/// SGL identifier: Data Block, Offset (in-capsule data).
pub const SGL_DATA_BLOCK_OFFSET: u8 = 0x01;
/// SGL identifier: Transport SGL Data Block, transport specific (R2T/C2H).
pub const SGL_TRANSPORT_DATA_BLOCK: u8 = 0x5a;

/// Describes `len` bytes of data in the SQE: in-capsule (at offset 0 of
/// the capsule's data) or moved by the transport (C2HData, R2T/H2CData).
pub fn set_sgl(sqe: &mut Sqe, len: u32, in_capsule: bool) {
    let id = if in_capsule {
        SGL_DATA_BLOCK_OFFSET
    } else {
        SGL_TRANSPORT_DATA_BLOCK
    };
    sqe.set_psdt(PSDT_SGL);
    sqe.prp1 = 0; // address: offset 0 / none
    sqe.prp2 = len as u64 | (id as u64) << 56;
}

/// A host NQN made from a host ID, as nvme-cli does
/// (`nqn.2014-08.org.nvmexpress:uuid:<uuid>`).
pub fn hostnqn_from_id(id: &[u8; 16]) -> String {
    let h: Vec<String> = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "nqn.2014-08.org.nvmexpress:uuid:{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_carries_qid_sqsize_and_kato_where_the_spec_puts_them() {
        let s = connect_cmd(3, 128, 10_000);
        let b = crate::nvme::spec::as_bytes(&s);
        assert_eq!((b[0], b[4]), (OPC_FABRICS, FCTYPE_CONNECT));
        assert_eq!(u16::from_le_bytes([b[42], b[43]]), 3, "QID at byte 42");
        assert_eq!(
            u16::from_le_bytes([b[44], b[45]]),
            127,
            "SQSIZE 0's based at 44"
        );
        assert_eq!(
            u32::from_le_bytes([b[48], b[49], b[50], b[51]]),
            10_000,
            "KATO at 48"
        );
    }

    #[test]
    fn property_set_puts_size_offset_and_value_in_place() {
        let s = property_set_cmd(0x14, 4, 0x0046_0001);
        let b = crate::nvme::spec::as_bytes(&s);
        assert_eq!((b[0], b[4], b[40]), (OPC_FABRICS, FCTYPE_PROPERTY_SET, 0));
        assert_eq!(u32::from_le_bytes([b[44], b[45], b[46], b[47]]), 0x14);
        assert_eq!(
            u32::from_le_bytes([b[48], b[49], b[50], b[51]]),
            0x0046_0001
        );
        assert_eq!(crate::nvme::spec::as_bytes(&property_get_cmd(0, 8))[40], 1);
    }

    #[test]
    fn an_sgl_names_in_capsule_or_transport_data_in_its_last_byte() {
        let mut s = Sqe::new(1, 1);
        set_sgl(&mut s, 4096, true);
        let b = crate::nvme::spec::as_bytes(&s);
        assert_eq!(b[1] >> 6, PSDT_SGL);
        assert_eq!(u32::from_le_bytes([b[32], b[33], b[34], b[35]]), 4096);
        assert_eq!(b[39], 0x01);
        set_sgl(&mut s, 8192, false);
        assert_eq!(crate::nvme::spec::as_bytes(&s)[39], 0x5a);
    }

    #[test]
    fn connect_data_places_cntlid_and_nqns() {
        let d = connect_data(&[7; 16], CNTLID_DYNAMIC, "nqn.sub", "nqn.host");
        assert_eq!(&d[..16], &[7; 16]);
        assert_eq!(u16::from_le_bytes([d[16], d[17]]), 0xffff);
        assert_eq!(&d[256..263], b"nqn.sub");
        assert_eq!(d[263], 0);
        assert_eq!(&d[512..520], b"nqn.host");
        assert_eq!(
            hostnqn_from_id(&[0x11; 16]),
            "nqn.2014-08.org.nvmexpress:uuid:11111111-1111-1111-1111-111111111111"
        );
    }
}
