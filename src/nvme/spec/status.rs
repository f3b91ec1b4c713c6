//! The completion Status Field, decoded: Status Code Type (SCT), Status Code
//! (SC) with its specification name, Command Retry Delay, More and Do Not Retry.

use std::fmt;

/// SCT: which table the status code comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCodeType {
    /// 0h: Generic Command Status.
    Generic,
    /// 1h: Command Specific Status.
    CommandSpecific,
    /// 2h: Media and Data Integrity Errors.
    MediaDataIntegrity,
    /// 3h: Path Related Status.
    Path,
    /// 7h: Vendor Specific.
    VendorSpecific,
    /// 4h–6h: reserved values.
    Reserved(u8),
}

impl StatusCodeType {
    /// Decodes the 3-bit SCT.
    pub const fn from_raw(v: u8) -> Self {
        match v & 7 {
            0 => Self::Generic,
            1 => Self::CommandSpecific,
            2 => Self::MediaDataIntegrity,
            3 => Self::Path,
            7 => Self::VendorSpecific,
            r => Self::Reserved(r),
        }
    }
    /// The 3-bit SCT value.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Generic => 0,
            Self::CommandSpecific => 1,
            Self::MediaDataIntegrity => 2,
            Self::Path => 3,
            Self::VendorSpecific => 7,
            Self::Reserved(r) => r,
        }
    }
}

/// Generic command status codes (SCT 0) the driver tests for by value.
pub mod generic {
    /// Successful Completion.
    pub const SUCCESS: u8 = 0x00;
    /// Invalid Command Opcode.
    pub const INVALID_OPCODE: u8 = 0x01;
    /// Invalid Field in Command.
    pub const INVALID_FIELD: u8 = 0x02;
    /// Data Transfer Error.
    pub const DATA_TRANSFER_ERROR: u8 = 0x04;
    /// Internal Error.
    pub const INTERNAL_ERROR: u8 = 0x06;
    /// Command Abort Requested.
    pub const ABORT_REQUESTED: u8 = 0x07;
    /// Command Aborted due to SQ Deletion.
    pub const ABORTED_SQ_DELETION: u8 = 0x08;
    /// Invalid Namespace or Format.
    pub const INVALID_NAMESPACE_OR_FORMAT: u8 = 0x0b;
    /// LBA Out of Range.
    pub const LBA_OUT_OF_RANGE: u8 = 0x80;
    /// Capacity Exceeded.
    pub const CAPACITY_EXCEEDED: u8 = 0x81;
    /// Namespace Not Ready.
    pub const NAMESPACE_NOT_READY: u8 = 0x82;
}

/// Media and data integrity status codes (SCT 2) tested by value.
pub mod media {
    /// Unrecovered Read Error.
    pub const UNRECOVERED_READ_ERROR: u8 = 0x81;
    /// Compare Failure.
    pub const COMPARE_FAILURE: u8 = 0x85;
}

/// A decoded completion status (the 15-bit Status Field without the phase tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status {
    /// SCT: Status Code Type.
    pub sct: StatusCodeType,
    /// SC: Status Code.
    pub sc: u8,
    /// CRD: Command Retry Delay (index into CRDT1..3, 0 = none).
    pub crd: u8,
    /// M: More (an Error Information log entry has more).
    pub more: bool,
    /// DNR: Do Not Retry.
    pub dnr: bool,
}

impl Status {
    /// The status of a successful completion.
    pub const SUCCESS: Status = Status::new(StatusCodeType::Generic, 0);

    /// A status with the given type and code, CRD/More/DNR clear.
    pub const fn new(sct: StatusCodeType, sc: u8) -> Self {
        Status {
            sct,
            sc,
            crd: 0,
            more: false,
            dnr: false,
        }
    }

    /// Decodes the Status Field as it sits in CQE bits 31:17 of DW3, shifted
    /// down by one (i.e. `cqe.status >> 1`).
    pub const fn from_field(field: u16) -> Self {
        Status {
            sc: field as u8,
            sct: StatusCodeType::from_raw(((field >> 8) & 7) as u8),
            crd: ((field >> 11) & 3) as u8,
            more: field & (1 << 13) != 0,
            dnr: field & (1 << 14) != 0,
        }
    }

