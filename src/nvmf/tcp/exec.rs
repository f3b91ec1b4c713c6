//! A received command executed: Fabrics Connect binds the queue to a
//! controller, Property Get/Set and admin commands are answered at once,
//! I/O commands become bdev I/O on this thread's channel with the slot's
//! buffer as the data buffer; their completion sends the data and response.

use super::conn::{Conn, IoNs};
use super::slot::SlotState;
use crate::bdev::{self, IoBuf, IoCompletion, IoData, IoType, Submitted};
use crate::nvme::spec::status::generic;
use crate::nvme::tcp::fabrics::{FCTYPE_CONNECT, OPC_FABRICS};
use crate::nvmf::admin::{self, AdminOutcome};
use crate::nvmf::fabrics;
use crate::nvmf::io::{self, IoKind};
use crate::nvmf::status::{sc, sct};
use crate::nvmf::Completion;

/// Async event completion: type Notice (2), Namespace Attribute Changed
/// (info 0), log page Changed Namespace List (04h).
const AEN_NS_CHANGED: u32 = 0x02 | 0x04 << 16;

impl Conn {
    /// Executes the command in slot `i` (its data, if any, has arrived).
    pub(super) fn execute(&mut self, i: u16) {
        self.slots[i as usize].state = SlotState::Exec;
        let sqe = self.slots[i as usize].sqe;
        if sqe.opc() == OPC_FABRICS {
            return self.fabrics(i);
        }
        let Some(q) = &self.queue else {
            return self.respond(i, Completion::generic(sc::COMMAND_SEQUENCE_ERROR));
        };
        if q.qid == 0 {
            return self.admin(i);
        }
        if q.ctrlr.is_failed() {
            return self.respond(i, Completion::generic(generic::ABORTED_SQ_DELETION));
        }
        self.io(i);
    }

    fn fabrics(&mut self, i: u16) {
        let s = &self.slots[i as usize];
        let sqe = s.sqe;
        match (&self.queue, fabrics::fctype(&sqe)) {
            (None, FCTYPE_CONNECT) => match fabrics::connect(&self.target, &sqe, s.data(s.recvd)) {
                Ok(q) => {
                    log::info!(
                        "nvmf/tcp: {}: {} queue {} of controller {} on '{}' for '{}'",
                        self.peer(),
                        if q.qid == 0 { "admin" } else { "I/O" },
                        q.qid,
                        q.ctrlr.cntlid(),
                        q.ctrlr.subsystem().nqn(),
                        q.ctrlr.hostnqn()
                    );
                    let c = Completion::ok(q.ctrlr.cntlid() as u32);
                    self.sqhd = 0;
                    self.queue = Some(q);
                    self.respond(i, c)
                }
                Err(c) => self.respond(i, c),
            },
            (None, _) => self.respond(i, Completion::generic(sc::COMMAND_SEQUENCE_ERROR)),
            (Some(q), _) if q.qid == 0 => {
                let c = fabrics::property(&q.ctrlr, &sqe);
                self.respond(i, c)
            }
            (Some(_), _) => self.respond(i, Completion::invalid_opcode()),
        }
    }

    fn admin(&mut self, i: u16) {
        let Some(q) = self.queue.clone() else { return };
        if !q.ctrlr.is_enabled() {
            return self.respond(i, Completion::generic(sc::COMMAND_SEQUENCE_ERROR));
        }
        let s = &mut self.slots[i as usize];
        let len = s.xfer_len;
        let mut empty = [0u8; 0];
        let out = match s.buf.as_mut() {
            Some(b) if len > 0 => &mut b[..len],
            _ => &mut empty[..],
        };
        match admin::execute(&self.target, &q.ctrlr, &s.sqe, out) {
            AdminOutcome::Done(c, n) if n > 0 && c.is_success() => self.send_data(i, n, c),
            AdminOutcome::Done(c, _) => self.respond(i, c),
            AdminOutcome::Aer => {
                if self.aers.len() >= crate::nvmf::ctrlr::MAX_AERS {
                    return self.respond(
                        i,
                        Completion::error(sct::COMMAND_SPECIFIC, sc::AER_LIMIT_EXCEEDED),
                    );
                }
                self.slots[i as usize].state = SlotState::Aer;
                self.aers.push(i);
            }
        }
    }

    /// Completes a held AER when the controller has an event for it.
    pub(super) fn check_events(&mut self) {
        let Some(q) = &self.queue else { return };
        if q.qid != 0 || self.aers.is_empty() || !q.ctrlr.take_ns_event() {
            return;
        }
        if let Some(i) = self.aers.pop() {
            self.respond(i, Completion::ok(AEN_NS_CHANGED));
        }
    }

    /// The namespace `nsid` as this queue uses it, opened on first use.
    fn ns_index(&mut self, nsid: u32) -> Option<usize> {
        if let Some(k) = self.ns.iter().position(|n| n.nsid == nsid) {
            return Some(k);
        }
        let q = self.queue.as_ref()?;
        let cfg = q.ctrlr.subsystem().namespace(nsid)?;
        let desc = bdev::open(&cfg.bdev_name, true)
            .map_err(|e| log::warn!("nvmf/tcp: namespace {nsid}: {e}"))
            .ok()?;
        let ch = desc
            .get_io_channel()
            .map_err(|e| log::warn!("nvmf/tcp: namespace {nsid}: {e}"))
            .ok()?;
        let b = desc.bdev().clone();
        self.ns.push(IoNs {
            nsid,
            desc,
            ch,
            block_size: b.block_size(),
            num_blocks: b.num_blocks(),
        });
        Some(self.ns.len() - 1)
    }

