//! The receive side of a connection: PDU headers validated by the shared
//! codec (a bad one ends the connection with a C2HTermReq naming the
//! field), in-capsule and H2C data streamed straight into the command's
//! buffer (read from the socket directly when nothing else is waiting),
//! data digests checked.

use super::bufs::BufGot;
use super::conn::{Conn, Payload, Phase, RecvState};
use super::slot::{Slot, SlotState};
use crate::nvme::spec::Sqe;
use crate::nvme::tcp::decode::{decode_header, header_frame_len, Expect, Header, Psh};
use crate::nvme::tcp::digest;
use crate::nvme::tcp::fabrics::{
    ADMIN_IN_CAPSULE_MAX, SGL_DATA_BLOCK_OFFSET, SGL_TRANSPORT_DATA_BLOCK,
};
use crate::nvme::tcp::pdu::{dgst, fes, Framing, PduType, PduTypeSet, DIGEST_LEN};
use crate::nvmf::status::sc;
use crate::nvmf::Completion;
use crate::sock::SockError;

const BEFORE_IC: PduTypeSet = PduTypeSet::of(&[PduType::IcReq]);
const READY: PduTypeSet =
    PduTypeSet::of(&[PduType::CapsuleCmd, PduType::H2CData, PduType::H2CTermReq]);
/// Largest header frame: a TermReq with its data.
const MAX_FRAME: usize = 152;

/// Transient Transport Error (generic status 22h): a data digest mismatch.
const TRANSIENT_TRANSPORT_ERROR: u8 = 0x22;

impl Conn {
    fn expect(&self) -> Expect {
        match self.phase {
            Phase::AwaitIcReq => Expect {
                allowed: BEFORE_IC,
                state: "before ICReq",
                framing: Framing::default(),
                max_data: 0,
            },
            _ => Expect {
                allowed: READY,
                state: "after ICResp",
                framing: self.recv_framing,
                max_data: self.maxh2cdata.max(self.in_capsule_limit() as u32),
            },
        }
    }

    /// Most in-capsule data a command may carry on this queue.
    fn in_capsule_limit(&self) -> usize {
        let icd = self.opts.in_capsule_data_size as usize;
        match &self.queue {
            Some(q) if q.qid != 0 => icd,
            _ => icd.max(ADMIN_IN_CAPSULE_MAX),
        }
    }

    /// Reads what arrived and handles every whole PDU; true when bytes came.
    pub(super) fn receive(&mut self) -> Result<bool, SockError> {
        let mut busy = false;
        // Bounded: at most a few reads per poll, so one busy peer cannot
        // starve the group's other connections. A read that got less than
        // the buffer's free room (or the payload's rest) found the socket
        // drained: no second read, which would only say EAGAIN. (When the
        // free room is split, this may stop one read early: the rest
        // waits for the next poll.)
        for _ in 0..4 {
            if let RecvState::Payload(p) = self.rstate {
                if self.rb.is_empty() && p.pad == 0 && p.left >= 4096 {
                    // Nothing buffered: read straight into the command's buffer.
                    let n = self.recv_direct(p)?;
                    busy |= n > 0;
                    if n < p.left {
                        return Ok(busy);
                    }
                    continue;
                }
            }
            let room = self.rb.capacity() - self.rb.len();
            let n = self.rb.fill(&self.sock)?;
            busy |= n > 0;
            self.process();
            if n == 0 || n < room || !matches!(self.phase, Phase::AwaitIcReq | Phase::Ready) {
                break;
            }
        }
        Ok(busy)
    }

    fn recv_direct(&mut self, mut p: Payload) -> Result<usize, SockError> {
        let Some(dst) = payload_dest(&mut self.slots, &p, p.left) else {
            self.no_payload_room(p);
            return Ok(0);
        };
        let n = self.sock.recv(dst)?;
        if n > 0 && self.recv_framing.ddgst {
            p.crc = digest::crc32c_append(p.crc, &dst[..n]);
        }
        p.at += n;
        p.left -= n;
        self.rstate = RecvState::Payload(p);
        if p.left == 0 && p.dig_left == 0 {
            self.payload_done(p);
        }
        Ok(n)
    }

