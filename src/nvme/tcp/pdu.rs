//! NVMe/TCP PDU types (NVMe/TCP Transport Specification 1.0, section 3.6):
//! the common header, each PDU-specific header with its layout checked at
//! compile time, the flags, and the encoders the host side sends with.
//!
//! Every PDU starts with the 8-byte common header (CH); the PDU-specific
//! header (PSH) follows, then an optional header digest (HDGST), padding up
//! to the PDU data offset (PDO), the data, and an optional data digest
//! (DDGST). All integers are little endian. The encoders are in
//! [`encode`](super::encode), the checks of received headers in
//! [`decode`](super::decode).

use std::mem::{offset_of, size_of};

/// Length of the common header.
pub const CH_LEN: usize = 8;
/// Length of a header or data digest.
pub const DIGEST_LEN: usize = 4;
/// Length of ICReq and ICResp (header only; they carry no data or digests).
pub const IC_LEN: usize = 128;
/// Header length of CapsuleCmd (CH + the 64-byte SQE).
pub const CAPSULE_CMD_HLEN: usize = 72;
/// Header length of CapsuleResp (CH + the 16-byte CQE).
pub const CAPSULE_RESP_HLEN: usize = 24;
/// Header length of H2CData, C2HData and R2T.
pub const DATA_HLEN: usize = 24;
/// Header length of H2CTermReq and C2HTermReq.
pub const TERM_REQ_HLEN: usize = 24;
/// Most error data a TermReq carries.
pub const TERM_REQ_MAX_DATA: usize = 128;
/// Largest HPDA or CPDA value (alignment of (value + 1) dwords).
pub const PDA_MAX: u8 = 31;
/// PDU format version 1.0 (PFV).
pub const PFV_1_0: u16 = 0;

/// PDU-Type of the common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PduType {
    /// Initialize Connection Request (host to controller).
    IcReq = 0x00,
    /// Initialize Connection Response (controller to host).
    IcResp = 0x01,
    /// Terminate the connection (host to controller).
    H2CTermReq = 0x02,
    /// Terminate the connection (controller to host).
    C2HTermReq = 0x03,
    /// A command capsule: SQE and optional in-capsule data.
    CapsuleCmd = 0x04,
    /// A response capsule: CQE.
    CapsuleResp = 0x05,
    /// Write data the controller asked for with an R2T.
    H2CData = 0x06,
    /// Read data.
    C2HData = 0x07,
    /// Ready to Transfer: the controller asks for write data.
    R2T = 0x09,
}

impl PduType {
    /// Decodes the PDU-Type byte.
    pub const fn from_raw(v: u8) -> Option<Self> {
        Some(match v {
            0x00 => PduType::IcReq,
            0x01 => PduType::IcResp,
            0x02 => PduType::H2CTermReq,
            0x03 => PduType::C2HTermReq,
            0x04 => PduType::CapsuleCmd,
            0x05 => PduType::CapsuleResp,
            0x06 => PduType::H2CData,
            0x07 => PduType::C2HData,
            0x09 => PduType::R2T,
            _ => return None,
        })
    }
    /// The name the specification gives it.
    pub const fn name(self) -> &'static str {
        match self {
            PduType::IcReq => "ICReq",
            PduType::IcResp => "ICResp",
            PduType::H2CTermReq => "H2CTermReq",
            PduType::C2HTermReq => "C2HTermReq",
            PduType::CapsuleCmd => "CapsuleCmd",
            PduType::CapsuleResp => "CapsuleResp",
            PduType::H2CData => "H2CData",
            PduType::C2HData => "C2HData",
            PduType::R2T => "R2T",
        }
    }
    /// The bit of this type in a [`PduTypeSet`].
    pub const fn bit(self) -> u16 {
        1 << self as u8
    }
}

/// A set of PDU types (the ones allowed in a connection's state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduTypeSet(pub u16);

