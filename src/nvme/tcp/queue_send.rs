//! The send side of an NVMe/TCP queue: command capsules (write data up
//! to the in-capsule limit inside them), H2CData PDUs answering R2Ts at
//! most MAXH2CDATA each, data digests, and one `sendmsg` per flush for
//! everything queued. Data is sent from where the command's buffers
//! hold it (`CommandBuffers`), never copied into the send queue.

use super::encode::{capsule_cmd_psh, data_psh, encode_header, MAX_HEADER_WITH_PAD};
use super::error::TcpError;
use super::fabrics;
use super::pdu::*;
use super::queue::{Cmd, CommandBuffers, TcpQueue};
use crate::nvme::spec::Sqe;

impl TcpQueue {
    /// Queues the command `sqe` (its CID set) moving `len` bytes, `write`
    /// from host to controller: write data up to the in-capsule limit goes
    /// in the capsule, larger writes wait for the controller's R2T. The
    /// data pointer of `sqe` is replaced by the SGL NVMe/TCP uses.
    /// Sent at the next [`TcpQueue::flush`] or poll.
    pub fn submit<B: CommandBuffers + ?Sized>(
        &mut self,
        mut sqe: Sqe,
        len: u32,
        write: bool,
        bufs: &B,
    ) -> Result<(), TcpError> {
        let cid = sqe.cid();
        if self.failed {
            return Err(TcpError::Failed(self.peer()));
        }
        let in_capsule_max = if sqe.opc() == fabrics::OPC_FABRICS {
            fabrics::ADMIN_IN_CAPSULE_MAX
        } else {
            self.in_capsule_max
        };
        let in_capsule = write && len > 0 && len as usize <= in_capsule_max;
        // Every command over a fabric names its data with an SGL, even
        // one that moves none (Linux's target refuses PRPs with Invalid Field).
        fabrics::set_sgl(&mut sqe, len, in_capsule);
        let Some(slot) = self.cmds.get_mut(cid as usize) else {
            return Err(TcpError::Protocol {
                addr: self.sock.peer_addr(),
                why: format!(
                    "command identifier {cid} beyond the queue's {} slots",
                    self.cmds.len()
                ),
            });
        };
        *slot = Cmd {
            active: true,
            write,
            len,
            // In-capsule data is all sent: an R2T for it is refused.
            done: if in_capsule { len } else { 0 },
            digest_error: false,
        };
        let data_len = if in_capsule { len as usize } else { 0 };
        let pieces = if in_capsule {
            segments_in(bufs, cid, len)
        } else {
            0
        };
        if !self
            .tx
            .has_room(MAX_HEADER_WITH_PAD + DIGEST_LEN, pieces + 2)
        {
            slot.active = false;
            return Err(crate::sock::SockError::SendQueueFull { what: "entries" }.into());
        }
        let n = encode_header(
            &mut self.scratch,
            PduType::CapsuleCmd,
            0,
            capsule_cmd_psh(&sqe),
            data_len,
            self.send_framing,
        );
        self.tx.push(&self.scratch[..n])?;
        if in_capsule {
            self.queue_data(cid, 0, len, bufs)?;
        }
        Ok(())
    }

    /// Queues bytes `off..off+len` of command `cid`'s data (and their
    /// digest when data digests are on) after the header just queued.
    pub(super) fn queue_data<B: CommandBuffers + ?Sized>(
        &mut self,
        cid: u16,
        off: u32,
        len: u32,
        bufs: &B,
    ) -> Result<(), TcpError> {
        let (mut skip, mut left) = (off as usize, len as usize);
        let mut crc = None;
        let mut i = 0;
        while left > 0 {
            let Some(seg) = bufs.segment(cid, i) else {
                return Err(TcpError::Protocol {
                    addr: self.sock.peer_addr(),
                    why: format!("command {cid} has {} bytes fewer data than it moves", left),
                });
            };
            if skip >= seg.len() {
                skip -= seg.len();
                i += 1;
                continue;
            }
            let n = (seg.len() - skip).min(left);
            if self.send_framing.ddgst {
                let piece = &seg[skip..skip + n];
                crc = Some(match crc {
                    None => super::digest::crc32c(piece),
                    Some(c) => super::digest::crc32c_append(c, piece),
                });
            }
            self.tx.push_payload(payload_key(cid, i), skip, n)?;
            left -= n;
            skip = 0;
            i += 1;
        }
        if let Some(c) = crc {
            self.tx.push(&c.to_le_bytes())?;
        }
        Ok(())
    }

    /// Queues H2CData PDUs for `r2tl` bytes at `r2to` of command `cid`,
    /// each at most MAXH2CDATA, the last one flagged LAST_PDU.
    pub(super) fn queue_h2c<B: CommandBuffers + ?Sized>(
        &mut self,
        cid: u16,
        ttag: u16,
        r2to: u32,
        r2tl: u32,
        bufs: &B,
    ) -> Result<(), TcpError> {
        let mut off = 0;
        while off < r2tl {
            let n = (r2tl - off).min(self.maxh2cdata);
            let last = off + n == r2tl;
            let h = DataHeader {
                cccid: cid,
                ttag,
                datao: r2to + off,
                datal: n,
            };
            let len = encode_header(
                &mut self.scratch,
                PduType::H2CData,
                if last { flags::LAST_PDU } else { 0 },
                &data_psh(&h),
                n as usize,
                self.send_framing,
            );
            self.tx.push(&self.scratch[..len])?;
            self.queue_data(cid, r2to + off, n, bufs)?;
            off += n;
        }
        Ok(())
    }

    /// Sends what is queued (one `sendmsg` per batch); the rest goes at
    /// the next flush.
    pub fn flush<B: CommandBuffers + ?Sized>(&mut self, bufs: &B) -> Result<(), TcpError> {
        if self.tx.is_empty() {
            return Ok(());
        }
        let r = self.tx.flush(&self.sock, |k| {
            let (cid, i) = split_key(k);
            bufs.segment(cid, i).unwrap_or(&[])
        });
        r.map(|_| ()).map_err(|e| self.fail(e.into()))
    }
}

/// How many of command `cid`'s segments its first `len` bytes span.
fn segments_in<B: CommandBuffers + ?Sized>(bufs: &B, cid: u16, len: u32) -> usize {
    let (mut left, mut i) = (len as usize, 0);
    while left > 0 {
        let Some(s) = bufs.segment(cid, i) else { break };
        left = left.saturating_sub(s.len());
        i += 1;
    }
    i
}

fn payload_key(cid: u16, seg: usize) -> u64 {
    (cid as u64) << 32 | seg as u64
}

fn split_key(k: u64) -> (u16, usize) {
    ((k >> 32) as u16, (k & 0xffff_ffff) as usize)
}
