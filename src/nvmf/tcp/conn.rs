//! One NVMe/TCP connection: one queue of one controller. It owns its
//! socket, a receive buffer, a send queue and its command slots; the poll
//! group's poller reads and writes it, the bdev channel's poller completes
//! its I/O. Nothing here blocks, and after the first commands nothing
//! allocates.

use super::bufs::GroupBufs;
use super::slot::{Slot, SlotState};
use crate::bdev::{Channel, Desc};
use crate::nvme::tcp::pdu::Framing;
use crate::nvmf::fabrics::Connected;
use crate::nvmf::{QueueOrigin, Target, TransportOpts};
use crate::sock::{RecvBuffer, SendQueue, SockError, Socket};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The connection's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Waiting for ICReq.
    AwaitIcReq,
    /// ICResp sent: commands flow.
    Ready,
    /// Closing: what is queued is sent, then the socket is shut.
    Closing,
    /// Closed.
    Closed,
}

/// Where the receive side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecvState {
    /// At a PDU header.
    Header,
    /// Inside a PDU's padding, data and data digest.
    Payload(Payload),
}

/// The rest of a PDU that carries data into a slot's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Payload {
    pub slot: u16,
    /// Padding bytes still to skip.
    pub pad: usize,
    /// Next byte of the slot's buffer to fill.
    pub at: usize,
    /// Data bytes still to come.
    pub left: usize,
    /// CRC32C of the data so far (data digests on).
    pub crc: u32,
    /// Digest bytes received (of 4; none expected when digests are off).
    pub dig: [u8; 4],
    /// Digest bytes still to come.
    pub dig_left: usize,
    /// True for H2CData (false: in-capsule data).
    pub h2c: bool,
}

/// A namespace as one I/O queue uses it.
pub(super) struct IoNs {
    pub nsid: u32,
    pub desc: Desc,
    pub ch: Channel,
    pub block_size: u32,
    pub num_blocks: u64,
    /// The subsystem's ANA generation `ana_status` was computed at.
    pub ana_gen: u64,
    /// What ANA makes of an I/O to it (`None`: served).
    pub ana_status: Option<crate::nvmf::Completion>,
    /// Its bdev I/Os in flight (it is closed only at 0).
    pub inflight: u32,
}

/// A connection.
pub(crate) struct Conn {
    pub sock: Socket,
    /// The listener it reached, the host's address, the serving thread.
    pub origin: QueueOrigin,
    /// The poll group's counters.
    pub stats: Arc<super::group::GroupStats>,
    pub rb: RecvBuffer,
    pub sq: SendQueue,
    pub target: Arc<Target>,
    /// The transport options when the connection started.
    pub opts: TransportOpts,
    pub phase: Phase,
    pub rstate: RecvState,
    /// How PDUs from the host are framed (digests, our CPDA).
    pub recv_framing: Framing,
    /// How PDUs to the host are framed (digests, the host's HPDA).
    pub send_framing: Framing,
    pub maxh2cdata: u32,
    pub slots: Vec<Slot>,
    pub free: Vec<u16>,
    /// Slots whose data is queued for sending.
    pub sending: Vec<u16>,
    /// Slots holding Asynchronous Event Requests.
    pub aers: Vec<u16>,
    pub queue: Option<Connected>,
    /// Namespaces this queue opened, by index (`None`: closed; entries
    /// never move while slots name them).
    pub ns: Vec<Option<IoNs>>,
    /// The first command of a fused pair, waiting for the second.
    pub fused_first: Option<u16>,
    /// The subsystem's generation `ns` was last checked against.
    pub ns_gen: u64,
    pub sqhd: u16,
    /// Bdev I/Os in flight (a closed connection is dropped only at 0).
    pub inflight: usize,
    /// When closing began.
    pub closing_since: Option<Instant>,
    /// Abort commands of this admin queue waiting for an I/O queue's answer.
    pub abort_waits: usize,
    /// The poll group's shared-buffer cache and queue of waiting commands.
    pub bufs: Rc<RefCell<GroupBufs>>,
    /// This connection, as the group's buffer queue names it.
    pub me: Weak<RefCell<Conn>>,
    /// The last poll read bytes from the socket.
    pub got_bytes: bool,
}

/// How long a closing connection may take to send what is queued.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Most bytes in one H2CData PDU (SPDK's `NVMF_TCP_PDU_MAX_H2C_DATA_SIZE`).
pub const MAX_H2C_DATA: u32 = 131072;
/// Receive buffer size: many PDUs per read.
const RECV_BUF: usize = 64 * 1024;
/// Staged bytes per slot in the send queue: a C2HData header with padding,
/// its data digest and a response capsule.
const STAGING_PER_SLOT: usize = crate::nvme::tcp::encode::MAX_HEADER_WITH_PAD + 64;

