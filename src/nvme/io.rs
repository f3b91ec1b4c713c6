//! NVM I/O commands on a [`QPair`]: read, write, compare (optionally
//! vectored), flush, write zeroes and deallocate.
//!
//! Every call validates its arguments (namespace range, length, buffer size
//! and alignment) and either queues the command(s) or returns the buffer in a
//! [`SubmitError`] (checks and queueing are in `submit.rs`). An I/O larger than the controller's maximum transfer size
//! (MDTS) is **split transparently** into child commands at LBA boundaries;
//! its callback runs once, after the last child, with the first error if any.

use super::buffer::{DmaSlice, IoBuf, IoCompletion, SubmitError};
use super::callback::Callback;
use super::namespace::Namespace;
use super::prp::{self, DmaRange, Segment};
use super::qpair::QPair;
use super::request::{Notify, OverBuf};
use super::spec::command::{DsmRange, DSM_ATTR_DEALLOCATE};
use super::spec::{NvmOpcode, Sqe};
use super::NvmeError;
use crate::env::DmaBuf;
use std::ops::Range;

/// Human name of an NVM opcode, for errors.
pub(crate) fn nvm_name(opc: u8) -> &'static str {
    match opc {
        0x00 => "Flush",
        0x01 => "Write",
        0x02 => "Read",
        0x05 => "Compare",
        0x08 => "Write Zeroes",
        0x09 => "Dataset Management",
        _ => "I/O command",
    }
}

/// Most ranges in one Dataset Management command.
pub const MAX_DSM_RANGES: usize = 256;

use super::submit::reject;

impl QPair {
    /// Reads `lba_count` blocks at `lba` into `buf` (at least that long).
    pub fn read<F>(
        &mut self,
        ns: &Namespace,
        buf: impl Into<DmaSlice>,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        self.submit_rw(
            ns,
            NvmOpcode::Read,
            IoBuf::Single(buf.into()),
            lba,
            lba_count,
            cb,
        )
    }

    /// Writes `lba_count` blocks at `lba` from `buf` (at least that long).
    pub fn write<F>(
        &mut self,
        ns: &Namespace,
        buf: impl Into<DmaSlice>,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        self.submit_rw(
            ns,
            NvmOpcode::Write,
            IoBuf::Single(buf.into()),
            lba,
            lba_count,
            cb,
        )
    }

    /// Compares `lba_count` blocks at `lba` with `buf`; a mismatch completes
    /// with the media status "Compare Failure".
    pub fn compare<F>(
        &mut self,
        ns: &Namespace,
        buf: impl Into<DmaSlice>,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        let buf = IoBuf::Single(buf.into());
        if !ns.supports_compare {
            return Err(reject(
                NvmeError::Unsupported("Compare (ONCS bit 0)".into()),
                buf,
            ));
        }
        self.submit_rw(ns, NvmOpcode::Compare, buf, lba, lba_count, cb)
    }

    /// Vectored read into `segs` in order; their total length must equal
    /// `lba_count` blocks and each must be a multiple of the block size.
    pub fn readv<F>(
        &mut self,
        ns: &Namespace,
        segs: Vec<DmaSlice>,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        self.submit_rw(
            ns,
            NvmOpcode::Read,
            IoBuf::Vectored(segs),
            lba,
            lba_count,
            cb,
        )
    }

    /// Vectored write from `segs` (same rules as [`readv`](Self::readv)).
    pub fn writev<F>(
        &mut self,
        ns: &Namespace,
        segs: Vec<DmaSlice>,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        self.submit_rw(
            ns,
            NvmOpcode::Write,
            IoBuf::Vectored(segs),
            lba,
            lba_count,
            cb,
        )
    }