    /// The payload's slot has no room for its data: a broken invariant
    /// of this connection, never the host's doing; the connection ends
    /// rather than write past the buffer.
    fn no_payload_room(&mut self, p: Payload) {
        log::error!(
            "nvmf/tcp: {}: slot {} cannot take {} bytes at {}; closing the connection",
            self.peer(),
            p.slot,
            p.left,
            p.at
        );
        self.rstate = RecvState::Header;
        self.terminate(fes::DATA_TRANSFER_OUT_OF_RANGE, 0, &[]);
    }

    /// Handles every whole PDU and payload byte in the receive buffer.
    fn process(&mut self) {
        while matches!(self.phase, Phase::AwaitIcReq | Phase::Ready) {
            match self.rstate {
                RecvState::Header => {
                    let e = self.expect();
                    let len = match header_frame_len(self.rb.peek(), &e) {
                        Ok(Some(len)) => len,
                        Ok(None) => return,
                        Err(err) => {
                            let head: Vec<u8> =
                                self.rb.peek().iter().take(MAX_FRAME).copied().collect();
                            let (f, i) = err.term_req().unwrap_or((fes::INVALID_HEADER_FIELD, 0));
                            log::info!("nvmf/tcp: {}: {err}", self.peer());
                            self.terminate(f, i, &head);
                            return;
                        }
                    };
                    let mut frame = [0u8; MAX_FRAME];
                    let n = len.min(MAX_FRAME);
                    match self.rb.next_frame(|_| Some(len)) {
                        Ok(Some(f)) => frame[..n].copy_from_slice(&f[..n]),
                        Ok(None) => return,
                        Err(_) => return self.terminate(fes::INVALID_HEADER_FIELD, 4, &[]),
                    }
                    match decode_header(&frame[..n], &e) {
                        Ok(h) => self.header(h, &frame[..n]),
                        Err(err) => {
                            log::info!("nvmf/tcp: {}: {err}", self.peer());
                            let (f, i) = err.term_req().unwrap_or((fes::INVALID_HEADER_FIELD, 0));
                            self.terminate(f, i, &frame[..n]);
                        }
                    }
                }
                RecvState::Payload(p) => {
                    if !self.payload(p) {
                        return;
                    }
                }
            }
        }
    }

    /// Moves buffered bytes into the payload's slot; true when it is complete.
    fn payload(&mut self, mut p: Payload) -> bool {
        if p.pad > 0 {
            let n = self.rb.take(p.pad).len();
            p.pad -= n;
        }
        if p.pad == 0 && p.left > 0 {
            let n = p.left.min(self.rb.len());
            let Some(dst) = payload_dest(&mut self.slots, &p, n) else {
                self.no_payload_room(p);
                return false;
            };
            dst.copy_from_slice(self.rb.take(n));
            if self.recv_framing.ddgst {
                p.crc = digest::crc32c_append(p.crc, dst);
            }
            p.at += n;
            p.left -= n;
        }
        if p.pad == 0 && p.left == 0 && p.dig_left > 0 {
            let src = self.rb.take(p.dig_left);
            let got = DIGEST_LEN - p.dig_left;
            p.dig[got..got + src.len()].copy_from_slice(src);
            p.dig_left -= src.len();
        }
        self.rstate = RecvState::Payload(p);
        if p.pad > 0 || p.left > 0 || p.dig_left > 0 {
            return false;
        }
        self.payload_done(p);
        true
    }

