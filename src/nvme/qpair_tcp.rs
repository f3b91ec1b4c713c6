//! The NVMe/TCP side of a [`QPair`]: commands are placed in the SQ ring as
//! over PCIe (the submission code is shared), and the qpair's own poll
//! hands the new ones to its connection, sends them with one `sendmsg`,
//! reads what arrived and completes commands through the same request
//! slots, callbacks and tags as PCIe. Data is sent from, and received
//! into, the buffers the requests own; a child of a split I/O uses its
//! parent's buffer at its offset.

use super::buffer::{DmaSlice, IoBuf};
use super::controller::CtrlrInner;
use super::qpair::{QPair, QPairOpts};
use super::queue::{CqRing, Doorbell, SqRing};
use super::request::RequestPool;
use super::spec::{Cqe, NvmOpcode, Sqe};
use super::stat::PcieStat;
use super::tcp::{CommandBuffers, TcpQueue};
use super::transport::Transport;
use super::NvmeError;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Where a command's data lives.
#[derive(Debug, Clone, Copy)]
enum Src {
    /// No data.
    None,
    /// The buffer of request `owner` (itself, or the parent of a split I/O)
    /// from byte `base`.
    Buf { owner: u16, base: u32 },
    /// The request's own page (Dataset Management ranges).
    Page,
    /// The bytes request `owner` borrowed from the caller (a tagged I/O),
    /// from byte `base`.
    Lent { owner: u16, base: u32 },
}

/// The connection of an NVMe/TCP queue pair and its per-command state.
pub(crate) struct TcpIo {
    pub(crate) queue: TcpQueue,
    /// SQ index up to which commands were handed to the connection.
    pub(crate) sent: u16,
    src: Vec<Src>,
    /// Completions read but not yet delivered (a poll delivers at most its
    /// `max`); capacity preallocated: no allocation per I/O.
    pub(crate) cqes: Vec<Cqe>,
    /// (NSID, log2 of the block size) of the namespaces at creation (or
    /// at the last reconnect).
    pub(crate) shifts: Vec<(u32, u32)>,
    /// Set when the connection failed: the controller generation it was
    /// lost under (or the last reconnect attempt failed under); cleared
    /// by a reconnect.
    pub(crate) disconnected: Option<u64>,
}

/// The request slots as the connection sees them (a TCP pool's CIDs are
/// its slot indexes: [`RequestPool::new`] without generations).
struct PoolBufs<'a> {
    reqs: &'a mut RequestPool,
    src: &'a [Src],
}

/// The slice index and starting byte of segment `i` of a buffer's
/// segments after skipping `base` bytes.
fn locate(segs: &[DmaSlice], base: usize, i: usize) -> Option<(usize, usize)> {
    let mut skip = base;
    let mut j = 0;
    while skip > 0 && skip >= segs.get(j)?.len() {
        skip -= segs[j].len();
        j += 1;
    }
    let k = j + i;
    (k < segs.len()).then_some((k, if i == 0 { skip } else { 0 }))
}

impl CommandBuffers for PoolBufs<'_> {
    fn segment(&self, cid: u16, i: usize) -> Option<&[u8]> {
        match *self.src.get(cid as usize)? {
            Src::None => None,
            Src::Page => (i == 0).then(|| self.reqs.page_bytes(cid)).flatten(),
            Src::Buf { owner, base } => {
                let segs = self.reqs.buf(owner)?.segments();
                let (k, start) = locate(segs, base as usize, i)?;
                Some(&segs[k].as_slice()[start..])
            }
            Src::Lent { owner, base } => {
                let (ptr, len) = self.reqs.lent(owner)?;
                if i != 0 || ptr.is_null() || base as usize > len {
                    return None;
                }
                // SAFETY: `QPair::rw_tagged`'s contract keeps these `len`
                // bytes allocated and untouched by the caller until the
                // tag is reported or the qpair is shut down (which closes
                // the connection first, so no later call gets here).
                Some(unsafe {
                    std::slice::from_raw_parts(ptr.add(base as usize), len - base as usize)
                })
            }
        }
    }
    fn segment_mut(&mut self, cid: u16, i: usize) -> Option<&mut [u8]> {
        let (owner, base) = match *self.src.get(cid as usize)? {
            Src::Buf { owner, base } => (owner, base),
            Src::Lent { owner, base } => {
                let (ptr, len) = self.reqs.lent(owner)?;
                if i != 0 || ptr.is_null() || base as usize > len {
                    return None;
                }
                // SAFETY: as in `segment`: the caller of `rw_tagged` lent
                // these bytes for the device (here: the connection) to
                // write, and neither reads nor writes them until the tag
                // is reported; no other reference to them exists here.
                return Some(unsafe {
                    std::slice::from_raw_parts_mut(ptr.add(base as usize), len - base as usize)
                });
            }
            Src::None | Src::Page => return None,
        };
        let buf = self.reqs.buf_mut(owner)?;
        let (k, start) = locate(buf.segments(), base as usize, i)?;
        let seg = match buf {
            IoBuf::None => return None,
            IoBuf::Single(s) => s,
            IoBuf::Vectored(v) => &mut v[k],
        };
        Some(&mut seg.as_mut_slice()[start..])
    }
}