    /// Flush: commits the volatile write cache of the namespace.
    pub fn flush_ns<F>(&mut self, ns: &Namespace, cb: F) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        let sqe = Sqe::new(NvmOpcode::Flush as u8, ns.id);
        self.submit_nodata(sqe, Notify::Call(Callback::new(cb)))
    }

    /// Write Zeroes over `lba_count` blocks at `lba` (split at 65536 blocks).
    pub fn write_zeroes<F>(
        &mut self,
        ns: &Namespace,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        if !ns.supports_write_zeroes {
            return Err(reject(
                NvmeError::Unsupported("Write Zeroes (ONCS bit 3)".into()),
                IoBuf::None,
            ));
        }
        self.check_range(ns, lba, lba_count as u64)
            .map_err(|e| reject(e, IoBuf::None))?;
        let mut sqe = Sqe::new(NvmOpcode::WriteZeroes as u8, ns.id);
        if lba_count <= 65536 {
            sqe.set_slba(lba);
            sqe.cdw12 = lba_count - 1;
            return self.submit_nodata(sqe, Notify::Call(Callback::new(cb)));
        }
        let chunks = lba_count.div_ceil(65536) as usize;
        self.submit_split(sqe, IoBuf::None, lba, lba_count, 65536, chunks, false, cb)
    }

    /// Dataset Management with the Deallocate attribute over up to 256
    /// `(lba, lba_count)` ranges (SPDK's `spdk_nvme_ns_cmd_dataset_management`).
    pub fn deallocate<F>(
        &mut self,
        ns: &Namespace,
        ranges: &[(u64, u32)],
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        let none = || IoBuf::None;
        if !ns.supports_dsm {
            return Err(reject(
                NvmeError::Unsupported("Dataset Management (ONCS bit 2)".into()),
                none(),
            ));
        }
        if ranges.is_empty() || ranges.len() > MAX_DSM_RANGES {
            return Err(reject(
                NvmeError::InvalidArgument(format!(
                    "{} deallocate ranges: give 1..={MAX_DSM_RANGES}",
                    ranges.len()
                )),
                none(),
            ));
        }
        for &(lba, n) in ranges {
            self.check_range(ns, lba, n as u64)
                .map_err(|e| reject(e, none()))?;
        }
        let mut sqe = Sqe::new(NvmOpcode::DatasetManagement as u8, ns.id);
        sqe.cdw10 = ranges.len() as u32 - 1;
        sqe.cdw11 = DSM_ATTR_DEALLOCATE;
        // The ranges live in the request's own DMA page.
        let fill = |_: &IoBuf, page: &mut [u8], page_iova: u64| {
            for (i, &(lba, n)) in ranges.iter().enumerate() {
                let d = DsmRange {
                    cattr: 0,
                    nlb: n,
                    slba: lba,
                };
                page[i * 16..i * 16 + 16].copy_from_slice(super::spec::as_bytes(&d));
            }
            Ok(prp::Dptr {
                prp1: page_iova,
                ..prp::NO_DPTR
            })
        };
        self.submit_one(sqe, &mut none(), || Notify::Call(Callback::new(cb)), fill)
            .map_err(|e| reject(e, none()))
    }

    /// Raw I/O command passthrough (SPDK's `spdk_nvme_ctrlr_cmd_io_raw`):
    /// the driver fills in CID and the data pointer (PRPs over all of `buf`);
    /// everything else, NSID included, is taken as given and not validated.
    pub fn submit_raw<F>(&mut self, sqe: Sqe, mut buf: IoBuf, cb: F) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        let len = buf.len();
        if len > self.max_xfer {
            return Err(reject(
                NvmeError::InvalidArgument(format!(
                    "raw command moves {len} bytes, more than the {} a command may (MDTS)",
                    self.max_xfer
                )),
                buf,
            ));
        }
        let build = OverBuf {
            len,
            sgls: self.sgls,
        };
        match self.submit_one(sqe, &mut buf, || Notify::Call(Callback::new(cb)), build) {
            Ok(()) => Ok(()),
            Err(e) => Err(reject(e, buf)),
        }
    }

    #[inline(always)]
    fn submit_rw<F>(
        &mut self,
        ns: &Namespace,
        opc: NvmOpcode,
        mut buf: IoBuf,
        lba: u64,
        lba_count: u32,
        cb: F,
    ) -> Result<(), SubmitError>
    where
        F: FnOnce(&mut QPair, IoCompletion) + 'static,
    {
        if let Err(e) = self.check_range(ns, lba, lba_count as u64) {
            return Err(reject(e, buf));
        }
        let bytes = (lba_count as usize) << ns.lba_shift;
        let have = buf.len();
        if have < bytes {
            return Err(reject(NvmeError::BufferTooShort { need: bytes, have }, buf));
        }
        if let IoBuf::Vectored(v) = &buf {
            let bs = ns.block_size as usize;
            if have != bytes || v.iter().any(|s| s.len() % bs != 0) {
                return Err(reject(
                    NvmeError::InvalidArgument(format!(
                        "vectored I/O of {lba_count} blocks of {bs} bytes: segments must total \
                         {bytes} bytes and each be a multiple of {bs} (got {have} bytes in {} segments)",
                        v.len()
                    )),
                    buf,
                ));
            }
        }
        let per = (self.max_xfer >> ns.lba_shift).max(1) as u32;
        let mut sqe = Sqe::new(opc as u8, ns.id);
        if lba_count > per {
            let chunks = lba_count.div_ceil(per) as usize;
            let bpb = 1usize << ns.lba_shift;
            return match self.split_commands(sqe, buf.segments(), lba, lba_count, per, chunks, bpb)
            {
                Ok(parent) => {
                    let mut buf = buf;
                    self.arm_split(parent, &mut buf, Notify::Call(Callback::new(cb)));
                    Ok(())
                }
                Err(e) => Err(reject(e, buf)),
            };
        }
        sqe.set_slba(lba);
        sqe.cdw12 = lba_count - 1;
        let build = OverBuf {
            len: bytes,
            sgls: self.sgls,
        };
        match self.submit_one(sqe, &mut buf, || Notify::Call(Callback::new(cb)), build) {
            Ok(()) => {
                // The request took the buffer: `buf` is IoBuf::None, which
                // owns nothing (forgetting it skips an out-of-line drop).
                debug_assert!(matches!(buf, IoBuf::None));
                std::mem::forget(buf);
                Ok(())
            }
            Err(e) => Err(reject(e, buf)),
        }
    }

    /// Queues the tagged command (or, past the maximum transfer size, the
    /// child commands under a parent) moving `bytes` of `segs` for
    /// `lba_count` blocks at `lba`, and returns its request and whether it
    /// was split (a single command is armed with `tag` here; a parent is
    /// armed by the caller). The range and the buffer's length were
    /// checked by the caller; the doorbell is not rung.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn rw_commands<S: Segment>(
        &mut self,
        ns: &Namespace,
        opc: NvmOpcode,
        segs: &[S],
        bytes: usize,
        lba: u64,
        lba_count: u32,
        tag: u64,
    ) -> Result<(u16, bool), NvmeError> {
        let mut sqe = Sqe::new(opc as u8, ns.id);
        let per = (self.max_xfer >> ns.lba_shift).max(1) as u32;
        if lba_count > per {
            let chunks = lba_count.div_ceil(per) as usize;
            let bpb = 1usize << ns.lba_shift;
            let parent = self.split_commands(sqe, segs, lba, lba_count, per, chunks, bpb)?;
            return Ok((parent, true));
        }
        self.check_usable()?;
        let sgls = self.sgls;
        let Some((cid, page, page_iova)) = self.pool.alloc_with_page(opc as u8, Notify::Tag(tag))
        else {
            return Err(NvmeError::QueueFull);
        };
        let p = match prp::build_dptr(segs, 0, bytes, page, page_iova, sgls) {
            Ok(p) => p,
            Err(e) => {
                self.pool.release(cid);
                return Err(e);
            }
        };
        sqe.prp1 = p.prp1;
        sqe.prp2 = p.prp2;
        sqe.set_psdt(p.psdt);
        sqe.set_slba(lba);
        sqe.cdw12 = lba_count - 1;
        self.push(cid, sqe);
        Ok((cid, false))
    }

    /// Reads, writes or compares `lba_count` blocks at `lba` with the bytes
    /// `range` of a DMA buffer the caller keeps (SPDK's way: the command
    /// borrows the memory, nothing moves), and completes by
    /// `on_tag(tag, result)` in [`QPair::process_completions_tagged`]
    /// instead of a callback: no buffer hand-over, no stored closure. The
    /// fast path for a layer that already owns its requests' buffers. An
    /// I/O larger than the maximum transfer size is split as for
    /// [`QPair::read`]; its tag is reported once.
    ///
    /// Errors (nothing was queued, the tag will not be reported): the same
    /// checks as [`QPair::read`], and `range` must lie within `buf`.
    ///
    /// # Safety
    /// From this call until the tag is reported, or until [`QPair::shutdown`]
    /// (or dropping the qpair) returned `true`, the device may read and
    /// write those bytes: the caller must keep `buf` allocated and must not
    /// read or write the bytes of a read (nor write those of a write or
    /// compare). When `shutdown` returns `false` the device may still use
    /// them at any time: the caller must then never free `buf`.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub unsafe fn rw_tagged(
        &mut self,
        ns: &Namespace,
        op: RwOp,
        buf: &DmaBuf,
        range: Range<usize>,
        lba: u64,
        lba_count: u32,
        tag: u64,
    ) -> Result<(), NvmeError> {
        let opc = match op {
            RwOp::Read => NvmOpcode::Read,
            RwOp::Write => NvmOpcode::Write,
            RwOp::Compare if ns.supports_compare => NvmOpcode::Compare,
            RwOp::Compare => return Err(NvmeError::Unsupported("Compare (ONCS bit 0)".into())),
        };
        self.check_range(ns, lba, lba_count as u64)?;
        super::buffer::check_window(&range, buf.len())?;
        let bytes = (lba_count as usize) << ns.lba_shift;
        let have = range.end - range.start;
        if have < bytes {
            return Err(NvmeError::BufferTooShort { need: bytes, have });
        }
        let seg = DmaRange {
            buf,
            start: range.start,
            len: bytes,
        };
        let (cid, split) = self.rw_commands(
            ns,
            opc,
            std::slice::from_ref(&seg),
            bytes,
            lba,
            lba_count,
            tag,
        )?;
        if self.tcp.is_some() {
            // The connection moves the bytes itself: it needs their address.
            let start = buf.as_ptr().wrapping_add(range.start).cast_mut();
            self.pool.lend(cid, start, bytes);
        }
        if split {
            // A single command was armed with its tag when it was taken.
            self.pool.arm_tagged(cid, tag, opc as u8);
        }
        self.outstanding += 1;
        self.after_push();
        Ok(())
    }
}

/// The data command of [`QPair::rw_tagged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RwOp {
    /// Read from the namespace into the buffer.
    Read,
    /// Write the buffer to the namespace.
    Write,
    /// Compare the buffer with the namespace (a mismatch completes with the
    /// media status "Compare Failure").
    Compare,
}
