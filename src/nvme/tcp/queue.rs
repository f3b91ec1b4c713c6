//! One NVMe/TCP queue: a TCP connection carrying one submission and
//! completion queue. Connection setup (ICReq/ICResp), command capsules
//! with in-capsule data, H2CData answering R2Ts, all sends batched per
//! flush. The receive side is in `queue_recv.rs`.
//!
//! The queue does not own the commands' data: it reaches it through
//! [`CommandBuffers`] (the queue pair's request slots), so write data is
//! sent from where it lives and read data lands where the caller wants it.

use super::decode::Expect;
use super::encode::{capsule_cmd_psh, data_psh, encode_header, encode_ic_req, MAX_HEADER_WITH_PAD};
use super::error::TcpError;
use super::fabrics;
use super::pdu::*;
use super::queue_recv::Rx;
use crate::nvme::spec::Sqe;
use crate::sock::{RecvBuffer, SendQueue, Socket, SocketOpts};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where each command's data lives, by command identifier.
pub trait CommandBuffers {
    /// Segment `i` of the data of command `cid`; `None` past the last one.
    fn segment(&self, cid: u16, i: usize) -> Option<&[u8]>;
    /// Segment `i` of the data of command `cid`, to receive into.
    fn segment_mut(&mut self, cid: u16, i: usize) -> Option<&mut [u8]>;
}

/// Connection parameters asked for in ICReq.
#[derive(Debug, Clone)]
pub struct TcpQueueOpts {
    /// Ask for header digests.
    pub header_digest: bool,
    /// Ask for data digests.
    pub data_digest: bool,
    /// Socket options.
    pub sock: SocketOpts,
    /// How long connection setup (ICResp) may take.
    pub setup_timeout: Duration,
}

impl Default for TcpQueueOpts {
    fn default() -> Self {
        TcpQueueOpts {
            header_digest: false,
            data_digest: false,
            sock: SocketOpts::default(),
            setup_timeout: Duration::from_secs(10),
        }
    }
}

/// What a command slot is doing.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Cmd {
    pub(super) active: bool,
    /// Host to controller (write-like) data, else controller to host.
    pub(super) write: bool,
    /// A data digest of this command's data did not match.
    pub(super) digest_error: bool,
    /// Bytes the command moves.
    pub(super) len: u32,
    /// C2H bytes received so far (reads), or H2C bytes asked for (writes).
    pub(super) done: u32,
}

/// One NVMe/TCP connection (SPDK's `nvme_tcp_qpair` transport part).
pub struct TcpQueue {
    pub(super) sock: Socket,
    pub(super) rx: RecvBuffer,
    pub(super) tx: SendQueue,
    pub(super) rx_state: Rx,
    /// Framing of PDUs we receive (our HPDA) and send (the controller's CPDA).
    pub(super) recv_framing: Framing,
    pub(super) send_framing: Framing,
    pub(super) maxh2cdata: u32,
    /// Most write data sent inside the command capsule.
    pub(super) in_capsule_max: usize,
    pub(super) cmds: Vec<Cmd>,
    pub(super) failed: bool,
    scratch: [u8; MAX_HEADER_WITH_PAD],
}

/// Bytes staged for headers: enough for a full queue's capsules and digests.
fn staging_bytes(entries: usize) -> usize {
    entries * 2 * (MAX_HEADER_WITH_PAD + DIGEST_LEN) + 4096
}

impl TcpQueue {
    /// Connects to `addr` and sets the connection up (ICReq/ICResp) for a
    /// queue of `entries` commands. The Fabrics Connect is sent by the caller.
    pub fn connect(addr: SocketAddr, entries: u16, opts: &TcpQueueOpts) -> Result<Self, TcpError> {
        let sock = Socket::connect(addr, &opts.sock)?;
        let n = entries.max(2) as usize;
        let mut q = TcpQueue {
            sock,
            rx: RecvBuffer::new(64 * 1024),
            tx: SendQueue::new(staging_bytes(n), n * 32 + 64),
            rx_state: Rx::Header,
            recv_framing: Framing::default(),
            send_framing: Framing::default(),
            maxh2cdata: 0,
            in_capsule_max: fabrics::ADMIN_IN_CAPSULE_MAX,
            cmds: vec![Cmd::default(); n],
            failed: false,
            scratch: [0; MAX_HEADER_WITH_PAD],
        };
        q.initialize(opts)?;
        Ok(q)
    }

