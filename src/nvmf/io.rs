//! I/O commands of the NVM command set as the target decodes them: which
//! bdev operation each becomes, its block range checked against the
//! namespace and its data length against the command's SGL, and the NVMe
//! status a bdev completion maps to.

use super::status::{sc, sct, Completion};
use crate::bdev::IoStatus;
use crate::nvme::spec::command::DSM_ATTR_DEALLOCATE;
use crate::nvme::spec::status::generic;
use crate::nvme::spec::{NvmOpcode, Sqe};

/// The bdev operation an I/O command becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoKind {
    /// Read blocks to the host.
    Read,
    /// Write the host's data.
    Write,
    /// Compare the host's data with the blocks.
    Compare,
    /// Make writes durable.
    Flush,
    /// Zero blocks.
    WriteZeroes,
    /// Deallocate the ranges in the data (Dataset Management with AD).
    Deallocate {
        /// Number of ranges (1..=256).
        ranges: u16,
    },
    /// Nothing to do (Dataset Management without AD).
    Nothing,
}

/// A decoded I/O command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoCmd {
    /// What to do.
    pub kind: IoKind,
    /// First block.
    pub slba: u64,
    /// Blocks.
    pub nlb: u64,
    /// Bytes of data the command moves.
    pub data_len: usize,
}

/// Decodes I/O command `sqe` for a namespace of `num_blocks` blocks of
/// `block_size` bytes, whose SGL describes `sgl_len` bytes.
pub fn decode(
    sqe: &Sqe,
    block_size: u32,
    num_blocks: u64,
    sgl_len: usize,
) -> Result<IoCmd, Completion> {
    let opc = sqe.opc();
    let nlb = (sqe.cdw12 & 0xffff) as u64 + 1;
    let ranged = |kind| -> Result<IoCmd, Completion> {
        let slba = sqe.slba();
        if slba.checked_add(nlb).map_or(true, |end| end > num_blocks) {
            return Err(Completion::generic(generic::LBA_OUT_OF_RANGE));
        }
        Ok(IoCmd {
            kind,
            slba,
            nlb,
            data_len: 0,
        })
    };
    let with_data = |kind| -> Result<IoCmd, Completion> {
        let mut c = ranged(kind)?;
        let len = nlb * block_size as u64;
        if len > sgl_len as u64 {
            return Err(Completion::generic(sc::DATA_SGL_LENGTH_INVALID));
        }
        c.data_len = len as usize;
        Ok(c)
    };
    match opc {
        x if x == NvmOpcode::Read as u8 => with_data(IoKind::Read),
        x if x == NvmOpcode::Write as u8 => with_data(IoKind::Write),
        x if x == NvmOpcode::Compare as u8 => with_data(IoKind::Compare),
        x if x == NvmOpcode::WriteZeroes as u8 => ranged(IoKind::WriteZeroes),
        x if x == NvmOpcode::Flush as u8 => Ok(IoCmd {
            kind: IoKind::Flush,
            slba: 0,
            nlb: num_blocks,
            data_len: 0,
        }),
        x if x == NvmOpcode::DatasetManagement as u8 => {
            let ranges = (sqe.cdw10 & 0xff) as u16 + 1;
            let len = ranges as usize * 16;
            if sgl_len < len {
                return Err(Completion::generic(sc::DATA_SGL_LENGTH_INVALID));
            }
            let kind = if sqe.cdw11 & DSM_ATTR_DEALLOCATE != 0 {
                IoKind::Deallocate { ranges }
            } else {
                IoKind::Nothing
            };
            Ok(IoCmd {
                kind,
                slba: 0,
                nlb: 0,
                data_len: len,
            })
        }
        _ => Err(Completion::invalid_opcode()),
    }
}

/// True for commands whose data goes from host to controller.
pub fn is_host_to_controller(opc: u8) -> bool {
    opc & 3 == 1 || opc & 3 == 3
}