impl Conn {
    /// A connection over `sock` (accepted at `local`) with as many
    /// command slots as the deepest queue may hold; large transfers take
    /// buffers through `bufs`.
    pub fn new(
        sock: Socket,
        local: std::net::SocketAddr,
        target: Arc<Target>,
        stats: Arc<super::group::GroupStats>,
        bufs: Rc<RefCell<GroupBufs>>,
    ) -> Rc<RefCell<Conn>> {
        let opts = target.opts();
        let depth = opts.max_queue_depth.max(opts.max_aq_depth) as usize;
        let origin = QueueOrigin {
            listen: local,
            peer: sock.peer_addr(),
            thread: crate::thread::Thread::current()
                .map_or_else(|| "nvmf_tgt_poll_group".into(), |t| t.name().to_string()),
        };
        Rc::new_cyclic(|me| {
            RefCell::new(Conn {
                sock,
                origin,
                stats,
                rb: RecvBuffer::new(RECV_BUF),
                sq: SendQueue::new(depth * STAGING_PER_SLOT + 512, depth * 4 + 16),
                target,
                opts,
                phase: Phase::AwaitIcReq,
                rstate: RecvState::Header,
                recv_framing: Framing::default(),
                send_framing: Framing::default(),
                maxh2cdata: MAX_H2C_DATA,
                slots: (0..depth as u16)
                    .map(|i| Slot::new(me.clone(), i))
                    .collect(),
                free: (0..depth as u16).rev().collect(),
                sending: Vec::with_capacity(depth),
                aers: Vec::with_capacity(crate::nvmf::ctrlr::MAX_AERS),
                queue: None,
                ns: Vec::new(),
                fused_first: None,
                ns_gen: 0,
                sqhd: 0,
                inflight: 0,
                closing_since: None,
                abort_waits: 0,
                bufs,
                me: me.clone(),
                got_bytes: false,
            })
        })
    }

    /// Serves the connection once: reads what arrived (when `read`: the
    /// group's readiness set says bytes wait, or the group reads every
    /// connection this poll), handles it, sends what is queued. Returns
    /// whether anything happened; [`Conn::got_bytes`] says whether bytes came.
    pub fn poll(&mut self, read: bool) -> bool {
        let mut busy = false;
        self.got_bytes = false;
        if matches!(self.phase, Phase::AwaitIcReq | Phase::Ready) {
            if read {
                match self.receive() {
                    Ok(b) => {
                        busy |= b;
                        self.got_bytes = b;
                    }
                    Err(e) => self.lost(e),
                }
            }
            busy |= self.poll_aborts(None);
        }
        busy |= self.flush();
        if self.phase == Phase::Closing {
            // What is queued goes out first, unless the peer stops reading.
            let since = *self.closing_since.get_or_insert_with(Instant::now);
            if self.sq.is_empty() || since.elapsed() > CLOSE_LINGER {
                self.close();
            }
        }
        busy
    }

    /// Sends what is queued; frees slots whose data went out.
    pub fn flush(&mut self) -> bool {
        if self.sq.is_empty() || self.phase == Phase::Closed {
            return false;
        }
        let slots = &self.slots;
        let r = self
            .sq
            .flush(&self.sock, |key| slots[key as usize].data(usize::MAX));
        match r {
            Ok(n) => {
                if self.sq.is_empty() {
                    while let Some(i) = self.sending.pop() {
                        self.release(i);
                    }
                }
                n > 0
            }
            Err(e) => {
                self.lost(e);
                true
            }
        }
    }

    fn lost(&mut self, e: SockError) {
        match e {
            SockError::Closed(_) => log::debug!("nvmf/tcp: {e}"),
            _ => log::info!("nvmf/tcp: connection from {}: {e}", self.sock.peer_addr()),
        }
        self.close();
    }

    /// Closes the connection now: the queue leaves its controller (an
    /// admin queue takes its controller down).
    pub fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.sq.clear();
        self.cancel_aborts();
        // The queue leaves its controller before the host can see the
        // close: a host that reconnects the same queue ID as soon as it
        // does must not find the old one still there.
        if let Some(q) = self.queue.take() {
            self.stats.disconnected(q.qid == 0);
            if q.qid == 0 {
                q.ctrlr.fail();
            } else {
                q.ctrlr.remove_io_queue(q.qid);
            }
        }
        self.sock.shutdown();
    }

    /// True when nothing of this connection is in flight or queued: no
    /// bdev I/O, nothing to send, no Abort waiting for an answer.
    pub fn is_quiet(&self) -> bool {
        self.inflight == 0 && self.sq.is_empty() && self.abort_waits == 0
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Returns slot `i` to the free list (once: a slot already free
    /// stays listed once, so two commands never share it).
    pub fn release(&mut self, i: u16) {
        let Some(s) = self.slots.get_mut(i as usize) else {
            return;
        };
        if s.state == SlotState::Free {
            log::error!("nvmf/tcp: slot {i} released twice; ignored");
            return;
        }
        s.state = SlotState::Free;
        s.io = None;
        self.return_pooled(i);
        self.free.push(i);
    }

    /// Peer address (for logs).
    pub fn peer(&self) -> std::net::SocketAddr {
        self.sock.peer_addr()
    }
}

impl Drop for Conn {
    /// Shared buffers still held by slots (data that was arriving when the
    /// connection closed) go back to the pool.
    fn drop(&mut self) {
        for i in 0..self.slots.len() {
            self.return_pooled(i as u16);
        }
    }
}