    fn io(&mut self, i: u16) {
        let sqe = self.slots[i as usize].sqe;
        let Some(k) = self.ns_index(sqe.nsid) else {
            return self.respond(i, Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT));
        };
        let n = &self.ns[k];
        let cmd = match io::decode(
            &sqe,
            n.block_size,
            n.num_blocks,
            self.slots[i as usize].xfer_len,
        ) {
            Ok(c) => c,
            Err(c) => return self.respond(i, c),
        };
        self.slots[i as usize].io = Some((cmd, k));
        match cmd.kind {
            IoKind::Nothing => self.respond(i, Completion::ok(0)),
            IoKind::Flush if !n.desc.bdev().io_type_supported(IoType::Flush) => {
                self.respond(i, Completion::ok(0))
            }
            IoKind::Deallocate { .. } => self.next_dsm(i),
            _ => self.submit(i),
        }
    }

    /// Submits the slot's I/O (not Dataset Management).
    fn submit(&mut self, i: u16) {
        let s = &mut self.slots[i as usize];
        let Some((cmd, k)) = s.io else { return };
        let n = &self.ns[k];
        if cmd.data_len > 0 && s.ensure_buf(cmd.data_len).is_err() {
            return self.respond(i, Completion::generic(generic::INTERNAL_ERROR));
        }
        let Some(cb) = s.done.take() else {
            return self.respond(i, Completion::generic(generic::INTERNAL_ERROR));
        };
        let buf = |s: &mut super::slot::Slot| s.buf.take().unwrap_or_else(|| IoBuf::new(0));
        let (ch, d) = (&n.ch, &n.desc);
        let r: Submitted = match cmd.kind {
            IoKind::Read => d.read_blocks(ch, buf(s), cmd.slba, cmd.nlb, cb),
            IoKind::Write => d.write_blocks(ch, buf(s), cmd.slba, cmd.nlb, cb),
            IoKind::Compare => d.compare_blocks(ch, buf(s), cmd.slba, cmd.nlb, cb),
            IoKind::Flush => d.flush_blocks(ch, 0, cmd.nlb, cb),
            IoKind::WriteZeroes => d.write_zeroes_blocks(ch, cmd.slba, cmd.nlb, cb),
            IoKind::Deallocate { .. } | IoKind::Nothing => return,
        };
        if r.is_ok() {
            self.inflight += 1;
        }
        if let Err(rej) = r {
            log::info!(
                "nvmf/tcp: {}: I/O refused by the bdev layer: {}",
                self.peer(),
                rej.error
            );
            let rej = *rej;
            self.take_back(i, rej.data);
            self.slots[i as usize].done = rej.cb;
            let c = match rej.error {
                bdev::BdevError::OutOfRange { .. } => {
                    Completion::generic(generic::LBA_OUT_OF_RANGE)
                }
                _ => Completion::generic(generic::INTERNAL_ERROR),
            };
            self.respond(i, c);
        }
    }

    /// Deallocates the next Dataset Management range, or completes the command.
    fn next_dsm(&mut self, i: u16) {
        let s = &mut self.slots[i as usize];
        let Some((cmd, k)) = s.io else { return };
        let IoKind::Deallocate { ranges } = cmd.kind else {
            return;
        };
        let n = &self.ns[k];
        while s.dsm_next < ranges {
            let r = io::dsm_range(s.data(cmd.data_len), s.dsm_next as usize);
            s.dsm_next += 1;
            let Some((slba, nlb)) = r else { break };
            if nlb == 0 {
                continue;
            }
            if slba.checked_add(nlb).map_or(true, |e| e > n.num_blocks) {
                return self.respond(i, Completion::generic(generic::LBA_OUT_OF_RANGE));
            }
            if !n.desc.bdev().io_type_supported(IoType::Unmap) {
                continue;
            }
            let Some(cb) = s.done.take() else { break };
            if let Err(rej) = n.desc.unmap_blocks(&n.ch, slba, nlb, cb) {
                let rej = *rej;
                self.slots[i as usize].done = rej.cb;
                return self.respond(i, Completion::generic(generic::INTERNAL_ERROR));
            }
            self.inflight += 1;
            return;
        }
        self.respond(i, Completion::ok(0));
    }

    /// Puts an I/O's data buffer back into its slot.
    fn take_back(&mut self, i: u16, data: IoData) {
        if let Some(b) = data.into_buf() {
            if b.is_dma() {
                self.slots[i as usize].buf = Some(b);
            }
        }
    }

    /// A bdev I/O of slot `i` completed.
    pub(crate) fn io_done(&mut self, i: u16, c: IoCompletion) {
        self.inflight -= 1;
        self.take_back(i, c.data);
        if self.is_closed() {
            return self.release(i);
        }
        let Some((cmd, _)) = self.slots[i as usize].io else {
            return self.release(i);
        };
        let status = io::status_of(c.status);
        match cmd.kind {
            IoKind::Deallocate { .. } if status.is_success() => self.next_dsm(i),
            IoKind::Read if status.is_success() => self.send_data(i, cmd.data_len, status),
            _ => self.respond(i, status),
        }
    }
}