impl QPair {
    /// An I/O queue pair over NVMe/TCP: its own connection, Fabrics
    /// Connect with the controller's ID, and the same request pool as PCIe.
    pub(crate) fn new_tcp(
        c: &Arc<CtrlrInner>,
        qid: u16,
        entries: u16,
        nreq: u16,
        opts: QPairOpts,
    ) -> Result<QPair, NvmeError> {
        let Transport::Tcp(t) = &c.transport else {
            return Err(NvmeError::Unsupported("not an NVMe/TCP controller".into()));
        };
        let generation = c.generation.load(Ordering::Acquire);
        if generation % 2 == 1 {
            return Err(NvmeError::ControllerUnavailable);
        }
        let queue = t.connect_io_queue(qid, entries, c.opts.admin_timeout)?;
        let shifts = c
            .namespaces
            .read()
            .unwrap()
            .values()
            .map(|ns| (ns.id, ns.lba_shift))
            .collect();
        Ok(QPair {
            ctrlr: c.clone(),
            qid,
            sq: SqRing::new(entries, Doorbell::local()?)?,
            cq: CqRing::new(entries, Doorbell::local()?)?,
            // The connection indexes its commands by CID: no generations.
            pool: RequestPool::new(nreq, false)?,
            push_ring: super::qpair::push_ring(&opts),
            next_timeout_check: opts.timeout.map(|_| Instant::now()),
            opts,
            generation,
            max_xfer: c.max_xfer,
            // SGL descriptors are built and then replaced: no PRP alignment rules.
            sgls: 1,
            outstanding: 0,
            timeout_cb: None,
            stat: PcieStat::default(),
            stalled_polls: 0,
            stall_clock: None,
            kicked_at: None,
            shut_down: None,
            tcp: Some(Box::new(TcpIo {
                queue,
                sent: 0,
                src: vec![Src::None; nreq as usize],
                cqes: Vec::with_capacity(entries as usize),
                shifts,
                disconnected: None,
            })),
            _not_send: PhantomData,
        })
    }

