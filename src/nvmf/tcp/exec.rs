//! A received command executed: Fabrics Connect binds the queue to a
//! controller, Property Get/Set and admin commands are answered at once,
//! I/O commands become bdev I/O on this thread's channel with the slot's
//! buffer as the data buffer; their completion sends the data and response.

use super::conn::{Conn, IoNs};
use super::slot::SlotState;
use crate::bdev::{self, IoBuf, IoCompletion, IoData, IoType, Submitted};
use crate::nvme::spec::status::generic;
use crate::nvme::spec::AdminOpcode;
use crate::nvme::tcp::fabrics::{FCTYPE_CONNECT, OPC_FABRICS};
use crate::nvmf::admin::{self, AdminOutcome};
use crate::nvmf::fabrics;
use crate::nvmf::io::{self, IoKind};
use crate::nvmf::status::{sc, sct};
use crate::nvmf::Completion;

impl Conn {
    /// Executes the command in slot `i` (its data, if any, has arrived).
    pub(super) fn execute(&mut self, i: u16) {
        self.slots[i as usize].state = SlotState::Exec;
        if self.slots[i as usize].aborted {
            return self.respond(i, Completion::generic(generic::ABORT_REQUESTED));
        }
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
            (None, FCTYPE_CONNECT) => {
                match fabrics::connect(&self.target, &sqe, s.data(s.recvd), &self.origin) {
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
                        self.stats.connected(q.qid == 0);
                        self.sqhd = 0;
                        self.queue = Some(q);
                        self.respond(i, c)
                    }
                    Err(c) => self.respond(i, c),
                }
            }
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
        if self.slots[i as usize].sqe.fuse() != 0 {
            // Fused admin commands are not supported (SPDK: Invalid Field).
            return self.respond(i, Completion::invalid_field());
        }
        if self.slots[i as usize].sqe.opc() == AdminOpcode::Abort as u8
            && q.ctrlr.subsystem().subtype() == crate::nvmf::SubsystemType::Nvme
            && (self.abort_aer(i) || self.abort_io(i))
        {
            return;
        }
        let s = &mut self.slots[i as usize];
        let len = s.xfer_len;
        let mut empty = [0u8; 0];
        let out = match s.buf.as_mut() {
            _ if len == 0 => &mut empty[..],
            Some(b) => match b.get_mut(..len) {
                Some(out) => out,
                None => return self.respond(i, Completion::generic(generic::INTERNAL_ERROR)),
            },
            None => return self.respond(i, Completion::generic(generic::INTERNAL_ERROR)),
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

    /// Abort (slot `i`) of a held Asynchronous Event Request of this
    /// admin queue (SQID 0 and its CID): the AER completes with Command
    /// Abort Requested and the Abort with Dword 0 bit 0 clear (aborted).
    /// False when the Abort names no held AER (an I/O queue's command
    /// goes to [`Conn::abort_io`]; anything else is answered "not
    /// aborted" by the admin layer).
    fn abort_aer(&mut self, i: u16) -> bool {
        let cdw10 = self.slots[i as usize].sqe.cdw10;
        let (sqid, cid) = (cdw10 as u16, (cdw10 >> 16) as u16);
        if sqid != 0 {
            return false;
        }
        let Some(k) = self
            .aers
            .iter()
            .position(|&a| self.slots[a as usize].sqe.cid() == cid)
        else {
            return false;
        };
        let aer = self.aers.remove(k);
        self.respond(aer, Completion::generic(generic::ABORT_REQUESTED));
        self.respond(i, Completion::ok(0));
        true
    }

    /// Completes a held AER when the controller has an event for it.
    pub(super) fn check_events(&mut self) {
        let Some(q) = &self.queue else { return };
        if q.qid != 0 || self.aers.is_empty() {
            return;
        }
        let ctrlr = q.ctrlr.clone();
        while !self.aers.is_empty() {
            let Some(dw0) = ctrlr.take_event() else { break };
            if let Some(i) = self.aers.pop() {
                self.respond(i, Completion::ok(dw0));
            }
        }
    }

    /// The namespace `nsid` as this queue uses it, opened on first use
    /// (in a closed entry's place: entries never move, slots name them
    /// by index).
    fn ns_index(&mut self, nsid: u32) -> Option<usize> {
        if let Some(k) = self
            .ns
            .iter()
            .position(|n| n.as_ref().is_some_and(|n| n.nsid == nsid))
        {
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
        let n = IoNs {
            nsid,
            desc,
            ch,
            block_size: b.block_size(),
            num_blocks: b.num_blocks(),
            // Computed at the first I/O.
            ana_gen: u64::MAX,
            ana_status: None,
            inflight: 0,
        };
        match self.ns.iter().position(Option::is_none) {
            Some(k) => {
                self.ns[k] = Some(n);
                Some(k)
            }
            None => {
                self.ns.push(Some(n));
                Some(self.ns.len() - 1)
            }
        }
    }

    /// Closes namespace entry `k` (its descriptor and channel go) when
    /// none of its bdev I/O is in flight; true when closed.
    fn close_ns(&mut self, k: usize, nqn: &str) -> bool {
        let Some(n) = &self.ns[k] else { return true };
        if n.inflight != 0 {
            return false;
        }
        log::info!(
            "nvmf/tcp: namespace {} of '{nqn}' removed: closing its bdev '{}'",
            n.nsid,
            n.desc.bdev().name()
        );
        self.ns[k] = None;
        true
    }

    /// Counts a bdev I/O of namespace entry `k` submitted (`+1`) or done (`-1`).
    pub(super) fn ns_io(&mut self, k: usize, started: bool) {
        if let Some(Some(n)) = self.ns.get_mut(k) {
            if started {
                n.inflight += 1;
            } else {
                n.inflight = n.inflight.saturating_sub(1);
            }
        }
    }

    /// Closes the namespaces this queue opened that the subsystem no
    /// longer has (removed, or replaced by another bdev), so that no queue
    /// keeps a removed namespace's bdev open: each once its own bdev I/O
    /// is done (the group's timer calls this again until then).
    pub(super) fn prune_namespaces(&mut self) {
        let Some(q) = &self.queue else { return };
        if q.qid == 0 || self.ns.is_empty() {
            return;
        }
        let subsys = q.ctrlr.subsystem().clone();
        let gen = subsys.ana_gen();
        if self.ns_gen == gen {
            return;
        }
        let mut all = true;
        for k in 0..self.ns.len() {
            let Some(n) = &self.ns[k] else { continue };
            let present = subsys.has_namespace_on(n.nsid, n.desc.bdev().name());
            if !present {
                all &= self.close_ns(k, subsys.nqn());
            }
        }
        if all {
            self.ns_gen = gen;
        }
    }

    /// What an I/O to namespace `k` gets before it reaches the bdev:
    /// Invalid Namespace once the namespace was removed (its bdev is
    /// closed by the group's timer), a path status when ANA makes it
    /// inaccessible. Re-read only when the subsystem's generation moved
    /// (one atomic load otherwise).
    fn ns_status(&mut self, k: usize) -> Option<Completion> {
        let invalid = Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT);
        let q = self.queue.as_ref()?;
        let subsys = q.ctrlr.subsystem().clone();
        let listen = q.ctrlr.listen_addr();
        let gen = subsys.ana_gen();
        let Some(n) = self.ns[k].as_mut() else {
            return Some(invalid);
        };
        if n.ana_gen != gen {
            let present = subsys.has_namespace_on(n.nsid, n.desc.bdev().name());
            if !present {
                // Gone: closed now if idle, so that a namespace added
                // again under this NSID is opened afresh.
                self.close_ns(k, subsys.nqn());
                return Some(invalid);
            }
            n.ana_status = subsys.ana_io_status(n.nsid, &listen);
            n.ana_gen = gen;
        }
        n.ana_status
    }

    fn io(&mut self, i: u16) {
        let sqe = self.slots[i as usize].sqe;
        let Some(k) = self.ns_index(sqe.nsid) else {
            return self.respond(i, Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT));
        };
        if let Some(c) = self.ns_status(k) {
            return self.respond(i, c);
        }
        let Some(n) = &self.ns[k] else {
            return self.respond(i, Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT));
        };
        let cmd = match io::decode(
            &sqe,
            n.block_size,
            n.num_blocks,
            self.slots[i as usize].xfer_len,
        ) {
            Ok(c) => c,
            Err(c) => return self.respond(i, c),
        };
        let flush = n.desc.bdev().io_type_supported(IoType::Flush);
        self.slots[i as usize].io = Some((cmd, k));
        if self.fused(i) {
            return;
        }
        match cmd.kind {
            IoKind::Nothing => self.respond(i, Completion::ok(0)),
            IoKind::Flush if !flush => self.respond(i, Completion::ok(0)),
            IoKind::Deallocate { .. } => self.next_dsm(i),
            _ => self.submit(i),
        }
    }

    /// Submits the slot's I/O (not Dataset Management).
    fn submit(&mut self, i: u16) {
        let s = &mut self.slots[i as usize];
        let Some((cmd, k)) = s.io else { return };
        let Some(n) = &self.ns[k] else {
            return self.respond(i, Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT));
        };
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
            self.ns_io(k, true);
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
        let Some(n) = &self.ns[k] else {
            return self.respond(i, Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT));
        };
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
            self.ns_io(k, true);
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
        if let Some((_, k)) = self.slots[i as usize].io {
            self.ns_io(k, false);
        }
        if let Some(f) = self.slots[i as usize].fused_first.take() {
            return self.fused_done(f, i, c);
        }
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
