//! Raw submission queue entries (64 bytes) decoded per the NVMe Base
//! specification, and completion queue entries (16 bytes) encoded.
//!
//! This is the controller's own reading of the spec, kept independent of the
//! driver's types on purpose: the two cross-check each other in tests.

use super::Status;

/// Size of one SQE (CC.IOSQES = 6).
pub const SQE_SIZE: usize = 64;
/// Size of one CQE (CC.IOCQES = 4).
pub const CQE_SIZE: usize = 16;

/// A submission queue entry, decoded from its 64 little-endian bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sqe {
    /// Command Dword 0 (OPC 7:0, FUSE 9:8, PSDT 15:14, CID 31:16).
    pub cdw0: u32,
    /// Namespace Identifier.
    pub nsid: u32,
    /// Command Dword 2.
    pub cdw2: u32,
    /// Command Dword 3.
    pub cdw3: u32,
    /// Metadata Pointer.
    pub mptr: u64,
    /// Data Pointer, first half: PRP Entry 1, or bytes 0..8 of SGL Entry 1.
    pub prp1: u64,
    /// Data Pointer, second half: PRP Entry 2, or bytes 8..16 of SGL Entry 1.
    pub prp2: u64,
    /// Command Dword 10.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
}

fn dw(b: &[u8; SQE_SIZE], i: usize) -> u32 {
    u32::from_le_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]])
}

fn qw(b: &[u8; SQE_SIZE], i: usize) -> u64 {
    dw(b, i) as u64 | (dw(b, i + 1) as u64) << 32
}

impl Sqe {
    /// Decodes an entry from its bytes.
    pub fn from_bytes(b: &[u8; SQE_SIZE]) -> Self {
        Self {
            cdw0: dw(b, 0),
            nsid: dw(b, 1),
            cdw2: dw(b, 2),
            cdw3: dw(b, 3),
            mptr: qw(b, 4),
            prp1: qw(b, 6),
            prp2: qw(b, 8),
            cdw10: dw(b, 10),
            cdw11: dw(b, 11),
            cdw12: dw(b, 12),
            cdw13: dw(b, 13),
            cdw14: dw(b, 14),
            cdw15: dw(b, 15),
        }
    }

    /// Encodes the entry into its 64 bytes (what a host writes into the SQ).
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let dws = [
            self.cdw0,
            self.nsid,
            self.cdw2,
            self.cdw3,
            self.mptr as u32,
            (self.mptr >> 32) as u32,
            self.prp1 as u32,
            (self.prp1 >> 32) as u32,
            self.prp2 as u32,
            (self.prp2 >> 32) as u32,
            self.cdw10,
            self.cdw11,
            self.cdw12,
            self.cdw13,
            self.cdw14,
            self.cdw15,
        ];
        let mut b = [0u8; SQE_SIZE];
        for (i, d) in dws.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&d.to_le_bytes());
        }
        b
    }

    /// Builds an entry with opcode and command identifier set.
    pub fn new(opcode: u8, cid: u16) -> Self {
        Self {
            cdw0: opcode as u32 | (cid as u32) << 16,
            ..Self::default()
        }
    }

    /// Opcode (CDW0 bits 7:0).
    pub fn opcode(&self) -> u8 {
        self.cdw0 as u8
    }

    /// Fused Operation (CDW0 bits 9:8).
    pub fn fuse(&self) -> u8 {
        (self.cdw0 >> 8 & 0x3) as u8
    }

    /// PRP or SGL for Data Transfer (CDW0 bits 15:14): 0 = PRPs.
    pub fn psdt(&self) -> u8 {
        (self.cdw0 >> 14 & 0x3) as u8
    }

    /// Command Identifier (CDW0 bits 31:16).
    pub fn cid(&self) -> u16 {
        (self.cdw0 >> 16) as u16
    }

    /// Starting LBA of an NVM command (CDW11:CDW10).
    pub fn slba(&self) -> u64 {
        self.cdw10 as u64 | (self.cdw11 as u64) << 32
    }

    /// Number of Logical Blocks of an NVM command, converted from the
    /// 0's based NLB field (CDW12 bits 15:0).
    pub fn nlb(&self) -> u64 {
        (self.cdw12 & 0xffff) as u64 + 1
    }
}

/// A completion queue entry to post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cqe {
    /// Dword 0, command specific.
    pub dw0: u32,
    /// SQ Identifier.
    pub sqid: u16,
    /// Command Identifier.
    pub cid: u16,
    /// Completion status.
    pub status: Status,
}

impl Cqe {
    /// Encodes the entry for a CQ slot: dwords 0..=2 and dword 3 (which
    /// carries the phase tag and is written last).
    pub fn encode(&self, sq_head: u16, phase: bool) -> ([u32; 3], u32) {
        let dw2 = sq_head as u32 | (self.sqid as u32) << 16;
        let dw3 = self.cid as u32 | (phase as u32) << 16 | self.status.to_dw3_bits();
        ([self.dw0, 0, dw2], dw3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqe_fields_sit_at_spec_offsets() {
        let mut b = [0u8; SQE_SIZE];
        b[0] = 0x02; // OPC
        b[1] = 0x40; // PSDT = 01b in bits 15:14
        b[2..4].copy_from_slice(&0xbeefu16.to_le_bytes()); // CID
        b[4..8].copy_from_slice(&7u32.to_le_bytes()); // NSID
        b[24..32].copy_from_slice(&0x1000u64.to_le_bytes()); // PRP1
        b[32..40].copy_from_slice(&0x2000u64.to_le_bytes()); // PRP2
        b[40..44].copy_from_slice(&5u32.to_le_bytes()); // CDW10
        b[48..52].copy_from_slice(&3u32.to_le_bytes()); // CDW12
        let s = Sqe::from_bytes(&b);
        assert_eq!(s.opcode(), 2);
        assert_eq!(s.psdt(), 1);
        assert_eq!(s.cid(), 0xbeef);
        assert_eq!(s.nsid, 7);
        assert_eq!((s.prp1, s.prp2), (0x1000, 0x2000));
        assert_eq!((s.slba(), s.nlb()), (5, 4));
        assert_eq!(Sqe::from_bytes(&s.to_bytes()), s);
    }

    #[test]
    fn cqe_carries_head_sqid_cid_phase_and_status() {
        let cqe = Cqe {
            dw0: 9,
            sqid: 3,
            cid: 0x1234,
            status: Status::LBA_OUT_OF_RANGE,
        };
        let (lo, dw3) = cqe.encode(17, true);
        assert_eq!(lo, [9, 0, 17 | 3 << 16]);
        assert_eq!(dw3 & 0xffff, 0x1234);
        assert_eq!(dw3 >> 16 & 1, 1);
        assert_eq!(Status::from_dw3(dw3), Status::LBA_OUT_OF_RANGE);
    }
}
