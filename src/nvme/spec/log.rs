//! Log pages read with Get Log Page: Error Information (01h), SMART / Health
//! Information (02h) and Firmware Slot Information (03h).

use super::{ascii_field, Pod, Status};
use std::mem::{offset_of, size_of};

/// Log page identifiers (LID).
pub mod lid {
    /// Error Information.
    pub const ERROR_INFORMATION: u8 = 0x01;
    /// SMART / Health Information.
    pub const SMART_HEALTH: u8 = 0x02;
    /// Firmware Slot Information.
    pub const FIRMWARE_SLOT: u8 = 0x03;
    /// Changed Namespace List.
    pub const CHANGED_NS_LIST: u8 = 0x04;
}

/// One Error Information log entry (64 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorInformation {
    /// Error Count: unique, increasing (0 = empty entry).
    pub error_count: u64,
    /// Submission Queue ID of the failed command.
    pub sqid: u16,
    /// Command ID of the failed command.
    pub cid: u16,
    /// Status Field (with the phase tag in bit 0).
    pub status: u16,
    /// Parameter Error Location.
    pub pel: u16,
    /// LBA of the first failing block.
    pub lba: u64,
    /// Namespace.
    pub nsid: u32,
    /// Vendor Specific Information Available.
    pub vs: u8,
    /// Transport Type.
    pub trtype: u8,
    /// Reserved.
    pub rsvd30: [u8; 2],
    /// Command Specific Information.
    pub csi: u64,
    /// Transport Type Specific Information.
    pub ttsi: u16,
    /// Reserved.
    pub rsvd42: [u8; 22],
}

const _: () = assert!(size_of::<ErrorInformation>() == 64);
const _: () = assert!(offset_of!(ErrorInformation, lba) == 16);
const _: () = assert!(offset_of!(ErrorInformation, nsid) == 24);
const _: () = assert!(offset_of!(ErrorInformation, csi) == 32);
const _: () = assert!(offset_of!(ErrorInformation, ttsi) == 40);
// SAFETY: repr(C) integers and byte arrays, no padding (asserted).
unsafe impl Pod for ErrorInformation {}

impl ErrorInformation {
    /// The decoded status of the failed command.
    pub fn status(&self) -> Status {
        Status::from_field(self.status >> 1)
    }
}

/// SMART / Health Information log page (512 bytes). 128-bit counters are
/// little-endian byte arrays; see the accessor methods.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmartHealth {
    /// Critical Warning bits (spare, temperature, reliability, read-only, backup).
    pub critical_warning: u8,
    /// Composite Temperature in kelvins (little endian, unaligned).
    pub temperature: [u8; 2],
    /// Available Spare, percent.
    pub avail_spare: u8,
    /// Available Spare Threshold, percent.
    pub avail_spare_threshold: u8,
    /// Percentage Used.
    pub percentage_used: u8,
    /// Endurance Group Critical Warning Summary.
    pub endurance_group_critical_warning: u8,
    /// Reserved.
    pub rsvd7: [u8; 25],
    /// Data Units Read (thousands of 512-byte units).
    pub data_units_read: [u8; 16],
    /// Data Units Written (thousands of 512-byte units).
    pub data_units_written: [u8; 16],
    /// Host Read Commands.
    pub host_read_commands: [u8; 16],
    /// Host Write Commands.
    pub host_write_commands: [u8; 16],
    /// Controller Busy Time (minutes).
    pub controller_busy_time: [u8; 16],
    /// Power Cycles.
    pub power_cycles: [u8; 16],
    /// Power On Hours.
    pub power_on_hours: [u8; 16],
    /// Unsafe Shutdowns.
    pub unsafe_shutdowns: [u8; 16],
    /// Media and Data Integrity Errors.
    pub media_errors: [u8; 16],
    /// Number of Error Information Log Entries.
    pub num_error_info_log_entries: [u8; 16],
    /// Warning Composite Temperature Time (minutes).
    pub warning_temp_time: u32,
    /// Critical Composite Temperature Time (minutes).
    pub critical_temp_time: u32,
    /// Temperature Sensors 1..8 (kelvins).
    pub temp_sensor: [u16; 8],
    /// Thermal Management Temperature 1/2 transition counts and total times.
    pub thermal_mgmt: [u32; 4],
    /// Reserved.
    pub rsvd232: [u8; 280],
}