    /// Encodes back to the 15-bit Status Field (the CQE's status without phase, shifted down).
    pub const fn to_field(self) -> u16 {
        self.sc as u16
            | ((self.sct.raw() as u16) << 8)
            | ((self.crd as u16 & 3) << 11)
            | ((self.more as u16) << 13)
            | ((self.dnr as u16) << 14)
    }

    /// True for Successful Completion.
    pub const fn is_success(&self) -> bool {
        matches!(self.sct, StatusCodeType::Generic) && self.sc == 0
    }

    /// True when this is generic status `sc`.
    pub fn is_generic(&self, sc: u8) -> bool {
        self.sct == StatusCodeType::Generic && self.sc == sc
    }

    /// The specification's name for this status code ("LBA Out of Range").
    pub fn name(&self) -> &'static str {
        let name = match self.sct {
            StatusCodeType::Generic => generic_name(self.sc),
            StatusCodeType::CommandSpecific => command_specific_name(self.sc),
            StatusCodeType::MediaDataIntegrity => media_name(self.sc),
            StatusCodeType::Path => path_name(self.sc),
            StatusCodeType::VendorSpecific => Some("Vendor Specific"),
            StatusCodeType::Reserved(_) => None,
        };
        name.unwrap_or("Reserved")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (sct {:#x}, sc {:#04x}",
            self.name(),
            self.sct.raw(),
            self.sc
        )?;
        if self.dnr {
            f.write_str(", dnr")?;
        }
        if self.more {
            f.write_str(", more")?;
        }
        f.write_str(")")
    }
}

fn generic_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x00 => "Successful Completion",
        0x01 => "Invalid Command Opcode",
        0x02 => "Invalid Field in Command",
        0x03 => "Command ID Conflict",
        0x04 => "Data Transfer Error",
        0x05 => "Commands Aborted due to Power Loss Notification",
        0x06 => "Internal Error",
        0x07 => "Command Abort Requested",
        0x08 => "Command Aborted due to SQ Deletion",
        0x09 => "Command Aborted due to Failed Fused Command",
        0x0a => "Command Aborted due to Missing Fused Command",
        0x0b => "Invalid Namespace or Format",
        0x0c => "Command Sequence Error",
        0x0d => "Invalid SGL Segment Descriptor",
        0x0e => "Invalid Number of SGL Descriptors",
        0x0f => "Data SGL Length Invalid",
        0x10 => "Metadata SGL Length Invalid",
        0x11 => "SGL Descriptor Type Invalid",
        0x12 => "Invalid Use of Controller Memory Buffer",
        0x13 => "PRP Offset Invalid",
        0x14 => "Atomic Write Unit Exceeded",
        0x15 => "Operation Denied",
        0x16 => "SGL Offset Invalid",
        0x18 => "Host Identifier Inconsistent Format",
        0x19 => "Keep Alive Timer Expired",
        0x1a => "Keep Alive Timeout Invalid",
        0x1b => "Command Aborted due to Preempt and Abort",
        0x1c => "Sanitize Failed",
        0x1d => "Sanitize In Progress",
        0x1e => "SGL Data Block Granularity Invalid",
        0x1f => "Command Not Supported for Queue in CMB",
        0x20 => "Namespace is Write Protected",
        0x21 => "Command Interrupted",
        0x22 => "Transient Transport Error",
        0x80 => "LBA Out of Range",
        0x81 => "Capacity Exceeded",
        0x82 => "Namespace Not Ready",
        0x83 => "Reservation Conflict",
        0x84 => "Format In Progress",
        _ => return None,
    })
}