    fn payload_done(&mut self, p: Payload) {
        self.rstate = RecvState::Header;
        if self.recv_framing.ddgst && u32::from_le_bytes(p.dig) != p.crc {
            log::info!(
                "nvmf/tcp: {}: data digest mismatch on command {}",
                self.peer(),
                self.slots[p.slot as usize].sqe.cid()
            );
            // The command fails; H2CData still coming for it then names a
            // command not in flight and ends the connection.
            return self.respond(p.slot, Completion::generic(TRANSIENT_TRANSPORT_ERROR));
        }
        let s = &mut self.slots[p.slot as usize];
        s.recvd = p.at;
        if s.recvd >= s.xfer_len {
            self.execute(p.slot);
        }
    }

    fn payload_of(&self, slot: u16, h: &Header, at: usize, h2c: bool) -> Payload {
        Payload {
            slot,
            pad: h.pad,
            at,
            left: h.data_len,
            crc: 0,
            dig: [0; 4],
            dig_left: h.ddgst_len,
            h2c,
        }
    }

    /// Handles a validated header.
    fn header(&mut self, h: Header, frame: &[u8]) {
        match h.psh {
            Psh::IcReq(req) => {
                let want = req.dgst & (dgst::HDGST_ENABLE | dgst::DDGST_ENABLE);
                self.recv_framing = Framing {
                    hdgst: want & dgst::HDGST_ENABLE != 0,
                    ddgst: want & dgst::DDGST_ENABLE != 0,
                    pda: 0,
                };
                self.send_framing = Framing {
                    pda: req.hpda,
                    ..self.recv_framing
                };
                self.send_ic_resp(want);
                self.phase = Phase::Ready;
            }
            Psh::TermReq(t) => {
                log::info!(
                    "nvmf/tcp: {}: host terminated the connection: {} (FEI {:#x})",
                    self.peer(),
                    fes::name(t.fes),
                    t.fei
                );
                self.close();
            }
            Psh::CapsuleCmd(sqe) => self.capsule(sqe, &h, frame),
            Psh::Data(d) if h.pdu_type == PduType::H2CData => {
                // TTAG names the slot an R2T went out for (FEI: TTAG at
                // byte 10); CCCID must be its command's (a sequence error);
                // DATAO must continue where its data stands (out of range).
                let i = d.ttag;
                let Some(s) = self
                    .slots
                    .get(i as usize)
                    .filter(|s| s.state == SlotState::AwaitH2c)
                else {
                    return self.terminate(fes::INVALID_HEADER_FIELD, 10, frame);
                };
                if s.sqe.cid() != d.cccid {
                    return self.terminate(fes::PDU_SEQUENCE_ERROR, 0, frame);
                }
                if d.datao as usize != s.recvd {
                    return self.terminate(fes::DATA_TRANSFER_OUT_OF_RANGE, 0, frame);
                }
                if d.datao as usize + d.datal as usize > s.xfer_len {
                    return self.terminate(fes::DATA_TRANSFER_OUT_OF_RANGE, 0, frame);
                }
                if d.datal > self.maxh2cdata {
                    return self.terminate(fes::DATA_TRANSFER_LIMIT_EXCEEDED, 0, frame);
                }
                self.rstate = RecvState::Payload(self.payload_of(i, &h, d.datao as usize, true));
            }
            _ => self.terminate(fes::PDU_SEQUENCE_ERROR, 0, frame),
        }
    }

