//! Controller registers (NVMe over PCIe: BAR0), named and laid out as the
//! NVMe Base Specification's "Controller Registers" section.
//!
//! Each register is a newtype over its raw value with one accessor per field,
//! named after the field (`cap.mqes()`, `cc.iosqes()`, `csts.rdy()`), and
//! `with_*` builders for the writable ones.

use super::{bits64, set_bits64};
use std::time::Duration;

/// Offset of CAP, Controller Capabilities (64-bit).
pub const REG_CAP: usize = 0x00;
/// Offset of VS, Version.
pub const REG_VS: usize = 0x08;
/// Offset of INTMS, Interrupt Mask Set.
pub const REG_INTMS: usize = 0x0c;
/// Offset of INTMC, Interrupt Mask Clear.
pub const REG_INTMC: usize = 0x10;
/// Offset of CC, Controller Configuration.
pub const REG_CC: usize = 0x14;
/// Offset of CSTS, Controller Status.
pub const REG_CSTS: usize = 0x1c;
/// Offset of NSSR, NVM Subsystem Reset.
pub const REG_NSSR: usize = 0x20;
/// Offset of AQA, Admin Queue Attributes.
pub const REG_AQA: usize = 0x24;
/// Offset of ASQ, Admin Submission Queue Base Address (64-bit).
pub const REG_ASQ: usize = 0x28;
/// Offset of ACQ, Admin Completion Queue Base Address (64-bit).
pub const REG_ACQ: usize = 0x30;
/// Offset of CMBLOC, Controller Memory Buffer Location.
pub const REG_CMBLOC: usize = 0x38;
/// Offset of CMBSZ, Controller Memory Buffer Size.
pub const REG_CMBSZ: usize = 0x3c;
/// Offset of the first doorbell (SQ 0 tail).
pub const REG_DOORBELL_BASE: usize = 0x1000;

/// Offset of the Submission Queue `qid` Tail Doorbell for a doorbell stride `dstrd` (CAP.DSTRD).
pub const fn sq_tail_doorbell(qid: u16, dstrd: u8) -> usize {
    REG_DOORBELL_BASE + (2 * qid as usize) * (4usize << dstrd)
}

/// Offset of the Completion Queue `qid` Head Doorbell for a doorbell stride `dstrd`.
pub const fn cq_head_doorbell(qid: u16, dstrd: u8) -> usize {
    REG_DOORBELL_BASE + (2 * qid as usize + 1) * (4usize << dstrd)
}

