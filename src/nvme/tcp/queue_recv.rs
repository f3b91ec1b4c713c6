//! The receive side of an NVMe/TCP queue: one read per round from the
//! socket, then every whole PDU in it: CapsuleResp completes its command,
//! C2HData is copied into the command's buffer as it arrives (checked
//! against the command: in flight, a read, in order, within its length;
//! digest verified), R2T queues the H2CData asked for, C2HTermReq ends the
//! connection. Anything else ends it with an H2CTermReq naming the fault.
//! Where C2H data lands in the command's buffers is `recv_data.rs`.

use super::decode::{decode_header, header_frame_len, Expect, Header, Psh};
use super::digest;
use super::encode::encode_term_req;
use super::error::{PduError, TcpError};
use super::pdu::*;
use super::queue::{CommandBuffers, TcpQueue};
use super::recv_data::{copy_into, DIRECT_MIN};
use crate::nvme::spec::Cqe;

/// Where the receiver is within the byte stream.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rx {
    /// At the start of a PDU.
    Header,
    /// Skipping padding before C2H data.
    Pad(usize, DataRx),
    /// Copying C2H data.
    Data(DataRx),
    /// Waiting for the data digest.
    Digest(DataRx),
}

/// The C2H data being received.
#[derive(Debug, Clone, Copy)]
pub(super) struct DataRx {
    pub(super) cid: u16,
    /// Offset in the command's data of the next byte.
    pub(super) off: u32,
    /// Bytes of this PDU still to come.
    pub(super) left: u32,
    /// CRC32C of the data so far (data digests on).
    pub(super) crc: u32,
    /// SUCCESS flag: the command completes with this PDU.
    pub(super) success: bool,
}

/// Rounds of read-then-parse per poll (bounded: a busy peer cannot keep
/// the owner in one poll for ever).
const READS_PER_POLL: usize = 4;

/// Bytes from a C2HData PDU's start to its data at the least PDO the
/// framing allows: its header, header digest and padding.
fn c2h_data_head(f: Framing) -> usize {
    let head = DATA_HLEN + if f.hdgst { DIGEST_LEN } else { 0 };
    let align = pda_bytes(f.pda);
    head.div_ceil(align) * align
}

/// Status Transient Transport Error (generic status 0x22), in a CQE's status field.
const TRANSIENT_TRANSPORT_ERROR: u16 = 0x22 << 1;

impl TcpQueue {
    /// Sends what is queued, reads what arrived and handles every whole
    /// PDU; each completed command is handed to `on_cqe`. Returns how many
    /// completed. An error means the connection failed: the commands still
    /// active will never complete here (the caller fails them).
    pub fn poll<B, F>(&mut self, bufs: &mut B, mut on_cqe: F) -> Result<usize, TcpError>
    where
        B: CommandBuffers + ?Sized,
        F: FnMut(Cqe),
    {
        if self.failed {
            return Err(TcpError::Failed(self.peer()));
        }
        self.flush(&*bufs)?;
        let mut n = 0;
        for _ in 0..READS_PER_POLL {
            let direct =
                self.rx.is_empty() && matches!(self.rx_state, Rx::Data(d) if d.left >= DIRECT_MIN);
            // After a large C2HData, read one header first (more bytes
            // would carry the next payload into the buffer, to be copied).
            let max = if self.big_c2h && self.rx.is_empty() && matches!(self.rx_state, Rx::Header) {
                c2h_data_head(self.recv_framing)
            } else {
                usize::MAX
            };
            let room = self.rx.room().min(max);
            let got = if direct {
                // `process` reads the payload into its buffer itself.
                0
            } else {
                match self.rx.fill_max(&self.sock, max) {
                    Ok(g) => g,
                    Err(e) => return Err(self.fail(e.into())),
                }
            };
            let before = self.direct_bytes;
            n += self.process(bufs, &mut on_cqe)?;
            // Nothing read, or a short read (the socket is drained): no
            // second read, whose EAGAIN would only delay sending the
            // commands the completions just handed in.
            if (got == 0 || got < room) && self.direct_bytes == before {
                break;
            }
        }
        self.flush(&*bufs)?;
        Ok(n)
    }

