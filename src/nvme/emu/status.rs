//! NVMe completion status values (Status Code Type + Status Code) as the
//! emulated controller reports them, encoded into CQE dword 3.

/// A completion status: Status Code Type (SCT), Status Code (SC) and the
/// Do Not Retry bit, as carried in bits 31:17 of CQE dword 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// Status Code Type: 0 generic, 1 command specific, 2 media and data integrity, 3 path.
    pub sct: u8,
    /// Status Code within the type.
    pub sc: u8,
    /// Do Not Retry.
    pub dnr: bool,
}

impl Status {
    const fn generic(sc: u8) -> Self {
        Self {
            sct: 0,
            sc,
            dnr: sc != 0,
        }
    }
    const fn specific(sc: u8) -> Self {
        Self {
            sct: 1,
            sc,
            dnr: true,
        }
    }
    const fn media(sc: u8) -> Self {
        Self {
            sct: 2,
            sc,
            dnr: false,
        }
    }

    /// Successful Completion.
    pub const SUCCESS: Self = Self::generic(0x00);
    /// Invalid Command Opcode.
    pub const INVALID_OPCODE: Self = Self::generic(0x01);
    /// Invalid Field in Command.
    pub const INVALID_FIELD: Self = Self::generic(0x02);
    /// Data Transfer Error (also what a DMA fault produces).
    pub const DATA_TRANSFER_ERROR: Self = Self::generic(0x04);
    /// Internal Error.
    pub const INTERNAL_ERROR: Self = Self::generic(0x06);
    /// Command Abort Requested.
    pub const ABORT_REQUESTED: Self = Self::generic(0x07);
    /// Command Aborted due to SQ Deletion.
    pub const ABORTED_SQ_DELETION: Self = Self::generic(0x08);
    /// Invalid Namespace or Format.
    pub const INVALID_NAMESPACE_OR_FORMAT: Self = Self::generic(0x0b);
    /// Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: Self = Self::generic(0x0c);
    /// Invalid SGL Segment Descriptor.
    pub const INVALID_SGL_SEGMENT_DESCRIPTOR: Self = Self::generic(0x0d);
    /// Data SGL Length Invalid.
    pub const DATA_SGL_LENGTH_INVALID: Self = Self::generic(0x0f);
    /// SGL Descriptor Type Invalid.
    pub const SGL_DESCRIPTOR_TYPE_INVALID: Self = Self::generic(0x11);
    /// PRP Offset Invalid.
    pub const PRP_OFFSET_INVALID: Self = Self::generic(0x13);
    /// LBA Out of Range (NVM command set).
    pub const LBA_OUT_OF_RANGE: Self = Self::generic(0x80);
    /// Completion Queue Invalid (Create I/O SQ).
    pub const COMPLETION_QUEUE_INVALID: Self = Self::specific(0x00);
    /// Invalid Queue Identifier.
    pub const INVALID_QUEUE_IDENTIFIER: Self = Self::specific(0x01);
    /// Invalid Queue Size.
    pub const INVALID_QUEUE_SIZE: Self = Self::specific(0x02);
    /// Asynchronous Event Request Limit Exceeded.
    pub const AER_LIMIT_EXCEEDED: Self = Self::specific(0x05);
    /// Invalid Log Page.
    pub const INVALID_LOG_PAGE: Self = Self::specific(0x09);
    /// Invalid Format (Format NVM).
    pub const INVALID_FORMAT: Self = Self::specific(0x0a);
    /// Invalid Queue Deletion (a CQ that still has SQs).
    pub const INVALID_QUEUE_DELETION: Self = Self::specific(0x0c);
    /// Feature Identifier Not Saveable.
    pub const FEATURE_NOT_SAVEABLE: Self = Self::specific(0x0d);
    /// Write Fault (media error).
    pub const WRITE_FAULT: Self = Self::media(0x80);
    /// Unrecovered Read Error (media error).
    pub const UNRECOVERED_READ_ERROR: Self = Self::media(0x81);
    /// Compare Failure (media error).
    pub const COMPARE_FAILURE: Self = Self::media(0x85);

    /// True for Successful Completion.
    pub fn is_success(self) -> bool {
        self.sct == 0 && self.sc == 0
    }

    /// The Status Field as placed in CQE dword 3 bits 31:17 (without the phase tag).
    pub fn to_dw3_bits(self) -> u32 {
        ((self.sc as u32) << 17) | (((self.sct & 0x7) as u32) << 25) | ((self.dnr as u32) << 31)
    }

    /// Decodes the status from CQE dword 3 (ignoring phase, CRD and More).
    pub fn from_dw3(dw3: u32) -> Self {
        Self {
            sc: (dw3 >> 17) as u8,
            sct: ((dw3 >> 25) & 0x7) as u8,
            dnr: dw3 >> 31 != 0,
        }
    }

    /// The 15-bit Status Field with the phase bit position cleared, as the
    /// Error Information log stores it (bits 15:1).
    pub fn to_status_field(self) -> u16 {
        (self.to_dw3_bits() >> 16) as u16 & !1
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SCT {:#x} SC {:#04x}", self.sct, self.sc)?;
        if self.dnr {
            write!(f, " DNR")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_dword3() {
        for s in [
            Status::SUCCESS,
            Status::LBA_OUT_OF_RANGE,
            Status::COMPARE_FAILURE,
            Status::INVALID_QUEUE_DELETION,
        ] {
            assert_eq!(Status::from_dw3(s.to_dw3_bits() | 1 << 16), s);
        }
        assert_eq!(Status::LBA_OUT_OF_RANGE.to_dw3_bits() >> 17 & 0xff, 0x80);
        assert_eq!(Status::COMPARE_FAILURE.to_dw3_bits() >> 25 & 0x7, 2);
    }
}
