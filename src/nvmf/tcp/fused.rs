//! Fused operations on an I/O queue (NVMe: FUSE 01b marks the first
//! command, 10b the second, adjacent in the queue): a Compare first and a
//! Write second on the same blocks become one bdev compare-and-write, so
//! that the write happens only when the compare matched, atomically
//! against every other writer (SPDK's `nvmf_ctrlr_process_io_fused_cmd`).
//! The first command waits in its slot, data received, for the second.

use super::conn::Conn;
use crate::bdev::{IoBuf, IoCompletion, IoData, IoStatus};
use crate::nvme::spec::status::generic;
use crate::nvmf::io::{self, IoKind};
use crate::nvmf::status::{sc, sct};
use crate::nvmf::Completion;

/// Generic status: Command Aborted due to Failed Fused Command.
pub const ABORTED_FAILED_FUSED: u8 = 0x09;
/// Generic status: Command Aborted due to Missing Fused Command.
pub const ABORTED_MISSING_FUSED: u8 = 0x0a;

/// FUSE values of Command Dword 0.
const FUSE_FIRST: u8 = 1;
const FUSE_SECOND: u8 = 2;

impl Conn {
    /// Takes I/O command `i` (decoded, its namespace's index in the slot)
    /// into the fused sequence when it is fused or a first command waits;
    /// true when it was handled here.
    pub(super) fn fused(&mut self, i: u16) -> bool {
        let fuse = self.slots[i as usize].sqe.fuse();
        let waiting = self.fused_first.take();
        match (fuse, waiting) {
            (0, None) => false,
            (0, Some(f)) => {
                // The second half never came: the first is aborted, this one runs.
                self.respond(f, Completion::generic(ABORTED_MISSING_FUSED));
                false
            }
            (FUSE_FIRST, prev) => {
                if let Some(f) = prev {
                    self.respond(f, Completion::generic(ABORTED_MISSING_FUSED));
                }
                match self.slots[i as usize].io {
                    Some((c, _)) if c.kind == IoKind::Compare => self.fused_first = Some(i),
                    _ => self.respond(i, Completion::invalid_field()),
                }
                true
            }
            (FUSE_SECOND, Some(f)) => {
                let (a, b) = (self.slots[f as usize].io, self.slots[i as usize].io);
                match (a, b) {
                    (Some((cmp, k1)), Some((wr, k2)))
                        if wr.kind == IoKind::Write
                            && k1 == k2
                            && cmp.slba == wr.slba
                            && cmp.nlb == wr.nlb =>
                    {
                        self.submit_caw(f, i, k1)
                    }
                    _ => {
                        self.respond(f, Completion::generic(ABORTED_MISSING_FUSED));
                        self.respond(i, Completion::invalid_field());
                    }
                }
                true
            }
            (FUSE_SECOND, None) => {
                self.respond(i, Completion::generic(ABORTED_MISSING_FUSED));
                true
            }
            (_, prev) => {
                if let Some(f) = prev {
                    self.respond(f, Completion::generic(ABORTED_MISSING_FUSED));
                }
                self.respond(i, Completion::invalid_field());
                true
            }
        }
    }

    /// Submits compare (slot `f`) and write (slot `i`) on namespace `k` as
    /// one compare-and-write; its completion comes to slot `i`.
    fn submit_caw(&mut self, f: u16, i: u16, k: usize) {
        let Some((cmd, _)) = self.slots[i as usize].io else {
            return;
        };
        for s in [f, i] {
            if self.slots[s as usize].ensure_buf(cmd.data_len).is_err() {
                return self.fail_pair(f, i, generic::INTERNAL_ERROR);
            }
        }
        let take = |s: &mut super::slot::Slot| s.buf.take().unwrap_or_else(|| IoBuf::new(0));
        let cmp = take(&mut self.slots[f as usize]);
        let wr = take(&mut self.slots[i as usize]);
        let Some(cb) = self.slots[i as usize].done.take() else {
            return self.fail_pair(f, i, generic::INTERNAL_ERROR);
        };
        let Some(n) = &self.ns[k] else {
            self.slots[i as usize].done = Some(cb);
            self.slots[f as usize].buf = Some(cmp);
            self.slots[i as usize].buf = Some(wr);
            return self.fail_pair(f, i, generic::INVALID_NAMESPACE_OR_FORMAT);
        };
        self.slots[i as usize].fused_first = Some(f);
        match n
            .desc
            .compare_and_write_blocks(&n.ch, cmp, wr, cmd.slba, cmd.nlb, cb)
        {
            Ok(_) => {
                self.inflight += 1;
                self.ns_io(k, true);
            }
            Err(rej) => {
                log::info!(
                    "nvmf/tcp: {}: compare-and-write refused by the bdev layer: {}",
                    self.peer(),
                    rej.error
                );
                let rej = *rej;
                self.slots[i as usize].fused_first = None;
                self.slots[i as usize].done = rej.cb;
                self.take_back_pair(f, i, rej.data);
                self.fail_pair(f, i, generic::INTERNAL_ERROR);
            }
        }
    }

    fn fail_pair(&mut self, f: u16, i: u16, status: u8) {
        self.respond(f, Completion::generic(status));
        self.respond(i, Completion::generic(ABORTED_FAILED_FUSED));
    }

    /// Puts a compare-and-write's two buffers back into their slots.
    fn take_back_pair(&mut self, f: u16, i: u16, data: IoData) {
        if let IoData::CompareWrite(b) = data {
            let [cmp, wr] = *b;
            for (slot, b) in [(f, cmp), (i, wr)] {
                if b.is_dma() {
                    self.slots[slot as usize].buf = Some(b);
                }
            }
        }
    }

    /// The compare-and-write of the pair (`f`, `i`) completed: the first
    /// gets the compare's status, the second success or Aborted due to
    /// Failed Fused Command.
    pub(super) fn fused_done(&mut self, f: u16, i: u16, c: IoCompletion) {
        self.take_back_pair(f, i, c.data);
        if self.is_closed() {
            self.release(f);
            return self.release(i);
        }
        match c.status {
            IoStatus::Success => {
                self.respond(f, Completion::ok(0));
                self.respond(i, Completion::ok(0));
            }
            IoStatus::Miscompare => {
                self.respond(f, Completion::error(sct::MEDIA, sc::COMPARE_FAILURE));
                self.respond(i, Completion::generic(ABORTED_FAILED_FUSED));
            }
            s => {
                self.respond(f, io::status_of(s));
                self.respond(i, Completion::generic(ABORTED_FAILED_FUSED));
            }
        }
    }
}