    /// The controller's address.
    pub fn peer(&self) -> SocketAddr {
        self.sock.peer_addr()
    }

    /// Digests in use (header, data).
    pub fn digests(&self) -> (bool, bool) {
        (self.recv_framing.hdgst, self.recv_framing.ddgst)
    }

    /// MAXH2CDATA the controller announced.
    pub fn maxh2cdata(&self) -> u32 {
        self.maxh2cdata
    }

    /// Sets the most write data sent in-capsule (from IOCCSZ for I/O queues).
    pub fn set_in_capsule_max(&mut self, bytes: usize) {
        self.in_capsule_max = bytes;
    }

    /// True when the connection failed and takes no more commands.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// ICReq, then wait for ICResp and take its parameters.
    fn initialize(&mut self, opts: &TcpQueueOpts) -> Result<(), TcpError> {
        let mut dg = 0;
        if opts.header_digest {
            dg |= dgst::HDGST_ENABLE;
        }
        if opts.data_digest {
            dg |= dgst::DDGST_ENABLE;
        }
        let req = IcReq {
            pfv: PFV_1_0,
            hpda: 0,
            dgst: dg,
            maxr2t: 0, // one R2T outstanding per command (0's based)
        };
        self.tx.push(&encode_ic_req(&req))?;
        let start = Instant::now();
        loop {
            self.tx.flush(&self.sock, |_| &[])?;
            self.rx.fill(&self.sock)?;
            if let Some(resp) = self.recv_ic_resp()? {
                let addr = self.peer();
                let bad = |why: String| TcpError::Negotiation { addr, why };
                if resp.dgst & !dg != 0 {
                    return Err(bad(format!(
                        "the controller enabled digests {:#x} that were not asked for ({dg:#x})",
                        resp.dgst
                    )));
                }
                let f = Framing {
                    hdgst: resp.dgst & dgst::HDGST_ENABLE != 0,
                    ddgst: resp.dgst & dgst::DDGST_ENABLE != 0,
                    pda: 0,
                };
                self.recv_framing = f;
                self.send_framing = Framing {
                    pda: resp.cpda,
                    ..f
                };
                self.maxh2cdata = resp.maxh2cdata;
                log::debug!(
                    "NVMe/TCP {addr}: connected, CPDA {} MAXH2CDATA {} digests header {} data {}",
                    resp.cpda,
                    resp.maxh2cdata,
                    f.hdgst,
                    f.ddgst
                );
                return Ok(());
            }
            if start.elapsed() > opts.setup_timeout {
                return Err(TcpError::Timeout {
                    addr: self.peer(),
                    what: "ICReq",
                    after: opts.setup_timeout,
                });
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// What may arrive now.
    pub(super) fn expect(&self) -> Expect {
        Expect {
            allowed: PduTypeSet::of(&[
                PduType::CapsuleResp,
                PduType::C2HData,
                PduType::R2T,
                PduType::C2HTermReq,
            ]),
            state: "on a connected queue",
            framing: self.recv_framing,
            max_data: u32::MAX / 2,
        }
    }

    /// Whether command `cid` is in flight.
    pub fn is_active(&self, cid: u16) -> bool {
        self.cmds.get(cid as usize).is_some_and(|c| c.active)
    }

    /// Whether a command with `cid` may be submitted now.
    pub fn can_submit(&self, cid: u16) -> bool {
        !self.failed
            && self.cmds.get(cid as usize).is_some_and(|c| !c.active)
            && self.tx.has_room(MAX_HEADER_WITH_PAD + DIGEST_LEN, 4)
    }

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
            done: 0,
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

    /// Marks the connection failed and passes the error on.
    pub(super) fn fail(&mut self, e: TcpError) -> TcpError {
        if !self.failed {
            log::error!("{e}");
            self.failed = true;
            self.tx.clear();
            self.sock.shutdown();
        }
        e
    }

    /// Closes the connection: every command in flight is forgotten (the
    /// caller fails them).
    pub fn close(&mut self) {
        self.failed = true;
        self.tx.clear();
        self.sock.shutdown();
        for c in &mut self.cmds {
            c.active = false;
        }
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
