//! The admin queue over NVMe/TCP: commands executed one at a time on the
//! admin connection and polled until they complete, their data in DMA
//! buffers held per command identifier until the controller answers.

use super::fabrics::OPC_FABRICS;
use super::queue::{CommandBuffers, TcpQueue};
use crate::env::DmaBuf;
use crate::nvme::spec::{Cqe, Sqe};
use crate::nvme::NvmeError;
use std::time::{Duration, Instant};

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
            let abandoned = &mut self.abandoned;
            let bufs = &mut self.bufs;
            self.queue
                .poll(bufs, |c| {
                    if c.cid == cid {
                        done = Some(c);
                    } else if let Some(a) = abandoned.get_mut(c.cid as usize) {
                        *a = false;
                    }
                })
                .map_err(|e| NvmeError::Tcp(Box::new(e)))?;
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

    /// Takes answers to abandoned commands; returns how many arrived.
    pub(crate) fn poll(&mut self) -> usize {
        let abandoned = &mut self.abandoned;
        let bufs = &mut self.bufs;
        let mut late = Vec::new();
        let r = self.queue.poll(bufs, |c| {
            if let Some(a) = abandoned.get_mut(c.cid as usize) {
                *a = false;
            }
            late.push(c.cid);
        });
        for cid in &late {
            if let Some(b) = self.bufs.0.get_mut(*cid as usize) {
                *b = None;
            }
        }
        if let Err(e) = r {
            log::debug!("admin queue: {e}");
        }
        late.len()
    }
}