    /// A command capsule: take a slot, then receive its data, ask for it
    /// with an R2T, or execute it.
    fn capsule(&mut self, sqe: Sqe, h: &Header, frame: &[u8]) {
        let Some(i) = self.free.pop() else {
            log::info!(
                "nvmf/tcp: {}: more commands than the queue holds",
                self.peer()
            );
            return self.terminate(fes::PDU_SEQUENCE_ERROR, 0, frame);
        };
        let max_io = self.opts.max_io_size as usize;
        let sgl_len = sqe.prp2 as u32 as usize;
        let sgl_id = (sqe.prp2 >> 56) as u8;
        let icd_limit = self.in_capsule_limit();
        if h.data_len > 0 {
            // In-capsule data is named by a Data Block (Offset) SGL at
            // offset 0 of exactly its length; anything else ends the
            // connection (SPDK's rules; FEI: the SGL at byte 32, PLEN).
            let fault = if sgl_id != SGL_DATA_BLOCK_OFFSET || sqe.prp1 != 0 {
                Some((fes::UNSUPPORTED_PARAMETER, 32))
            } else if sgl_len != h.data_len {
                Some((fes::INVALID_HEADER_FIELD, 4))
            } else {
                None
            };
            if let Some((f, fei)) = fault {
                log::info!(
                    "nvmf/tcp: {}: in-capsule data of {} bytes under SGL {sgl_id:#x} of {sgl_len} \
                     bytes at {:#x}",
                    self.peer(),
                    h.data_len,
                    sqe.prp1
                );
                self.free.push(i);
                return self.terminate(f, fei, frame);
            }
        }
        let s = &mut self.slots[i as usize];
        s.sqe = sqe;
        s.recvd = 0;
        s.dsm_next = 0;
        s.io = None;
        s.aborted = false;
        if h.data_len > 0 {
            if h.data_len > icd_limit {
                self.free.push(i);
                return self.terminate(fes::DATA_TRANSFER_LIMIT_EXCEEDED, 0, frame);
            }
            s.xfer_len = h.data_len;
            s.state = SlotState::InCapsule;
            if s.ensure_buf(h.data_len).is_err() {
                self.free.push(i);
                return self.terminate(fes::DATA_TRANSFER_LIMIT_EXCEEDED, 0, frame);
            }
            self.rstate = RecvState::Payload(self.payload_of(i, h, 0, false));
            return;
        }
        s.xfer_len = if sqe.psdt() == 0 { 0 } else { sgl_len };
        s.state = SlotState::Exec;
        let len = s.xfer_len;
        if len > max_io.max(ADMIN_IN_CAPSULE_MAX) {
            return self.respond(i, Completion::generic(sc::DATA_SGL_LENGTH_INVALID));
        }
        if len > 0 && host_to_controller(&sqe) && sgl_id != SGL_TRANSPORT_DATA_BLOCK {
            return self.respond(i, Completion::generic(sc::SGL_DESCRIPTOR_TYPE_INVALID));
        }
        if len > 0 {
            match self.data_buf(i, len) {
                BufGot::Ready => {}
                BufGot::Wait => return,
                BufGot::Failed => {
                    return self.respond(
                        i,
                        Completion::generic(crate::nvme::spec::status::generic::INTERNAL_ERROR),
                    )
                }
            }
        }
        self.have_buffer(i);
    }

    /// Slot `i` has its data buffer: ask the host for the data with an
    /// R2T, or execute the command.
    pub(super) fn have_buffer(&mut self, i: u16) {
        let s = &mut self.slots[i as usize];
        if s.xfer_len > 0 && host_to_controller(&s.sqe) {
            s.state = SlotState::AwaitH2c;
            return self.send_r2t(i);
        }
        self.execute(i);
    }
}

/// The next `n` bytes of payload `p`'s slot buffer (`None` when the slot
/// has no buffer that long).
fn payload_dest<'a>(slots: &'a mut [Slot], p: &Payload, n: usize) -> Option<&'a mut [u8]> {
    let buf = slots.get_mut(p.slot as usize)?.buf.as_mut()?;
    buf.get_mut(p.at..p.at.checked_add(n)?)
}

/// Whether the command moves data from host to controller (the opcode's
/// low bits, or the Fabrics command type's).
fn host_to_controller(sqe: &Sqe) -> bool {
    let code = if sqe.opc() == crate::nvme::tcp::fabrics::OPC_FABRICS {
        sqe.nsid as u8
    } else {
        sqe.opc()
    };
    code & 1 != 0
}