macro_rules! field {
    ($(#[$m:meta])* $name:ident, $lo:expr, $w:expr) => {
        $(#[$m])*
        #[inline]
        pub const fn $name(&self) -> u32 {
            bits64(self.0 as u64, $lo, $w) as u32
        }
    };
    ($(#[$m:meta])* $name:ident, $set:ident, $lo:expr, $w:expr) => {
        field!($(#[$m])* $name, $lo, $w);
        #[doc = concat!("Returns a copy with `", stringify!($name), "` set.")]
        #[inline]
        pub const fn $set(self, v: u32) -> Self {
            Self(set_bits64(self.0 as u64, $lo, $w, v as u64) as _)
        }
    };
}

/// CAP, Controller Capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cap(pub u64);

impl Cap {
    field!(/// MQES: Maximum Queue Entries Supported, 0's based.
        mqes, 0, 16);
    field!(/// CQR: Contiguous Queues Required.
        cqr, 16, 1);
    field!(/// AMS: Arbitration Mechanism Supported.
        ams, 17, 2);
    field!(/// TO: worst-case time to CSTS.RDY transition, in 500 ms units.
        to, 24, 8);
    field!(/// DSTRD: doorbell stride, 2^(2+DSTRD) bytes.
        dstrd, 32, 4);
    field!(/// NSSRS: NVM Subsystem Reset Supported.
        nssrs, 36, 1);
    field!(/// CSS: Command Sets Supported (bit 0 NVM, bit 6 I/O command sets, bit 7 admin only).
        css, 37, 8);
    field!(/// BPS: Boot Partition Support.
        bps, 45, 1);
    field!(/// MPSMIN: minimum memory page size, 2^(12+MPSMIN).
        mpsmin, 48, 4);
    field!(/// MPSMAX: maximum memory page size, 2^(12+MPSMAX).
        mpsmax, 52, 4);
    field!(/// PMRS: Persistent Memory Region Supported.
        pmrs, 56, 1);
    field!(/// CMBS: Controller Memory Buffer Supported.
        cmbs, 57, 1);

    /// CAP.TO as a duration (at least 500 ms, as a TO of 0 would otherwise mean no wait).
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(500 * self.to().max(1) as u64)
    }
    /// Largest queue depth a queue may have: MQES + 1.
    pub fn max_queue_entries(&self) -> u32 {
        self.mqes() + 1
    }
    /// Minimum memory page size in bytes.
    pub fn mps_min_bytes(&self) -> usize {
        1 << (12 + self.mpsmin())
    }
}

/// VS, Version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vs(pub u32);

impl Vs {
    field!(/// TER: tertiary version.
        ter, 0, 8);
    field!(/// MNR: minor version.
        mnr, 8, 8);
    field!(/// MJR: major version.
        mjr, 16, 16);
}

impl std::fmt::Display for Vs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.mjr(), self.mnr())?;
        if self.ter() != 0 {
            write!(f, ".{}", self.ter())?;
        }
        Ok(())
    }
}

/// CC, Controller Configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cc(pub u32);

impl Cc {
    field!(/// EN: Enable.
        en, with_en, 0, 1);
    field!(/// CSS: I/O Command Set Selected (0 = NVM).
        css, with_css, 4, 3);
    field!(/// MPS: Memory Page Size, 2^(12+MPS).
        mps, with_mps, 7, 4);
    field!(/// AMS: Arbitration Mechanism Selected.
        ams, with_ams, 11, 3);
    field!(/// SHN: Shutdown Notification (1 normal, 2 abrupt).
        shn, with_shn, 14, 2);
    field!(/// IOSQES: I/O Submission Queue Entry Size, 2^n bytes (6 = 64 B).
        iosqes, with_iosqes, 16, 4);
    field!(/// IOCQES: I/O Completion Queue Entry Size, 2^n bytes (4 = 16 B).
        iocqes, with_iocqes, 20, 4);
}

/// CC.SHN value for a normal shutdown.
pub const SHN_NORMAL: u32 = 1;
/// CC.SHN value for an abrupt shutdown.
pub const SHN_ABRUPT: u32 = 2;

/// CSTS, Controller Status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Csts(pub u32);

impl Csts {
    field!(/// RDY: Ready.
        rdy, 0, 1);
    field!(/// CFS: Controller Fatal Status.
        cfs, 1, 1);
    field!(/// SHST: Shutdown Status (0 normal operation, 1 occurring, 2 complete).
        shst, 2, 2);
    field!(/// NSSRO: NVM Subsystem Reset Occurred.
        nssro, 4, 1);
    field!(/// PP: Processing Paused.
        pp, 5, 1);

    /// True when the register reads all ones: the device is gone (surprise removal).
    pub fn is_all_ones(&self) -> bool {
        self.0 == u32::MAX
    }
}

/// CSTS.SHST value: shutdown processing complete.
pub const SHST_COMPLETE: u32 = 2;

/// AQA, Admin Queue Attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aqa(pub u32);

impl Aqa {
    field!(/// ASQS: Admin Submission Queue Size, 0's based.
        asqs, with_asqs, 0, 12);
    field!(/// ACQS: Admin Completion Queue Size, 0's based.
        acqs, with_acqs, 16, 12);
}

/// CMBLOC, Controller Memory Buffer Location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cmbloc(pub u32);

impl Cmbloc {
    field!(/// BIR: Base Indicator Register (which BAR holds the CMB).
        bir, 0, 3);
    field!(/// OFST: offset into that BAR, in CMBSZ.SZU units.
        ofst, 12, 20);
}

/// CMBSZ, Controller Memory Buffer Size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cmbsz(pub u32);

impl Cmbsz {
    field!(/// SQS: Submission Queue Support.
        sqs, 0, 1);
    field!(/// CQS: Completion Queue Support.
        cqs, 1, 1);
    field!(/// LISTS: PRP/SGL List Support.
        lists, 2, 1);
    field!(/// RDS: Read Data Support.
        rds, 3, 1);
    field!(/// WDS: Write Data Support.
        wds, 4, 1);
    field!(/// SZU: Size Units (0 = 4 KiB, 1 = 64 KiB, ... 16^n × 4 KiB).
        szu, 8, 4);
    field!(/// SZ: Size, in SZU units.
        sz, 12, 20);

    /// Size of the controller memory buffer in bytes (0 when absent).
    pub fn size_bytes(&self) -> u64 {
        (self.sz() as u64) << (12 + 4 * self.szu())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_fields_decode_qemu_value() {
        // QEMU's CAP: MQES 2047, CQR 1, TO 15, DSTRD 0, CSS NVM + I/O sets, MPSMAX 4, CMBS 0.
        let cap = Cap(0x0040_40a0_0f01_07ff | (1 << 57));
        assert_eq!(cap.mqes(), 0x7ff);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert_eq!(cap.cqr(), 1);
        assert_eq!(cap.to(), 0x0f);
        assert_eq!(cap.timeout(), Duration::from_millis(7500));
        assert_eq!(cap.dstrd(), 0);
        assert_eq!(cap.mpsmin(), 0);
        assert_eq!(cap.mps_min_bytes(), 4096);
        assert_eq!(cap.mpsmax(), 4);
        assert_eq!(cap.cmbs(), 1);
    }

    #[test]
    fn cc_builders_set_only_their_field() {
        let cc = Cc(0)
            .with_en(1)
            .with_css(0)
            .with_mps(0)
            .with_iosqes(6)
            .with_iocqes(4);
        assert_eq!(
            cc.0, 0x0046_0001,
            "the value QEMU logs for a standard bring-up"
        );
        assert_eq!(cc.with_shn(SHN_NORMAL).shn(), 1);
        assert_eq!(cc.with_en(0).0, 0x0046_0000);
    }

    #[test]
    fn doorbells_follow_the_stride() {
        assert_eq!(sq_tail_doorbell(0, 0), 0x1000);
        assert_eq!(cq_head_doorbell(0, 0), 0x1004);
        assert_eq!(sq_tail_doorbell(1, 0), 0x1008);
        assert_eq!(cq_head_doorbell(1, 0), 0x100c);
        assert_eq!(sq_tail_doorbell(1, 2), 0x1000 + 2 * 16);
        assert_eq!(cq_head_doorbell(3, 1), 0x1000 + 7 * 8);
    }

    #[test]
    fn csts_and_aqa_and_vs_decode() {
        let csts = Csts(0b1011);
        assert_eq!((csts.rdy(), csts.cfs(), csts.shst()), (1, 1, 2));
        assert!(Csts(u32::MAX).is_all_ones());
        let aqa = Aqa(0).with_asqs(31).with_acqs(63);
        assert_eq!(aqa.0, (63 << 16) | 31);
        assert_eq!(Vs(0x0001_0400).to_string(), "1.4");
        assert_eq!(Vs(0x0002_0001).to_string(), "2.0.1");
        assert_eq!(Cmbsz((1 << 12) | (1 << 8)).size_bytes(), 64 * 1024);
    }
}