impl PduTypeSet {
    /// Whether `t` is in the set.
    pub const fn contains(self, t: PduType) -> bool {
        self.0 & t.bit() != 0
    }
    /// The set of these types.
    pub const fn of(types: &[PduType]) -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < types.len() {
            bits |= types[i].bit();
            i += 1;
        }
        PduTypeSet(bits)
    }
}

/// Common-header flags.
pub mod flags {
    /// HDGSTF: a header digest follows the PSH.
    pub const HDGSTF: u8 = 1 << 0;
    /// DDGSTF: a data digest follows the data.
    pub const DDGSTF: u8 = 1 << 1;
    /// LAST_PDU (H2CData, C2HData): the last data PDU of the command.
    pub const LAST_PDU: u8 = 1 << 2;
    /// SUCCESS (C2HData): the command succeeded; no CapsuleResp follows.
    pub const SUCCESS: u8 = 1 << 3;
}

/// ICReq/ICResp DGST bits.
pub mod dgst {
    /// HDGST_ENABLE: header digests on every PDU after the exchange.
    pub const HDGST_ENABLE: u8 = 1 << 0;
    /// DDGST_ENABLE: data digests on every PDU with data.
    pub const DDGST_ENABLE: u8 = 1 << 1;
}

/// Fatal Error Status of a TermReq.
pub mod fes {
    /// Invalid PDU Header Field (FEI: the byte offset of the field).
    pub const INVALID_HEADER_FIELD: u16 = 0x01;
    /// PDU Sequence Error.
    pub const PDU_SEQUENCE_ERROR: u16 = 0x02;
    /// Header Digest Error.
    pub const HDGST_ERROR: u16 = 0x03;
    /// Data Transfer Out of Range.
    pub const DATA_TRANSFER_OUT_OF_RANGE: u16 = 0x04;
    /// Data Transfer Limit Exceeded (also: R2T Limit Exceeded).
    pub const DATA_TRANSFER_LIMIT_EXCEEDED: u16 = 0x05;
    /// Unsupported Parameter (FEI: the byte offset of the field).
    pub const UNSUPPORTED_PARAMETER: u16 = 0x06;

    /// The name of a FES value.
    pub fn name(v: u16) -> &'static str {
        match v {
            INVALID_HEADER_FIELD => "Invalid PDU Header Field",
            PDU_SEQUENCE_ERROR => "PDU Sequence Error",
            HDGST_ERROR => "Header Digest Error",
            DATA_TRANSFER_OUT_OF_RANGE => "Data Transfer Out of Range",
            DATA_TRANSFER_LIMIT_EXCEEDED => "Data Transfer Limit Exceeded",
            UNSUPPORTED_PARAMETER => "Unsupported Parameter",
            _ => "reserved Fatal Error Status",
        }
    }
}

/// The common header (CH) of every PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct CommonHeader {
    /// PDU-Type ([`PduType`]).
    pub pdu_type: u8,
    /// FLAGS ([`flags`]).
    pub flags: u8,
    /// HLEN: length of CH + PSH (digest excluded).
    pub hlen: u8,
    /// PDO: offset of the data from the start of the PDU (0 without data).
    pub pdo: u8,
    /// PLEN: length of the whole PDU, digests and padding included.
    pub plen: u32,
}
const _: () = assert!(size_of::<CommonHeader>() == CH_LEN);
const _: () = assert!(offset_of!(CommonHeader, flags) == 1);
const _: () = assert!(offset_of!(CommonHeader, hlen) == 2);
const _: () = assert!(offset_of!(CommonHeader, pdo) == 3);
const _: () = assert!(offset_of!(CommonHeader, plen) == 4);

