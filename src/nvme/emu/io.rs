//! NVM command set on I/O queues: Flush, Write, Read, Compare, Write Zeroes,
//! Dataset Management. Read/Write/Compare/Write Zeroes: SLBA in CDW11:CDW10,
//! NLB (0's based) in CDW12 15:0.

use super::execute::Outcome;
use super::stats::bump;
use super::worker::Worker;
use super::{Sqe, Status};

/// NVM command set opcodes.
pub mod opc {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Compare.
    pub const COMPARE: u8 = 0x05;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management.
    pub const DATASET_MANAGEMENT: u8 = 0x09;
}

/// Dataset Management CDW11 bit 2: Attribute – Deallocate.
const DSM_DEALLOCATE: u32 = 1 << 2;

fn done(r: Result<(), Status>) -> Outcome {
    match r {
        Ok(()) => Outcome::ok(0),
        Err(s) => Outcome::status(s),
    }
}

impl Worker {
    /// Executes an NVM command from I/O SQ `_sqid`.
    pub(super) fn nvm(&mut self, _sqid: u16, sqe: &Sqe) -> Outcome {
        if sqe.fuse() != 0 {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let op = sqe.opcode();
        if op == opc::FLUSH && sqe.nsid == u32::MAX && self.sh.cfg.volatile_write_cache {
            return Outcome::ok(0);
        }
        if self.sh.namespace(sqe.nsid).is_none() {
            return Outcome::status(Status::INVALID_NAMESPACE_OR_FORMAT);
        }
        match op {
            // RAM is the media: with or without a volatile write cache, nothing to flush.
            opc::FLUSH => Outcome::ok(0),
            opc::READ | opc::WRITE | opc::COMPARE => done(self.read_write(sqe)),
            opc::WRITE_ZEROES => done(self.write_zeroes(sqe)),
            opc::DATASET_MANAGEMENT => done(self.dataset_management(sqe)),
            _ => Outcome::status(Status::INVALID_OPCODE),
        }
    }

    fn read_write(&self, sqe: &Sqe) -> Result<(), Status> {
        let sh = &self.sh;
        let Some(ns) = sh.namespace(sqe.nsid) else {
            return Err(Status::INVALID_NAMESPACE_OR_FORMAT);
        };
        let mut d = ns.lock();
        let len = (sqe.nlb() << d.lba_shift) as usize;
        if sh.cfg.mdts != 0 && len > 4096usize << sh.cfg.mdts {
            return Err(Status::INVALID_FIELD);
        }
        let r = d
            .range(sqe.slba(), sqe.nlb())
            .ok_or(Status::LBA_OUT_OF_RANGE)?;
        let sgl = sh.cfg.sgl;
        match sqe.opcode() {
            super::io::opc::READ => {
                self.copy_to_host(sqe, &d.bytes[r], sgl)?;
                bump(&sh.stats.bytes_read, len as u64);
                bump(&sh.stats.host_read_commands, 1);
            }
            super::io::opc::WRITE => {
                self.copy_from_host(sqe, &mut d.bytes[r], sgl)?;
                bump(&sh.stats.bytes_written, len as u64);
                bump(&sh.stats.host_write_commands, 1);
            }
            _ => {
                let media = &d.bytes[r];
                let mut equal = true;
                self.for_each_seg(sqe, len, sgl, |s, off| {
                    equal = equal && s.equals(&media[off..off + s.len]);
                })?;
                bump(&sh.stats.bytes_read, len as u64);
                bump(&sh.stats.host_read_commands, 1);
                if !equal {
                    return Err(Status::COMPARE_FAILURE);
                }
            }
        }
        Ok(())
    }

    fn write_zeroes(&self, sqe: &Sqe) -> Result<(), Status> {
        let Some(ns) = self.sh.namespace(sqe.nsid) else {
            return Err(Status::INVALID_NAMESPACE_OR_FORMAT);
        };
        let mut d = ns.lock();
        let r = d
            .range(sqe.slba(), sqe.nlb())
            .ok_or(Status::LBA_OUT_OF_RANGE)?;
        d.bytes[r].fill(0);
        bump(&self.sh.stats.host_write_commands, 1);
        Ok(())
    }

    /// Dataset Management: CDW10 NR 7:0 (0's based number of ranges), CDW11
    /// attributes; each 16-byte range is Context Attributes (4), Length in
    /// logical blocks (4), Starting LBA (8). Deallocated blocks read as zeroes.
    fn dataset_management(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let nr = (sqe.cdw10 & 0xff) as usize + 1;
        let mut ranges = std::mem::take(&mut self.scratch);
        let r = self
            .copy_from_host(sqe, &mut ranges[..nr * 16], false)
            .and_then(|()| {
                let Some(ns) = self.sh.namespace(sqe.nsid) else {
                    return Err(Status::INVALID_NAMESPACE_OR_FORMAT);
                };
                let mut d = ns.lock();
                for rg in ranges[..nr * 16].chunks_exact(16) {
                    let nlb = u32::from_le_bytes([rg[4], rg[5], rg[6], rg[7]]) as u64;
                    let mut slba = [0u8; 8];
                    slba.copy_from_slice(&rg[8..16]);
                    let r = d
                        .range(u64::from_le_bytes(slba), nlb)
                        .ok_or(Status::LBA_OUT_OF_RANGE)?;
                    if sqe.cdw11 & DSM_DEALLOCATE != 0 {
                        d.bytes[r].fill(0);
                    }
                }
                Ok(())
            });
        self.scratch = ranges;
        r
    }
}