/// One Dataset Management range: (first block, blocks).
pub fn dsm_range(data: &[u8], i: usize) -> Option<(u64, u64)> {
    let r = data.get(i * 16..i * 16 + 16)?;
    let nlb = u32::from_le_bytes(r[4..8].try_into().ok()?) as u64;
    let slba = u64::from_le_bytes(r[8..16].try_into().ok()?);
    Some((slba, nlb))
}

/// The NVMe status of a bdev completion.
pub fn status_of(s: IoStatus) -> Completion {
    match s {
        IoStatus::Success => Completion::ok(0),
        IoStatus::Miscompare => Completion::error(sct::MEDIA, sc::COMPARE_FAILURE),
        IoStatus::Aborted => Completion::generic(generic::ABORTED_SQ_DELETION),
        IoStatus::NvmeError { sct, sc } => Completion::error(sct, sc),
        IoStatus::Failed | IoStatus::NoMem => Completion::generic(generic::INTERNAL_ERROR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(opc: NvmOpcode, slba: u64, nlb: u16) -> Sqe {
        let mut s = Sqe::new(opc as u8, 1);
        s.set_slba(slba);
        s.cdw12 = nlb as u32 - 1;
        s
    }

    #[test]
    fn a_read_takes_slba_and_zero_based_nlb_from_cdw10_to_12() {
        let c = decode(&rw(NvmOpcode::Read, 0x1_0000_0002, 8), 512, 1 << 40, 4096).unwrap();
        assert_eq!(
            c,
            IoCmd {
                kind: IoKind::Read,
                slba: 0x1_0000_0002,
                nlb: 8,
                data_len: 4096
            }
        );
    }

    #[test]
    fn a_range_past_the_end_is_lba_out_of_range() {
        let e = decode(&rw(NvmOpcode::Write, 1020, 8), 512, 1024, 4096).unwrap_err();
        assert_eq!(e.sc, generic::LBA_OUT_OF_RANGE);
        let e = decode(&rw(NvmOpcode::Read, u64::MAX, 2), 512, 1024, 4096).unwrap_err();
        assert_eq!(e.sc, generic::LBA_OUT_OF_RANGE, "no overflow");
    }

    #[test]
    fn data_longer_than_the_sgl_is_data_sgl_length_invalid() {
        let e = decode(&rw(NvmOpcode::Write, 0, 16), 512, 1024, 4096).unwrap_err();
        assert_eq!(e.sc, sc::DATA_SGL_LENGTH_INVALID);
    }

    #[test]
    fn dataset_management_deallocates_only_with_ad() {
        let mut s = Sqe::new(NvmOpcode::DatasetManagement as u8, 1);
        s.cdw10 = 1; // two ranges
        s.cdw11 = DSM_ATTR_DEALLOCATE;
        let c = decode(&s, 512, 1024, 32).unwrap();
        assert_eq!((c.kind, c.data_len), (IoKind::Deallocate { ranges: 2 }, 32));
        s.cdw11 = 0;
        assert_eq!(decode(&s, 512, 1024, 32).unwrap().kind, IoKind::Nothing);
        let mut r = [0u8; 32];
        r[20..24].copy_from_slice(&7u32.to_le_bytes());
        r[24..32].copy_from_slice(&100u64.to_le_bytes());
        assert_eq!(dsm_range(&r, 1), Some((100, 7)));
    }

    #[test]
    fn bdev_statuses_map_to_nvme_statuses() {
        assert!(status_of(IoStatus::Success).is_success());
        assert_eq!(status_of(IoStatus::Miscompare), Completion::error(2, 0x85));
        assert_eq!(
            status_of(IoStatus::NvmeError { sct: 2, sc: 0x81 }),
            Completion::error(2, 0x81)
        );
        assert_eq!(status_of(IoStatus::Failed).sc, generic::INTERNAL_ERROR);
        assert!(is_host_to_controller(NvmOpcode::Write as u8));
        assert!(!is_host_to_controller(NvmOpcode::Read as u8));
    }
}
