//! Submission and completion queue entries, and the opcodes of the admin and
//! NVM command sets.

use std::mem::{offset_of, size_of};

/// A submission queue entry: the 64-byte command a host places in an SQ.
///
/// Command Dword 0 packs OPC (bits 7:0), FUSE (9:8), PSDT (15:14) and CID (31:16).
/// The data pointer is PRP1/PRP2 (or one SGL descriptor when PSDT selects SGLs).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sqe {
    /// Command Dword 0: opcode, fused operation, PSDT, command identifier.
    pub cdw0: u32,
    /// Namespace Identifier.
    pub nsid: u32,
    /// Command Dword 2 (command specific).
    pub cdw2: u32,
    /// Command Dword 3 (command specific).
    pub cdw3: u32,
    /// Metadata Pointer.
    pub mptr: u64,
    /// Data Pointer, PRP Entry 1 (or the first half of an SGL descriptor).
    pub prp1: u64,
    /// Data Pointer, PRP Entry 2 (or the second half of an SGL descriptor).
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

const _: () = assert!(size_of::<Sqe>() == 64);
const _: () = assert!(offset_of!(Sqe, nsid) == 4);
const _: () = assert!(offset_of!(Sqe, mptr) == 16);
const _: () = assert!(offset_of!(Sqe, prp1) == 24);
const _: () = assert!(offset_of!(Sqe, prp2) == 32);
const _: () = assert!(offset_of!(Sqe, cdw10) == 40);
const _: () = assert!(offset_of!(Sqe, cdw15) == 60);

/// PSDT value: PRPs are used for the data transfer.
pub const PSDT_PRP: u8 = 0;
/// PSDT value: SGLs are used, the metadata pointer is a buffer address.
pub const PSDT_SGL_MPTR_CONTIG: u8 = 1;

impl Sqe {
    /// A zeroed command with opcode `opc` for namespace `nsid`.
    pub const fn new(opc: u8, nsid: u32) -> Self {
        Sqe {
            cdw0: opc as u32,
            nsid,
            cdw2: 0,
            cdw3: 0,
            mptr: 0,
            prp1: 0,
            prp2: 0,
            cdw10: 0,
            cdw11: 0,
            cdw12: 0,
            cdw13: 0,
            cdw14: 0,
            cdw15: 0,
        }
    }
    /// OPC: the opcode.
    pub const fn opc(&self) -> u8 {
        self.cdw0 as u8
    }
    /// FUSE: fused operation (0 normal, 1 first, 2 second).
    pub const fn fuse(&self) -> u8 {
        ((self.cdw0 >> 8) & 0x3) as u8
    }
    /// PSDT: PRP or SGL for Data Transfer.
    pub const fn psdt(&self) -> u8 {
        ((self.cdw0 >> 14) & 0x3) as u8
    }
    /// CID: Command Identifier.
    pub const fn cid(&self) -> u16 {
        (self.cdw0 >> 16) as u16
    }
    /// Sets CID.
    pub fn set_cid(&mut self, cid: u16) {
        self.cdw0 = (self.cdw0 & 0xffff) | ((cid as u32) << 16);
    }
    /// Sets PSDT.
    pub fn set_psdt(&mut self, psdt: u8) {
        self.cdw0 = (self.cdw0 & !(0x3 << 14)) | (((psdt & 0x3) as u32) << 14);
    }
    /// Sets FUSE.
    pub fn set_fuse(&mut self, fuse: u8) {
        self.cdw0 = (self.cdw0 & !(0x3 << 8)) | (((fuse & 0x3) as u32) << 8);
    }
    /// Sets the starting LBA (SLBA) in CDW10 (low) and CDW11 (high), as NVM I/O commands use.
    pub fn set_slba(&mut self, slba: u64) {
        self.cdw10 = slba as u32;
        self.cdw11 = (slba >> 32) as u32;
    }
    /// The SLBA from CDW10/CDW11.
    pub const fn slba(&self) -> u64 {
        self.cdw10 as u64 | ((self.cdw11 as u64) << 32)
    }
}

/// A completion queue entry: the 16-byte result a controller posts to a CQ.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cqe {
    /// Dword 0: command specific result.
    pub dw0: u32,
    /// Dword 1: command specific result.
    pub dw1: u32,
    /// SQHD: SQ Head Pointer, how far the controller has consumed the SQ.
    pub sqhd: u16,
    /// SQID: the SQ the command came from.
    pub sqid: u16,
    /// CID: the command identifier of the completed command.
    pub cid: u16,
    /// Phase Tag (bit 0) and Status Field (bits 15:1).
    pub status: u16,
}

