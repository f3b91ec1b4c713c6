//! The admin queue over NVMe/TCP: commands executed one at a time on the
//! admin connection and polled until they complete, their data in DMA
//! buffers held per command identifier until the controller answers.

use super::fabrics::OPC_FABRICS;
use super::queue::{CommandBuffers, TcpQueue};
use crate::env::DmaBuf;
use crate::nvme::spec::features::AsyncEvent;
use crate::nvme::spec::{AdminOpcode, Cqe, Sqe};
use crate::nvme::NvmeError;
use std::time::{Duration, Instant};

/// Asynchronous events kept until the user takes them (older ones are
/// dropped beyond this).
const MAX_PENDING_EVENTS: usize = 256;

/// The data buffer of each admin command in flight.
pub(crate) struct SlotBufs(Vec<Option<DmaBuf>>);

impl CommandBuffers for SlotBufs {
    fn segment(&self, cid: u16, i: usize) -> Option<&[u8]> {
        (i == 0).then_some(())?;
        self.0.get(cid as usize)?.as_deref()
    }
    fn segment_mut(&mut self, cid: u16, i: usize) -> Option<&mut [u8]> {
        (i == 0).then_some(())?;
        self.0.get_mut(cid as usize)?.as_deref_mut()
    }
}

/// The admin queue of an NVMe/TCP controller.
pub(crate) struct TcpAdmin {
    pub(crate) queue: TcpQueue,
    bufs: SlotBufs,
    /// Commands given up on after a timeout: their answers are dropped.
    abandoned: Vec<bool>,
    /// Asynchronous Event Requests outstanding, by command identifier.
    aer: Vec<bool>,
    /// Events from AER completions not yet handed to the user.
    pub(crate) events: Vec<AsyncEvent>,
    next_cid: u16,
}

/// Whether a command moves data from host to controller (true), the other
/// way (false), from its opcode's data transfer bits (Fabrics commands
/// with data — Connect — move it to the controller).
pub(crate) fn host_to_controller(sqe: &Sqe) -> bool {
    sqe.opc() == OPC_FABRICS || sqe.opc() & 3 == 1
}

/// Human name of a command on the admin queue, for errors.
pub(crate) fn command_name(sqe: &Sqe) -> &'static str {
    if sqe.opc() == OPC_FABRICS {
        return match sqe.nsid as u8 {
            super::fabrics::FCTYPE_CONNECT => "Fabrics Connect",
            super::fabrics::FCTYPE_PROPERTY_GET => "Fabrics Property Get",
            super::fabrics::FCTYPE_PROPERTY_SET => "Fabrics Property Set",
            _ => "Fabrics command",
        };
    }
    crate::nvme::admin::admin_name(sqe.opc())
}

impl TcpAdmin {
    /// An admin queue on `queue` (connected, not yet Fabrics-Connected).
    pub(crate) fn new(queue: TcpQueue, entries: u16) -> Self {
        TcpAdmin {
            queue,
            bufs: SlotBufs((0..entries).map(|_| None).collect()),
            abandoned: vec![false; entries as usize],
            aer: vec![false; entries as usize],
            events: Vec::new(),
            next_cid: 0,
        }
    }

    fn alloc_cid(&mut self) -> Option<u16> {
        let n = self.bufs.0.len() as u16;
        (0..n)
            .map(|i| (self.next_cid + i) % n)
            .find(|&c| !self.queue.is_active(c))
            .inspect(|&c| self.next_cid = (c + 1) % n)
    }

    /// Executes `sqe` with an optional data buffer and waits for the answer.
    /// A non-success status becomes [`NvmeError::Command`].
    pub(crate) fn exec(
        &mut self,
        mut sqe: Sqe,
        buf: Option<DmaBuf>,
        timeout: Duration,
    ) -> Result<(Cqe, Option<DmaBuf>), NvmeError> {
        let what = command_name(&sqe);
        self.poll();
        let cid = self.alloc_cid().ok_or(NvmeError::QueueFull)?;
        sqe.set_cid(cid);
        let len = buf.as_ref().map_or(0, |b| b.len() as u32);
        self.bufs.0[cid as usize] = buf;
        self.abandoned[cid as usize] = false;
        self.queue
            .submit(sqe, len, host_to_controller(&sqe), &self.bufs)
            .map_err(|e| NvmeError::Tcp(Box::new(e)))?;
        let start = Instant::now();
        loop {
            let mut done = None;
            let mut other = Vec::new();
            self.queue
                .poll(&mut self.bufs, |c| {
                    if c.cid == cid {
                        done = Some(c);
                    } else {
                        other.push(c);
                    }
                })
                .map_err(|e| NvmeError::Tcp(Box::new(e)))?;
            self.settle(other);
            if let Some(cqe) = done {
                let buf = self.bufs.0[cid as usize].take();
                let status = cqe.status();
                if !status.is_success() {
                    return Err(NvmeError::Command {
                        opcode: what,
                        status,
                    });
                }
                return Ok((cqe, buf));
            }
            if start.elapsed() > timeout {
                // The buffer stays in its slot until an answer or the end of the connection.
                self.abandoned[cid as usize] = true;
                return Err(NvmeError::Timeout {
                    what,
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Takes answers to abandoned commands and Asynchronous Event
    /// Requests; returns how many arrived.
    pub(crate) fn poll(&mut self) -> usize {
        let mut got = Vec::new();
        let r = self.queue.poll(&mut self.bufs, |c| got.push(c));
        if let Err(e) = r {
            log::debug!("admin queue: {e}");
        }
        let n = got.len();
        self.settle(got);
        n
    }

    /// Completions of commands nobody waits for: an abandoned command's
    /// buffer is freed; an AER's event is kept and the AER submitted again.
    fn settle(&mut self, cqes: Vec<Cqe>) {
        for c in cqes {
            let i = c.cid as usize;
            if let Some(b) = self.bufs.0.get_mut(i) {
                *b = None;
            }
            if let Some(a) = self.abandoned.get_mut(i) {
                *a = false;
            }
            if self.aer.get(i).copied().unwrap_or(false) {
                self.aer[i] = false;
                let st = c.status();
                if st.is_success() {
                    if self.events.len() >= MAX_PENDING_EVENTS {
                        // Nobody takes them: a flood from the controller
                        // must not grow without bound.
                        let n = MAX_PENDING_EVENTS;
                        log::warn!("admin queue: {n} events not taken; the oldest is dropped");
                        self.events.remove(0);
                    }
                    self.events.push(AsyncEvent::from_dw0(c.dw0));
                    self.submit_aer();
                } else {
                    log::debug!("AER completed with {st}; not resubmitted");
                }
            }
        }
    }

    /// Submits one Asynchronous Event Request, left outstanding until the
    /// controller has an event to report. False when no command slot or
    /// the connection is free.
    pub(crate) fn submit_aer(&mut self) -> bool {
        let Some(cid) = self.alloc_cid() else {
            return false;
        };
        let mut sqe = Sqe::new(AdminOpcode::AsyncEventRequest as u8, 0);
        sqe.set_cid(cid);
        self.abandoned[cid as usize] = false;
        let sent = self
            .queue
            .submit(sqe, 0, false, &self.bufs)
            .and_then(|()| self.queue.flush(&self.bufs));
        match sent {
            Ok(()) => {
                self.aer[cid as usize] = true;
                true
            }
            Err(e) => {
                log::debug!("admin queue: Asynchronous Event Request not sent: {e}");
                false
            }
        }
    }
}