const _: () = assert!(size_of::<SmartHealth>() == 512);
const _: () = assert!(offset_of!(SmartHealth, data_units_read) == 32);
const _: () = assert!(offset_of!(SmartHealth, power_on_hours) == 128);
const _: () = assert!(offset_of!(SmartHealth, media_errors) == 160);
const _: () = assert!(offset_of!(SmartHealth, warning_temp_time) == 192);
const _: () = assert!(offset_of!(SmartHealth, temp_sensor) == 200);
const _: () = assert!(offset_of!(SmartHealth, rsvd232) == 232);
// SAFETY: repr(C) integers and byte arrays, no padding (asserted).
unsafe impl Pod for SmartHealth {}

impl SmartHealth {
    /// Composite temperature in kelvins.
    pub fn temperature_kelvin(&self) -> u16 {
        u16::from_le_bytes(self.temperature)
    }
    /// A 128-bit little-endian counter field as a number.
    pub fn counter(field: &[u8; 16]) -> u128 {
        u128::from_le_bytes(*field)
    }
}

/// Firmware Slot Information log page (512 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirmwareSlot {
    /// Active Firmware Info (bits 2:0 active slot, 6:4 slot activated at next reset).
    pub afi: u8,
    /// Reserved.
    pub rsvd1: [u8; 7],
    /// Firmware Revision for Slots 1..7 (ASCII).
    pub frs: [[u8; 8]; 7],
    /// Reserved.
    pub rsvd64: [u8; 448],
}

const _: () = assert!(size_of::<FirmwareSlot>() == 512);
const _: () = assert!(offset_of!(FirmwareSlot, frs) == 8);
// SAFETY: repr(C) byte arrays, no padding.
unsafe impl Pod for FirmwareSlot {}

impl FirmwareSlot {
    /// The active slot number (1..7).
    pub fn active_slot(&self) -> u8 {
        self.afi & 0x7
    }
    /// Firmware revision in slot `n` (1..=7), trimmed; empty when unused.
    pub fn revision(&self, n: usize) -> String {
        match n {
            1..=7 => ascii_field(&self.frs[n - 1]),
            _ => String::new(),
        }
    }
}

/// Builds Get Log Page CDW10/11/12/13 for `lid`, `len` bytes (a multiple of 4)
/// at byte `offset` of the log: NUMDL/NUMDU (0's based dword count), LPOL/LPOU.
pub fn get_log_page_dwords(lid: u8, len: usize, offset: u64) -> (u32, u32, u32, u32) {
    let numd = (len / 4).saturating_sub(1) as u32;
    let cdw10 = lid as u32 | ((numd & 0xffff) << 16);
    let cdw11 = numd >> 16;
    (cdw10, cdw11, offset as u32, (offset >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::super::from_bytes;
    use super::*;

    #[test]
    fn smart_health_reads_temperature_and_counters() {
        let mut raw = vec![0u8; 512];
        raw[1..3].copy_from_slice(&300u16.to_le_bytes());
        raw[3] = 100;
        raw[32] = 5; // data units read
        raw[128] = 42; // power on hours
        let s: SmartHealth = from_bytes(&raw).unwrap();
        assert_eq!(s.temperature_kelvin(), 300);
        assert_eq!(s.avail_spare, 100);
        assert_eq!(SmartHealth::counter(&s.data_units_read), 5);
        assert_eq!(SmartHealth::counter(&s.power_on_hours), 42);
    }

    #[test]
    fn get_log_page_dwords_use_zero_based_dword_count() {
        assert_eq!(get_log_page_dwords(2, 512, 0), (2 | (127 << 16), 0, 0, 0));
        let (c10, c11, _, c13) = get_log_page_dwords(1, 4 << 18, 1 << 32);
        assert_eq!(c10 >> 16, 0xffff);
        assert_eq!(c11, 0x3);
        assert_eq!(c13, 1);
    }

    #[test]
    fn firmware_slot_names_the_active_revision() {
        let mut raw = vec![0u8; 512];
        raw[0] = 1;
        raw[8..14].copy_from_slice(b"10.0.2");
        let f: FirmwareSlot = from_bytes(&raw).unwrap();
        assert_eq!(f.active_slot(), 1);
        assert_eq!(f.revision(1), "10.0.2");
        assert_eq!(f.revision(2), "");
    }
}