const _: () = assert!(size_of::<Cqe>() == 16);
const _: () = assert!(offset_of!(Cqe, sqhd) == 8);
const _: () = assert!(offset_of!(Cqe, sqid) == 10);
const _: () = assert!(offset_of!(Cqe, cid) == 12);
const _: () = assert!(offset_of!(Cqe, status) == 14);

impl Cqe {
    /// P: the phase tag, inverted by the controller on every pass through the queue.
    pub const fn phase(&self) -> bool {
        self.status & 1 != 0
    }
    /// The decoded status field.
    pub const fn status(&self) -> super::Status {
        super::Status::from_field(self.status >> 1)
    }
}

/// Admin command set opcodes.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum AdminOpcode {
    DeleteIoSq = 0x00,
    CreateIoSq = 0x01,
    GetLogPage = 0x02,
    DeleteIoCq = 0x04,
    CreateIoCq = 0x05,
    Identify = 0x06,
    Abort = 0x08,
    SetFeatures = 0x09,
    GetFeatures = 0x0a,
    AsyncEventRequest = 0x0c,
    NamespaceManagement = 0x0d,
    FirmwareCommit = 0x10,
    FirmwareImageDownload = 0x11,
    DeviceSelfTest = 0x14,
    NamespaceAttachment = 0x15,
    KeepAlive = 0x18,
    DirectiveSend = 0x19,
    DirectiveReceive = 0x1a,
    VirtualizationManagement = 0x1c,
    NvmeMiSend = 0x1d,
    NvmeMiReceive = 0x1e,
    DoorbellBufferConfig = 0x7c,
    FormatNvm = 0x80,
    SecuritySend = 0x81,
    SecurityReceive = 0x82,
    Sanitize = 0x84,
}

/// NVM command set opcodes (I/O queues).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NvmOpcode {
    Flush = 0x00,
    Write = 0x01,
    Read = 0x02,
    WriteUncorrectable = 0x04,
    Compare = 0x05,
    WriteZeroes = 0x08,
    DatasetManagement = 0x09,
    Verify = 0x0c,
    ReservationRegister = 0x0d,
    ReservationReport = 0x0e,
    ReservationAcquire = 0x11,
    ReservationRelease = 0x15,
}

/// Dataset Management attribute AD (CDW11 bit 2): deallocate the ranges.
pub const DSM_ATTR_DEALLOCATE: u32 = 1 << 2;

/// One Dataset Management range (16 bytes): context attributes, length in LBAs, starting LBA.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DsmRange {
    /// Context Attributes.
    pub cattr: u32,
    /// Length in logical blocks (1's based).
    pub nlb: u32,
    /// Starting LBA.
    pub slba: u64,
}

const _: () = assert!(size_of::<DsmRange>() == 16);
const _: () = assert!(offset_of!(DsmRange, slba) == 8);

/// Identify CNS values (CDW10 bits 7:0).
pub mod cns {
    /// Identify Namespace data structure for the NSID.
    pub const NAMESPACE: u8 = 0x00;
    /// Identify Controller data structure.
    pub const CONTROLLER: u8 = 0x01;
    /// Active Namespace ID list (NSIDs greater than the given NSID).
    pub const ACTIVE_NS_LIST: u8 = 0x02;
    /// Namespace Identification Descriptor list.
    pub const NS_ID_DESCRIPTORS: u8 = 0x03;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdw0_packs_opcode_fuse_psdt_and_cid() {
        let mut sqe = Sqe::new(NvmOpcode::Read as u8, 1);
        sqe.set_cid(0xbeef);
        sqe.set_fuse(1);
        sqe.set_psdt(PSDT_SGL_MPTR_CONTIG);
        assert_eq!(sqe.opc(), 0x02);
        assert_eq!(sqe.cid(), 0xbeef);
        assert_eq!(sqe.fuse(), 1);
        assert_eq!(sqe.psdt(), 1);
        assert_eq!(sqe.cdw0, 0xbeef_4102);
        sqe.set_slba(0x1_2345_6789);
        assert_eq!((sqe.cdw10, sqe.cdw11), (0x2345_6789, 1));
        assert_eq!(sqe.slba(), 0x1_2345_6789);
    }

    #[test]
    fn cqe_phase_is_bit_zero_of_status() {
        let cqe = Cqe {
            status: (0x80 << 1) | 1,
            ..Default::default()
        };
        assert!(cqe.phase());
        assert_eq!(cqe.status().name(), "LBA Out of Range");
    }
}