    /// Bytes and direction of the command in `sqe` and where its data is.
    fn tcp_data(&self, sqe: &Sqe, shifts: &[(u32, u32)]) -> Result<(u32, bool, Src), String> {
        let cid = sqe.cid();
        let (owner, base) = self
            .pool
            .data_owner(cid)
            .ok_or_else(|| format!("command {cid} is not outstanding"))?;
        let opc = sqe.opc();
        let rw = [NvmOpcode::Read, NvmOpcode::Write, NvmOpcode::Compare];
        if rw.iter().any(|o| *o as u8 == opc) {
            let shift = shifts
                .iter()
                .find(|(id, _)| *id == sqe.nsid)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    format!(
                        "namespace {} was not known when the qpair was made",
                        sqe.nsid
                    )
                })?;
            let len = ((sqe.cdw12 & 0xffff) + 1) << shift;
            let has_buf = self
                .pool
                .buf(owner)
                .is_some_and(|b| !matches!(b, IoBuf::None));
            let src = if has_buf {
                Src::Buf { owner, base }
            } else if self.pool.lent(owner).is_some_and(|l| !l.0.is_null()) {
                Src::Lent { owner, base }
            } else {
                return Err("a read or write without a buffer".into());
            };
            return Ok((len, opc != NvmOpcode::Read as u8, src));
        }
        if opc == NvmOpcode::DatasetManagement as u8 {
            return Ok((((sqe.cdw10 & 0xff) + 1) * 16, true, Src::Page));
        }
        let len = self.pool.buf(owner).map_or(0, IoBuf::len) as u32;
        if len == 0 {
            return Ok((0, false, Src::None));
        }
        match opc & 3 {
            1 => Ok((len, true, Src::Buf { owner, base })),
            2 => Ok((len, false, Src::Buf { owner, base })),
            _ => Err(format!(
                "opcode {opc:#x} moves data both ways; not supported"
            )),
        }
    }

    /// Hands the commands pushed since the last call to the connection.
    /// A command that cannot go over TCP completes with an error status.
    fn tcp_pump(&mut self) -> Result<(), NvmeError> {
        let Some(mut t) = self.tcp.take() else {
            return Ok(());
        };
        let r = (|| {
            while t.sent != self.sq.tail() {
                let sqe = self.sq.read(t.sent);
                t.sent = (t.sent + 1) % self.sq.entries();
                let cid = sqe.cid();
                match self.tcp_data(&sqe, &t.shifts) {
                    Ok((len, write, src)) => {
                        t.src[cid as usize] = src;
                        let bufs = PoolBufs {
                            reqs: &mut self.pool,
                            src: &t.src,
                        };
                        t.queue.submit(sqe, len, write, &bufs)?;
                    }
                    Err(why) => {
                        log::error!("qpair {}: command {cid}: {why}", self.qid);
                        // Invalid Field in Command, Do Not Retry.
                        let status = (0x02 << 1) | (1 << 15);
                        t.cqes.push(Cqe {
                            dw0: 0,
                            dw1: 0,
                            sqhd: 0,
                            sqid: self.qid,
                            cid,
                            status,
                        });
                    }
                }
            }
            self.sq.head = t.sent;
            let bufs = PoolBufs {
                reqs: &mut self.pool,
                src: &t.src,
            };
            t.queue.flush(&bufs)
        })();
        self.tcp = Some(t);
        r.map_err(|e| NvmeError::Tcp(Box::new(e)))
    }

    /// Sends what was submitted since the last poll ([`QPair::flush`]).
    pub(crate) fn tcp_send(&mut self) {
        if let Err(e) = self.tcp_pump() {
            log::error!("qpair {}: {e}", self.qid);
        }
    }

    /// The poll of an NVMe/TCP queue pair: send, receive, complete, and
    /// send what the completions submitted. A failed connection fails
    /// every command in flight once ([`NvmeError::ConnectionLost`]) and
    /// leaves the queue pair disconnected until a controller reset
    /// (`qpair_tcp_reconnect.rs`).
    #[inline(never)]
    pub(crate) fn reap_tcp<H>(&mut self, max: usize, on_tag: &mut H) -> Result<usize, NvmeError>
    where
        H: FnMut(u64, Result<(), NvmeError>),
    {
        let mut r = self.tcp_pump();
        let mut cqes = Vec::new();
        let limit = if max == 0 { usize::MAX } else { max };
        if r.is_ok() {
            let mut t = self.tcp.take().expect("a TCP qpair");
            cqes = std::mem::take(&mut t.cqes);
            // Completions left over from a poll limited by `max` go first;
            // the socket is read only when they do not fill this one.
            if cqes.len() < limit {
                let mut bufs = PoolBufs {
                    reqs: &mut self.pool,
                    src: &t.src,
                };
                r = t
                    .queue
                    .poll(&mut bufs, |c| cqes.push(c))
                    .map(|_| ())
                    .map_err(|e| NvmeError::Tcp(Box::new(e)));
            }
            self.tcp = Some(t);
        }
        // When the connection failed, what it completed before is
        // delivered now, beyond `max`; everything else fails below.
        let n = if r.is_err() {
            cqes.len()
        } else {
            cqes.len().min(limit)
        };
        for cqe in cqes.drain(..n) {
            self.complete_cqe(cqe, on_tag);
        }
        if let Some(t) = self.tcp.as_mut() {
            t.cqes = cqes;
        }
        self.stat.polls += 1;
        self.stat.completions += n as u64;
        if n == 0 {
            self.stat.idle_polls += 1;
        }
        if r.is_ok() {
            r = self.tcp_pump();
        }
        if let Err(e) = r {
            log::error!("qpair {}: {e}; failing its I/O", self.qid);
            let failed = self.tcp_disconnect(on_tag);
            return if n + failed > 0 {
                Ok(n + failed)
            } else {
                Err(e)
            };
        }
        if self.next_timeout_check.is_some() {
            self.check_timeouts(on_tag)?;
        }
        Ok(n)
    }
}