    /// Handles what the receive buffer holds.
    fn process<B, F>(&mut self, bufs: &mut B, on_cqe: &mut F) -> Result<usize, TcpError>
    where
        B: CommandBuffers + ?Sized,
        F: FnMut(Cqe),
    {
        let mut completed = 0;
        loop {
            match self.rx_state {
                Rx::Header => {
                    let e = self.expect();
                    let Some(h) = self.next_header(&e)? else {
                        return Ok(completed);
                    };
                    match h.psh {
                        Psh::CapsuleResp(cqe) => {
                            let cid = cqe.cid;
                            let Some(c) = self.cmds.get_mut(cid as usize).filter(|c| c.active)
                            else {
                                return Err(self.bad_peer(format!(
                                    "CapsuleResp for command {cid}, which is not in flight"
                                )));
                            };
                            c.active = false;
                            // The response of anything but a large read:
                            // small PDUs follow, read them many at a time.
                            let small = c.write || c.len < DIRECT_MIN;
                            let mut cqe = cqe;
                            if c.digest_error && cqe.status >> 1 == 0 {
                                cqe.status = TRANSIENT_TRANSPORT_ERROR;
                            }
                            if small {
                                self.big_c2h = false;
                            }
                            completed += 1;
                            on_cqe(cqe);
                        }
                        Psh::Data(d) => {
                            let c = self.cmds.get(d.cccid as usize).copied().unwrap_or_default();
                            if !c.active || c.write {
                                return Err(self.bad_peer(format!(
                                    "C2HData for command {}, which is not a read in flight",
                                    d.cccid
                                )));
                            }
                            if d.datao != c.done || d.datao as u64 + d.datal as u64 > c.len as u64 {
                                return Err(self.bad_peer(format!(
                                    "C2HData for command {} at offset {} length {}: expected \
                                     offset {} within its {} bytes",
                                    d.cccid, d.datao, d.datal, c.done, c.len
                                )));
                            }
                            self.big_c2h = d.datal >= DIRECT_MIN;
                            let success = h.ch.flags & flags::SUCCESS != 0;
                            if success && d.datao + d.datal != c.len {
                                return Err(self.bad_peer(format!(
                                    "C2HData with SUCCESS for command {} ends at {} of {} bytes",
                                    d.cccid,
                                    d.datao + d.datal,
                                    c.len
                                )));
                            }
                            let rx = DataRx {
                                cid: d.cccid,
                                off: d.datao,
                                left: d.datal,
                                crc: 0,
                                success,
                            };
                            self.rx_state = Rx::Pad(h.pad, rx);
                        }
                        Psh::R2t(r) => {
                            let c = self.cmds.get(r.cccid as usize).copied().unwrap_or_default();
                            if !c.active || !c.write {
                                return Err(self.bad_peer(format!(
                                    "R2T for command {}, which is not a write in flight",
                                    r.cccid
                                )));
                            }
                            if r.r2to != c.done || r.r2to as u64 + r.r2tl as u64 > c.len as u64 {
                                return Err(self.bad_peer(format!(
                                    "R2T for command {} asks for {} bytes at {}: expected \
                                     offset {} within its {} bytes",
                                    r.cccid, r.r2tl, r.r2to, c.done, c.len
                                )));
                            }
                            self.cmds[r.cccid as usize].done += r.r2tl;
                            if let Err(x) = self.queue_h2c(r.cccid, r.ttag, r.r2to, r.r2tl, &*bufs)
                            {
                                return Err(self.fail(x));
                            }
                        }
                        Psh::TermReq(t) => {
                            let error = PduError::Terminated {
                                fes: t.fes,
                                fei: t.fei,
                            };
                            let addr = self.peer();
                            return Err(self.fail(TcpError::Pdu { addr, error }));
                        }
                        Psh::IcReq(_) | Psh::IcResp(_) | Psh::CapsuleCmd(_) => {
                            // Not in the allowed set: decode refused them already.
                            return Err(self.bad_peer("unexpected PDU".into()));
                        }
                    }
                }
                Rx::Pad(left, rx) => {
                    let n = self.rx.take(left).len();
                    if n < left {
                        self.rx_state = Rx::Pad(left - n, rx);
                        return Ok(completed);
                    }
                    self.rx_state = Rx::Data(rx);
                }
                Rx::Data(mut rx) => {
                    if self.rx.is_empty() && rx.left >= DIRECT_MIN {
                        let n = self.recv_direct(bufs, &mut rx)?;
                        if n == 0 {
                            self.rx_state = Rx::Data(rx);
                            return Ok(completed);
                        }
                        if rx.left > 0 {
                            self.rx_state = Rx::Data(rx);
                        } else if self.recv_framing.ddgst {
                            self.rx_state = Rx::Digest(rx);
                        } else {
                            completed += self.data_done(rx, on_cqe);
                        }
                        continue;
                    }
                    let chunk = self.rx.take(rx.left as usize);
                    if chunk.is_empty() {
                        return Ok(completed);
                    }
                    if self.recv_framing.ddgst {
                        rx.crc = digest::crc32c_append(rx.crc, chunk);
                    }
                    if !copy_into(bufs, rx.cid, rx.off as usize, chunk) {
                        let why = format!("command {} has no buffer for its C2H data", rx.cid);
                        return Err(self.bad_peer(why));
                    }
                    let n = chunk.len() as u32;
                    rx.off += n;
                    rx.left -= n;
                    if rx.left > 0 {
                        self.rx_state = Rx::Data(rx);
                        return Ok(completed);
                    }
                    if self.recv_framing.ddgst {
                        self.rx_state = Rx::Digest(rx);
                    } else {
                        completed += self.data_done(rx, on_cqe);
                    }
                }
                Rx::Digest(rx) => {
                    let Ok(Some(d)) = self.rx.next_frame(|_| Some(DIGEST_LEN)) else {
                        return Ok(completed);
                    };
                    let got = le32(d, 0);
                    let want = rx.crc;
                    if got != want {
                        log::error!(
                            "{}",
                            PduError::DataDigest {
                                pdu: "C2HData",
                                cccid: rx.cid,
                                want,
                                got
                            }
                        );
                        self.cmds[rx.cid as usize].digest_error = true;
                    }
                    completed += self.data_done(rx, on_cqe);
                }
            }
        }
    }

