//! Identify (admin opcode 06h): controller (CNS 01h), namespace (CNS 00h),
//! active namespace ID list (CNS 02h), namespace identification descriptor
//! list (CNS 03h). Byte offsets are those of the NVMe Base specification.

use super::admin::{ACL, AERL};
use super::execute::Outcome;
use super::logpage::ERROR_LOG_ENTRIES;
use super::worker::Worker;
use super::{Sqe, Status};

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

/// Writes an ASCII field padded with spaces.
fn put_str(b: &mut [u8], off: usize, len: usize, s: &str) {
    b[off..off + len].fill(b' ');
    put(b, off, &s.as_bytes()[..s.len().min(len)]);
}

/// A stable 64-bit identity for (serial, nsid): EUI-64 and NGUID derive from it.
fn ns_id_hash(serial: &str, nsid: u32) -> u64 {
    // FNV-1a: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in serial.bytes().chain(nsid.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Worker {
    pub(super) fn identify(&mut self, sqe: &Sqe) -> Outcome {
        let cns = sqe.cdw10 as u8;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.fill(0);
        let filled = match cns {
            0x00 => self.identify_namespace(sqe.nsid, &mut buf),
            0x01 => {
                self.identify_controller(&mut buf);
                Ok(())
            }
            0x02 => self.active_ns_list(sqe.nsid, &mut buf),
            0x03 => self.ns_descriptors(sqe.nsid, &mut buf),
            _ => Err(Status::INVALID_FIELD),
        };
        let r = filled.and_then(|()| self.copy_to_host(sqe, &buf, false));
        self.scratch = buf;
        match r {
            Ok(()) => Outcome::ok(0),
            Err(s) => Outcome::status(s),
        }
    }

    fn identify_controller(&self, b: &mut [u8]) {
        let cfg = &self.sh.cfg;
        put(b, 0, &cfg.pci_ids.0.to_le_bytes()); // VID
        put(b, 2, &cfg.pci_ids.0.to_le_bytes()); // SSVID
        put_str(b, 4, 20, &cfg.serial); // SN
        put_str(b, 24, 40, &cfg.model); // MN
        put_str(b, 64, 8, &cfg.firmware); // FR
        b[72] = 6; // RAB
        b[77] = cfg.mdts; // MDTS
        put(b, 80, &0x0001_0400u32.to_le_bytes()); // VER 1.4.0
        put(b, 92, &(1u32 << 8).to_le_bytes()); // OAES: namespace attribute notices
        b[111] = 1; // CNTRLTYPE: I/O controller
        let oacs: u16 = 1 << 1 | if cfg.shadow_doorbells { 1 << 8 } else { 0 }; // Format NVM, DBBC
        put(b, 256, &oacs.to_le_bytes()); // OACS
        b[258] = ACL; // ACL
        b[259] = AERL; // AERL
        b[260] = 0x03; // FRMW: slot 1 read-only, one slot
        b[261] = 1 << 2; // LPA: extended Get Log Page (NUMDU, offsets)
        b[262] = (ERROR_LOG_ENTRIES - 1) as u8; // ELPE
        put(b, 266, &343u16.to_le_bytes()); // WCTEMP (K)
        put(b, 268, &373u16.to_le_bytes()); // CCTEMP (K)
        let total: u64 = self
            .sh
            .namespaces
            .iter()
            .map(|n| n.lock().bytes.len() as u64)
            .sum();
        put(b, 280, &(total as u128).to_le_bytes()); // TNVMCAP
        put(b, 320, &1u16.to_le_bytes()); // KAS: 100 ms granularity
        b[512] = 0x66; // SQES: 64 bytes
        b[513] = 0x44; // CQES: 16 bytes
        put(b, 514, &cfg.mqes.saturating_add(1).to_le_bytes()); // MAXCMD
        let nn = self.sh.namespaces.last().map_or(0, |n| n.nsid);
        put(b, 516, &nn.to_le_bytes()); // NN
                                        // ONCS: Compare, Dataset Management, Write Zeroes.
        put(b, 520, &(1u16 | 1 << 2 | 1 << 3).to_le_bytes());
        b[525] = if cfg.volatile_write_cache { 0x07 } else { 0x00 }; // VWC (+ flush all NSIDs)
        let sgls: u32 = if cfg.sgl { 0x1 } else { 0 }; // SGLs supported, no alignment
        put(b, 536, &sgls.to_le_bytes()); // SGLS
        let nqn = format!("nqn.2024-01.io.spdk-io:emu:{}", cfg.serial);
        put(b, 768, &nqn.as_bytes()[..nqn.len().min(255)]); // SUBNQN
        put(b, 2048, &2500u16.to_le_bytes()); // PSD0 MP: 25 W
    }

    fn identify_namespace(&self, nsid: u32, b: &mut [u8]) -> Result<(), Status> {
        let nn = self.sh.namespaces.last().map_or(0, |n| n.nsid);
        if nsid == 0 || nsid > nn {
            return Err(Status::INVALID_NAMESPACE_OR_FORMAT);
        }
        // An inactive NSID within 1..=NN reads as all zeroes.
        let Some(ns) = self.sh.namespace(nsid) else {
            return Ok(());
        };
        let d = ns.lock();
        let blocks = d.blocks();
        put(b, 0, &blocks.to_le_bytes()); // NSZE
        put(b, 8, &blocks.to_le_bytes()); // NCAP
        put(b, 16, &blocks.to_le_bytes()); // NUSE
        b[25] = 1; // NLBAF: two formats (0's based)
        b[26] = if d.lba_shift == 9 { 0 } else { 1 }; // FLBAS
                                                      // DLFEAT: deallocated blocks read as zeroes; Write Zeroes may deallocate.
        b[33] = 0x01 | 1 << 3;
        let id = ns_id_hash(&self.sh.cfg.serial, nsid);
        put(b, 104, &id.to_be_bytes()); // NGUID, first half
        put(b, 112, &(!id).to_be_bytes()); // NGUID, second half
        put(b, 120, &id.to_be_bytes()); // EUI64
        let ms = self.sh.cfg.advertised_metadata as u32;
        put(b, 128, &(ms | 9u32 << 16 | 2 << 24).to_le_bytes()); // LBAF0: 512 B, good performance
        put(b, 132, &(ms | 12u32 << 16).to_le_bytes()); // LBAF1: 4096 B, best performance
        Ok(())
    }

    fn active_ns_list(&self, nsid: u32, b: &mut [u8]) -> Result<(), Status> {
        if nsid >= 0xffff_fffe {
            return Err(Status::INVALID_FIELD);
        }
        for (i, ns) in self
            .sh
            .namespaces
            .iter()
            .filter(|n| n.nsid > nsid && n.is_active())
            .take(1024)
            .enumerate()
        {
            put(b, i * 4, &ns.nsid.to_le_bytes());
        }
        Ok(())
    }

    fn ns_descriptors(&self, nsid: u32, b: &mut [u8]) -> Result<(), Status> {
        if self.sh.namespace(nsid).is_none() {
            return Err(Status::INVALID_NAMESPACE_OR_FORMAT);
        }
        let id = ns_id_hash(&self.sh.cfg.serial, nsid);
        // Each descriptor: NIDT, NIDL, 2 reserved bytes, NID.
        put(b, 0, &[0x01, 8, 0, 0]); // EUI64
        put(b, 4, &id.to_be_bytes());
        put(b, 12, &[0x02, 16, 0, 0]); // NGUID
        put(b, 16, &id.to_be_bytes());
        put(b, 24, &(!id).to_be_bytes());
        put(b, 32, &[0x04, 1, 0, 0, 0]); // CSI: NVM command set
        Ok(())
    }
}