impl CommonHeader {
    /// Reads a common header from the first 8 bytes (`None` when shorter).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let b: &[u8; CH_LEN] = b.get(..CH_LEN)?.try_into().ok()?;
        Some(CommonHeader {
            pdu_type: b[0],
            flags: b[1],
            hlen: b[2],
            pdo: b[3],
            plen: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
    /// Writes the header into the first 8 bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0] = self.pdu_type;
        out[1] = self.flags;
        out[2] = self.hlen;
        out[3] = self.pdo;
        out[4..8].copy_from_slice(&self.plen.to_le_bytes());
    }
}

/// ICReq PSH (the host's connection parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct IcReq {
    /// PFV: PDU format version (0).
    pub pfv: u16,
    /// HPDA: the data alignment the host wants in C2H PDUs, (HPDA+1) dwords.
    pub hpda: u8,
    /// DGST: [`dgst`] bits.
    pub dgst: u8,
    /// MAXR2T: R2Ts the host accepts outstanding per command, 0's based.
    pub maxr2t: u32,
}
const _: () = assert!(size_of::<IcReq>() == 8);
const _: () = assert!(CH_LEN + offset_of!(IcReq, hpda) == 10);
const _: () = assert!(CH_LEN + offset_of!(IcReq, maxr2t) == 12);

/// ICResp PSH (the controller's connection parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct IcResp {
    /// PFV: PDU format version (0).
    pub pfv: u16,
    /// CPDA: the data alignment the controller wants in H2C PDUs, (CPDA+1) dwords.
    pub cpda: u8,
    /// DGST: [`dgst`] bits the controller enabled.
    pub dgst: u8,
    /// MAXH2CDATA: most data bytes in one H2CData PDU (at least 4096).
    pub maxh2cdata: u32,
}
const _: () = assert!(size_of::<IcResp>() == 8);
const _: () = assert!(CH_LEN + offset_of!(IcResp, cpda) == 10);
const _: () = assert!(CH_LEN + offset_of!(IcResp, maxh2cdata) == 12);

/// H2CTermReq/C2HTermReq PSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct TermReq {
    /// FES: Fatal Error Status ([`fes`]).
    pub fes: u16,
    /// FEI: Fatal Error Information (e.g. the offset of the bad field).
    pub fei: u32,
}
const _: () = assert!(CH_LEN + offset_of!(TermReq, fes) == 8);

/// H2CData/C2HData PSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct DataHeader {
    /// CCCID: the command capsule's CID.
    pub cccid: u16,
    /// TTAG: the R2T's transfer tag (H2CData; reserved in C2HData).
    pub ttag: u16,
    /// DATAO: offset of this PDU's data in the command's data.
    pub datao: u32,
    /// DATAL: bytes of data in this PDU.
    pub datal: u32,
}
const _: () = assert!(size_of::<DataHeader>() == 12);
const _: () = assert!(CH_LEN + offset_of!(DataHeader, ttag) == 10);
const _: () = assert!(CH_LEN + offset_of!(DataHeader, datao) == 12);
const _: () = assert!(CH_LEN + offset_of!(DataHeader, datal) == 16);

/// R2T PSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct R2t {
    /// CCCID: the command capsule's CID.
    pub cccid: u16,
    /// TTAG: transfer tag to echo in the H2CData PDUs.
    pub ttag: u16,
    /// R2TO: offset of the requested data in the command's data.
    pub r2to: u32,
    /// R2TL: bytes requested.
    pub r2tl: u32,
}
const _: () = assert!(size_of::<R2t>() == 12);
const _: () = assert!(CH_LEN + offset_of!(R2t, r2to) == 12);
const _: () = assert!(CH_LEN + offset_of!(R2t, r2tl) == 16);

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The alignment in bytes of a PDA value: (PDA + 1) dwords.
pub const fn pda_bytes(pda: u8) -> usize {
    (pda as usize + 1) * 4
}

/// Digest and alignment settings of one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Framing {
    /// Header digests on.
    pub hdgst: bool,
    /// Data digests on.
    pub ddgst: bool,
    /// The receiver's PDA: data starts at a multiple of (PDA+1) dwords.
    pub pda: u8,
}
