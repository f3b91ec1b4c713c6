//! One NVMe/TCP queue: a TCP connection carrying one submission and
//! completion queue, and its setup (ICReq/ICResp). The send side (command
//! capsules with in-capsule data, H2CData answering R2Ts, all sends
//! batched per flush) is in `queue_send.rs`, the receive side in
//! `queue_recv.rs`.
//!
//! The queue does not own the commands' data: it reaches it through
//! [`CommandBuffers`] (the queue pair's request slots), so write data is
//! sent from where it lives and read data lands where the caller wants it.

use super::decode::Expect;
use super::encode::{encode_ic_req, MAX_HEADER_WITH_PAD};
use super::error::TcpError;
use super::fabrics;
use super::pdu::*;
use super::queue_recv::Rx;
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
    /// R2Ts the controller may have outstanding per command (MAXR2T of
    /// ICReq, 1 or more). Every R2T is answered with its H2CData as soon
    /// as it arrives, in the order the controller sent them, so a
    /// controller may ask for a large write's pieces all at once.
    pub max_r2t: u32,
}

impl Default for TcpQueueOpts {
    fn default() -> Self {
        TcpQueueOpts {
            header_digest: false,
            data_digest: false,
            sock: SocketOpts::default(),
            setup_timeout: Duration::from_secs(10),
            max_r2t: DEFAULT_MAX_R2T,
        }
    }
}

/// R2Ts a controller may have outstanding per command unless told otherwise.
pub const DEFAULT_MAX_R2T: u32 = 16;

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
    /// Payload bytes read straight into command buffers (large C2H data).
    pub(super) direct_bytes: u64,
    /// The last C2HData PDU carried at least `DIRECT_MIN` bytes (and no
    /// response of a write or a small command came since): the next read
    /// from an empty buffer takes one PDU header only, so the large
    /// payload likely behind it is read straight into its command's buffer.
    pub(super) big_c2h: bool,
    pub(super) scratch: [u8; MAX_HEADER_WITH_PAD],
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
            direct_bytes: 0,
            big_c2h: false,
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

    /// C2H payload bytes received straight from the socket into command
    /// buffers (large reads skip the receive buffer's copy).
    pub fn direct_bytes(&self) -> u64 {
        self.direct_bytes
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
            maxr2t: opts.max_r2t.max(1) - 1, // 0's based
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