fn command_specific_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x00 => "Completion Queue Invalid",
        0x01 => "Invalid Queue Identifier",
        0x02 => "Invalid Queue Size",
        0x03 => "Abort Command Limit Exceeded",
        0x05 => "Asynchronous Event Request Limit Exceeded",
        0x06 => "Invalid Firmware Slot",
        0x07 => "Invalid Firmware Image",
        0x08 => "Invalid Interrupt Vector",
        0x09 => "Invalid Log Page",
        0x0a => "Invalid Format",
        0x0b => "Firmware Activation Requires Conventional Reset",
        0x0c => "Invalid Queue Deletion",
        0x0d => "Feature Identifier Not Saveable",
        0x0e => "Feature Not Changeable",
        0x0f => "Feature Not Namespace Specific",
        0x10 => "Firmware Activation Requires NVM Subsystem Reset",
        0x11 => "Firmware Activation Requires Controller Level Reset",
        0x12 => "Firmware Activation Requires Maximum Time Violation",
        0x13 => "Firmware Activation Prohibited",
        0x14 => "Overlapping Range",
        0x15 => "Namespace Insufficient Capacity",
        0x16 => "Namespace Identifier Unavailable",
        0x18 => "Namespace Already Attached",
        0x19 => "Namespace Is Private",
        0x1a => "Namespace Not Attached",
        0x1b => "Thin Provisioning Not Supported",
        0x1c => "Controller List Invalid",
        0x1d => "Device Self-test In Progress",
        0x1e => "Boot Partition Write Prohibited",
        0x1f => "Invalid Controller Identifier",
        0x20 => "Invalid Secondary Controller State",
        0x21 => "Invalid Number of Controller Resources",
        0x22 => "Invalid Resource Identifier",
        0x23 => "Sanitize Prohibited While Persistent Memory Region is Enabled",
        0x24 => "ANA Group Identifier Invalid",
        0x25 => "ANA Attach Failed",
        0x80 => "Conflicting Attributes",
        0x81 => "Invalid Protection Information",
        0x82 => "Attempted Write to Read Only Range",
        _ => return None,
    })
}

fn media_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x80 => "Write Fault",
        0x81 => "Unrecovered Read Error",
        0x82 => "End-to-end Guard Check Error",
        0x83 => "End-to-end Application Tag Check Error",
        0x84 => "End-to-end Reference Tag Check Error",
        0x85 => "Compare Failure",
        0x86 => "Access Denied",
        0x87 => "Deallocated or Unwritten Logical Block",
        _ => return None,
    })
}

fn path_name(sc: u8) -> Option<&'static str> {
    Some(match sc {
        0x00 => "Internal Path Error",
        0x01 => "Asymmetric Access Persistent Loss",
        0x02 => "Asymmetric Access Inaccessible",
        0x03 => "Asymmetric Access Transition",
        0x60 => "Controller Pathing Error",
        0x70 => "Host Pathing Error",
        0x71 => "Command Aborted By Host",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_field_decodes_sct_sc_more_and_dnr() {
        // DNR | M | SCT=2 | SC=0x81
        let s = Status::from_field((1 << 14) | (1 << 13) | (2 << 8) | 0x81);
        assert_eq!(s.sct, StatusCodeType::MediaDataIntegrity);
        assert_eq!(s.sc, 0x81);
        assert!(s.dnr && s.more);
        assert_eq!(s.name(), "Unrecovered Read Error");
        assert_eq!(
            s.to_string(),
            "Unrecovered Read Error (sct 0x2, sc 0x81, dnr, more)"
        );
        assert_eq!(Status::from_field(s.to_field()), s);
    }

    #[test]
    fn every_table_names_its_codes() {
        assert!(Status::from_field(0).is_success());
        let lba = Status::new(StatusCodeType::Generic, generic::LBA_OUT_OF_RANGE);
        assert_eq!(lba.name(), "LBA Out of Range");
        assert_eq!(
            Status::new(StatusCodeType::CommandSpecific, 0x01).name(),
            "Invalid Queue Identifier"
        );
        assert_eq!(
            Status::new(StatusCodeType::Path, 0x71).name(),
            "Command Aborted By Host"
        );
        assert_eq!(
            Status::new(StatusCodeType::Reserved(5), 0).name(),
            "Reserved"
        );
        assert_eq!(
            Status::new(StatusCodeType::Generic, 0x7f).name(),
            "Reserved"
        );
    }
}