    /// ICResp, once it has arrived whole (`None` before). Anything else
    /// first is a sequence error; a C2HTermReq says why the controller
    /// refused the connection.
    pub(super) fn recv_ic_resp(&mut self) -> Result<Option<IcResp>, TcpError> {
        let e = Expect {
            allowed: PduTypeSet::of(&[PduType::IcResp, PduType::C2HTermReq]),
            state: "before ICResp",
            framing: Framing::default(),
            max_data: 0,
        };
        let Some(h) = self.next_header(&e)? else {
            return Ok(None);
        };
        match h.psh {
            Psh::IcResp(r) => Ok(Some(r)),
            Psh::TermReq(t) => {
                let error = PduError::Terminated {
                    fes: t.fes,
                    fei: t.fei,
                };
                let addr = self.peer();
                Err(self.fail(TcpError::Pdu { addr, error }))
            }
            _ => Err(self.bad_peer("unexpected PDU before ICResp".into())),
        }
    }

    /// The next PDU header, decoded once it has arrived whole (`None`
    /// before); one that `e` does not allow, or a malformed one, is a
    /// protocol error (answered with a H2CTermReq where the spec says so).
    fn next_header(&mut self, e: &Expect) -> Result<Option<Header>, TcpError> {
        let mut err = None;
        let frame = self.rx.next_frame(|b| match header_frame_len(b, e) {
            Ok(n) => n,
            Err(x) => {
                err = Some(x);
                None
            }
        });
        if let Some(x) = err {
            return Err(self.protocol_error(x));
        }
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(None),
            Err(x) => return Err(self.fail(x.into())),
        };
        match decode_header(frame, e) {
            Ok(h) => Ok(Some(h)),
            Err(x) => Err(self.protocol_error(x)),
        }
    }

    /// The end of a C2HData PDU's data: counts it, and completes the
    /// command when the PDU had SUCCESS.
    fn data_done<F: FnMut(Cqe)>(&mut self, rx: DataRx, on_cqe: &mut F) -> usize {
        self.rx_state = Rx::Header;
        let c = &mut self.cmds[rx.cid as usize];
        c.done = rx.off;
        if !rx.success {
            return 0;
        }
        c.active = false;
        let status = if c.digest_error {
            TRANSIENT_TRANSPORT_ERROR
        } else {
            0
        };
        on_cqe(Cqe {
            dw0: 0,
            dw1: 0,
            sqhd: 0,
            sqid: 0,
            cid: rx.cid,
            status,
        });
        1
    }

    /// A PDU that breaks the rules: tell the controller (H2CTermReq with
    /// its FES and FEI) and fail the connection.
    fn protocol_error(&mut self, error: PduError) -> TcpError {
        if let Some((fes, fei)) = error.term_req() {
            let mut out = [0u8; TERM_REQ_HLEN + TERM_REQ_MAX_DATA];
            let n = encode_term_req(&mut out, true, &TermReq { fes, fei }, self.rx.peek());
            self.tx.clear();
            if self.tx.push(&out[..n]).is_ok() {
                let _ = self.tx.flush(&self.sock, |_| &[]);
            }
        }
        let addr = self.peer();
        self.fail(TcpError::Pdu { addr, error })
    }

    /// A well-formed PDU that does not fit this queue's commands.
    pub(super) fn bad_peer(&mut self, why: String) -> TcpError {
        let addr = self.peer();
        self.fail(TcpError::Protocol { addr, why })
    }
}
