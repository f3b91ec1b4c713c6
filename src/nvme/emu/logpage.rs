//! Get Log Page (admin opcode 02h): Error Information (01h), SMART / Health
//! Information (02h), Firmware Slot Information (03h), Changed Namespace
//! List (04h). CDW10: LID 7:0, RAE 15, NUMDL 31:16; CDW11: NUMDU 15:0;
//! CDW12/13: log page offset (bytes).

use std::sync::atomic::Ordering;

use super::events::{LOG_CHANGED_NS, LOG_ERROR, LOG_FIRMWARE_SLOT, LOG_SMART};
use super::execute::Outcome;
use super::worker::Worker;
use super::{Sqe, Status};

/// Entries kept in the Error Information log (ELPE + 1).
pub const ERROR_LOG_ENTRIES: usize = 64;

#[derive(Debug, Clone, Copy, Default)]
struct ErrorEntry {
    count: u64,
    sqid: u16,
    cid: u16,
    status: u16,
}

/// A ring of the most recent command errors.
pub(super) struct ErrorLog {
    entries: [ErrorEntry; ERROR_LOG_ENTRIES],
    count: u64,
}

impl Default for ErrorLog {
    fn default() -> Self {
        Self {
            entries: [ErrorEntry::default(); ERROR_LOG_ENTRIES],
            count: 0,
        }
    }
}

impl ErrorLog {
    /// Records an error completion.
    pub fn record(&mut self, sqid: u16, cid: u16, status: Status) {
        self.count += 1;
        self.entries[(self.count as usize - 1) % ERROR_LOG_ENTRIES] = ErrorEntry {
            count: self.count,
            sqid,
            cid,
            status: status.to_status_field(),
        };
    }

    /// Writes the log (newest first, 64 bytes per entry).
    fn fill(&self, b: &mut [u8]) {
        let n = (self.count as usize).min(ERROR_LOG_ENTRIES);
        for i in 0..n {
            let e = &self.entries[(self.count as usize - 1 - i) % ERROR_LOG_ENTRIES];
            let d = &mut b[i * 64..i * 64 + 64];
            d[0..8].copy_from_slice(&e.count.to_le_bytes());
            d[8..10].copy_from_slice(&e.sqid.to_le_bytes());
            d[10..12].copy_from_slice(&e.cid.to_le_bytes());
            d[12..14].copy_from_slice(&e.status.to_le_bytes());
            d[14..16].copy_from_slice(&0xffffu16.to_le_bytes()); // parameter location: none
        }
    }
}

impl Worker {
    pub(super) fn get_log_page(&mut self, sqe: &Sqe) -> Outcome {
        let lid = sqe.cdw10 as u8;
        let rae = sqe.cdw10 & 1 << 15 != 0;
        let numd = ((sqe.cdw11 & 0xffff) << 16 | sqe.cdw10 >> 16) as usize + 1;
        let len = numd * 4;
        let offset = sqe.cdw12 as u64 | (sqe.cdw13 as u64) << 32;
        let size = match lid {
            LOG_ERROR => ERROR_LOG_ENTRIES * 64,
            LOG_SMART | LOG_FIRMWARE_SLOT => 512,
            LOG_CHANGED_NS => 4096,
            _ => return Outcome::status(Status::INVALID_LOG_PAGE),
        };
        if offset % 4 != 0 || offset >= size as u64 || len > self.scratch.len() {
            return Outcome::status(Status::INVALID_FIELD);
        }
        let mut page = std::mem::take(&mut self.scratch);
        page.fill(0);
        match lid {
            LOG_ERROR => self.errlog.fill(&mut page),
            LOG_SMART => self.fill_smart(&mut page),
            LOG_FIRMWARE_SLOT => {
                page[0] = 0x01; // AFI: slot 1 active
                let fw = self.sh.cfg.firmware.as_bytes();
                page[8..16].fill(b' ');
                page[8..8 + fw.len()].copy_from_slice(fw); // FRS1
            }
            _ => {
                for (i, nsid) in self.changed_ns.iter().enumerate() {
                    page[i * 4..i * 4 + 4].copy_from_slice(&nsid.to_le_bytes());
                }
                if !rae {
                    self.changed_ns.clear();
                }
            }
        }
        // Bytes past the end of the log read as zero.
        let start = offset as usize;
        page.copy_within(start..size, 0);
        page[size - start..].fill(0);
        let r = self.copy_to_host(sqe, &page[..len], false);
        self.scratch = page;
        if r.is_ok() && !rae {
            // Reading the log page re-arms its event type (RAE = 0).
            let ty = match lid {
                LOG_ERROR => 0,
                LOG_SMART => 1,
                _ => 2,
            };
            self.event_mask &= !(1 << ty);
        }
        match r {
            Ok(()) => Outcome::ok(0),
            Err(s) => Outcome::status(s),
        }
    }

    fn fill_smart(&self, b: &mut [u8]) {
        let st = &self.sh.stats;
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as u128;
        b[0] = self.sh.events.critical_warning.load(Ordering::Acquire); // Critical Warning
        b[1..3].copy_from_slice(&310u16.to_le_bytes()); // Composite Temperature (K)
        b[3] = 100; // Available Spare
        b[4] = 10; // Available Spare Threshold
                   // Data Units Read / Written: thousands of 512-byte units, rounded up.
        let units = |bytes: u128| (bytes / 512).div_ceil(1000);
        b[32..48].copy_from_slice(&units(get(&st.bytes_read)).to_le_bytes());
        b[48..64].copy_from_slice(&units(get(&st.bytes_written)).to_le_bytes());
        b[64..80].copy_from_slice(&get(&st.host_read_commands).to_le_bytes());
        b[80..96].copy_from_slice(&get(&st.host_write_commands).to_le_bytes());
        b[112..128].copy_from_slice(&1u128.to_le_bytes()); // Power Cycles
        b[176..192].copy_from_slice(&(self.errlog.count as u128).to_le_bytes());
        // Error log entries
    }
}
