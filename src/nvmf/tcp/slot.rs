//! Per-command state on a connection, preallocated: a connection has as
//! many slots as its queue may hold. A slot's own data buffer (DMA memory,
//! handed to the bdev layer without a copy) serves small transfers: it is
//! allocated the first time a command needs that much and kept for the
//! next ones. A large transfer on an I/O queue borrows a buffer of the
//! transport's shared pool instead, for as long as the command runs.

use super::conn::Conn;
use crate::bdev::{IoBuf, IoCompletion, IoDone};
use crate::env::DmaBuf;
use crate::nvme::spec::Sqe;
use crate::nvmf::io::IoCmd;
use std::cell::RefCell;
use std::rc::Weak;

/// Where a command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotState {
    /// Unused.
    Free,
    /// Its capsule's data is arriving.
    InCapsule,
    /// An R2T went out; H2CData is arriving.
    AwaitH2c,
    /// Being executed (bdev I/O in flight).
    Exec,
    /// An Asynchronous Event Request held until an event.
    Aer,
    /// Its data is queued to send; freed when the send queue drains.
    Sending,
    /// An Abort of an I/O command waiting for the I/O queue's answer.
    AbortWait,
    /// Waiting for a buffer of the shared pool (in the group's queue).
    NeedBuffer,
}

/// One command's state.
pub(super) struct Slot {
    pub state: SlotState,
    pub sqe: Sqe,
    /// Data buffer: a window of DMA memory as long as the current
    /// transfer, handed to the bdev layer and back as it is.
    pub buf: Option<IoBuf>,
    /// Bytes the command's SGL describes.
    pub xfer_len: usize,
    /// Bytes of host data received so far.
    pub recvd: usize,
    /// The decoded I/O command and the index of its namespace.
    pub io: Option<(IoCmd, usize)>,
    /// Next Dataset Management range to deallocate.
    pub dsm_next: u16,
    /// For the second command of a fused pair in flight: the first's slot.
    pub fused_first: Option<u16>,
    /// The completion object handed to the bdev layer (one per slot, reused).
    pub done: Option<Box<dyn IoDone>>,
    /// Taken back by an Abort before execution: completes as aborted
    /// once its data is in, without reaching the bdev.
    pub aborted: bool,
    /// For an Abort in [`SlotState::AbortWait`]: its mailbox ticket.
    pub ticket: u64,
    /// `buf` is a buffer of the shared pool (given back when the slot is
    /// released).
    pub pooled: bool,
    /// The slot's own buffer, set aside while a pooled one is in `buf`.
    pub spare: Option<IoBuf>,
    /// For a slot in [`SlotState::NeedBuffer`]: its place in the group's
    /// queue (an entry with another number is stale).
    pub wait_seq: u64,
}

impl Slot {
    pub fn new(conn: Weak<RefCell<Conn>>, index: u16) -> Slot {
        Slot {
            state: SlotState::Free,
            sqe: Sqe::default(),
            buf: None,
            xfer_len: 0,
            recvd: 0,
            io: None,
            dsm_next: 0,
            fused_first: None,
            done: Some(Box::new(SlotDone { conn, index })),
            aborted: false,
            ticket: 0,
            pooled: false,
            spare: None,
            wait_seq: 0,
        }
    }

    /// Puts a buffer of the shared pool in place of the slot's own one,
    /// as a window of `len` bytes.
    pub fn install_pooled(&mut self, b: IoBuf, len: usize) -> Result<(), crate::env::EnvError> {
        debug_assert!(!self.pooled);
        self.spare = self.buf.take();
        self.buf = Some(b);
        self.pooled = true;
        self.ensure_buf(len)
    }

    /// Takes the pooled buffer out (the slot gets its own one back).
    pub fn take_pooled(&mut self) -> Option<IoBuf> {
        if !self.pooled {
            return None;
        }
        self.pooled = false;
        let b = self.buf.take();
        self.buf = self.spare.take();
        b
    }

    /// Makes the buffer exactly `len` bytes long: as it is when it already
    /// is (no allocation when commands keep their size), a new window on
    /// the same memory when that is large enough, new memory otherwise.
    /// A pooled buffer is only ever re-windowed: one too small is an error
    /// (it is as large as the largest transfer), never replaced.
    pub fn ensure_buf(&mut self, len: usize) -> Result<(), crate::env::EnvError> {
        let dma = match self.buf.take() {
            Some(b) if b.len() == len => {
                self.buf = Some(b);
                return Ok(());
            }
            Some(b) => b.into_dma().ok().map(|(d, _)| d),
            None => None,
        };
        if self.pooled {
            return match dma {
                Some(d) if d.len() >= len => {
                    self.buf = Some(IoBuf::from_dma(d, 0, len));
                    Ok(())
                }
                d => {
                    let size = d.as_ref().map_or(0, |d| d.len());
                    // Keep the memory so it still goes back to the pool.
                    self.buf = d.map(|d| IoBuf::from_dma(d, 0, size));
                    Err(crate::env::EnvError::InvalidSize { len, max: size })
                }
            };
        }
        let d = match dma {
            Some(d) if d.len() >= len => d,
            _ => DmaBuf::alloc_zeroed(len.max(4096), 4096)?,
        };
        self.buf = Some(IoBuf::from_dma(d, 0, len));
        Ok(())
    }

    /// The first `len` bytes of the buffer (empty when there is none).
    pub fn data(&self, len: usize) -> &[u8] {
        self.buf
            .as_ref()
            .map_or(&[][..], |b| &b[..len.min(b.len())])
    }
}

/// The bdev completion of a slot's I/O: finds the connection and the slot
/// again (the connection may be gone: then the I/O's buffers are freed).
pub(super) struct SlotDone {
    conn: Weak<RefCell<Conn>>,
    index: u16,
}

impl IoDone for SlotDone {
    fn io_done(self: Box<Self>, completion: IoCompletion) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        let index = self.index;
        // Completions run from the bdev channel's poller, never while the
        // group's poller holds the connection.
        let Ok(mut c) = conn.try_borrow_mut() else {
            log::error!("nvmf/tcp: completion while the connection is busy; dropped");
            return;
        };
        c.slots[index as usize].done = Some(self);
        c.io_done(index, completion);
        // The connection's last I/O in flight is done: its response goes
        // out now rather than at the group's next poll (a reactor
        // iteration later, after a readiness check). A host at queue
        // depth 1 waits on exactly this; at depth, the responses of one
        // batch of completions still leave together, with the last.
        if c.inflight == 0 {
            c.flush();
        }
    }
}
