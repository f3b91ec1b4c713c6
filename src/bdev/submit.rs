//! The I/O calls of a descriptor (SPDK's `spdk_bdev_read_blocks`, ...):
//! argument checks (`submit_check`), then a pooled request through the
//! channel.
//! Every call either starts the I/O — its callback runs later, from the
//! channel's poll — or returns the data and callback in a [`Rejected`].

use super::buf::{IoBuf, IoData};
use super::channel::Channel;
use super::desc::Desc;
use super::io::{IoDone, IoId, IoType, Rejected};
use super::pool::Cb;
use super::BdevError;

/// What a submit call returns: started, or refused with everything handed back.
pub type Submitted = std::result::Result<(), Box<Rejected>>;

impl Desc {
    // The error tuple is large but only built when a submission is refused;
    // the hot path returns the small Ok.
    #[allow(clippy::result_large_err)]
    #[inline(always)]
    pub(crate) fn submit_cb(
        &self,
        ch: &Channel,
        io_type: IoType,
        off: u64,
        n: u64,
        data: IoData,
        cb: Cb,
    ) -> std::result::Result<IoId, (BdevError, IoData, Cb)> {
        if let Err(e) = self.check(&ch.0, io_type, off, n, &data) {
            return Err((e, data, cb));
        }
        // The only cost of range locks when none is held: one load of the
        // channel's own gate word, one branch.
        if ch.0.lock_local.gate.get() & io_type.bit() != 0 {
            return ch.0.start_gated(io_type, off, n, data, cb);
        }
        ch.0.start(io_type, off, n, data, cb)
    }

    /// Submits any I/O type with a callback; the typed calls below wrap it.
    // Always inlined: a typed call's constant type folds its checks away,
    // and the I/O path keeps one call frame less (as a call: about 30
    // instructions more per I/O).
    #[inline(always)]
    pub fn submit(
        &self,
        ch: &Channel,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        mut data: IoData,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        let r = self.submit_from(ch, io_type, offset_blocks, num_blocks, &mut data, cb);
        // Always taken (left `IoData::None`): nothing to drop.
        std::mem::forget(data);
        r
    }

    /// [`Desc::submit`] with the data taken out of `*data`, which is left
    /// [`IoData::None`] whatever the outcome (a refusal hands it back in
    /// the [`Rejected`]). A completion callback that submits again the
    /// buffers its completion handed back passes `&mut completion.data`:
    /// they move once, from the completion into the request, instead of
    /// once per frame they would pass through by value.
    #[inline(always)]
    pub fn submit_from(
        &self,
        ch: &Channel,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: &mut IoData,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        let c = &*ch.0;
        // The common case: checked, no lock, QoS or unsupported type in
        // the way (one word, `slow`), not split.
        if self.passes_common(c, io_type, offset_blocks, num_blocks, data)
            && !c.needs_split(io_type, offset_blocks, num_blocks)
        {
            return match c.start_whole(io_type, offset_blocks, num_blocks, data, cb) {
                Ok(_) => Ok(()),
                Err(cb) => Err(Box::new(Rejected {
                    error: BdevError::NoMem,
                    data: std::mem::take(data),
                    cb: Some(cb),
                })),
            };
        }
        let data = std::mem::take(data);
        self.submit_general(ch, io_type, offset_blocks, num_blocks, data, cb)
    }

    /// [`Desc::submit`] for everything but the common case: a refusal, a
    /// lock or QoS in the way, a split.
    #[inline(never)]
    fn submit_general(
        &self,
        ch: &Channel,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: IoData,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        match self.submit_cb(ch, io_type, offset_blocks, num_blocks, data, Cb::Done(cb)) {
            Ok(_) => Ok(()),
            Err((error, data, cb)) => Err(Box::new(Rejected {
                error,
                data,
                cb: match cb {
                    Cb::Done(c) => Some(c),
                    _ => None,
                },
            })),
        }
    }

    /// Converts a byte offset and length to blocks, checking alignment.
    pub fn bytes_to_blocks(&self, offset: u64, len: u64) -> Result<(u64, u64), BdevError> {
        let bs = self.inner.bdev.block_size() as u64;
        let bad = |what, value| BdevError::Unaligned {
            bdev: self.inner.bdev.name().into(),
            what,
            value,
            block_size: bs as u32,
        };
        if offset % bs != 0 {
            return Err(bad("offset", offset));
        }
        if len % bs != 0 {
            return Err(bad("length", len));
        }
        Ok((offset / bs, len / bs))
    }

    fn bytes(
        &self,
        ch: &Channel,
        t: IoType,
        data: IoData,
        offset: u64,
        len: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        match self.bytes_to_blocks(offset, len) {
            Ok((o, n)) => self.submit(ch, t, o, n, data, cb),
            Err(error) => Err(Box::new(Rejected {
                error,
                data,
                cb: Some(cb),
            })),
        }
    }

    /// Reads `buf.len()` bytes at byte `offset` (`spdk_bdev_read`).
    pub fn read(&self, ch: &Channel, buf: IoBuf, offset: u64, cb: Box<dyn IoDone>) -> Submitted {
        let len = buf.len() as u64;
        self.bytes(ch, IoType::Read, IoData::Buf(buf), offset, len, cb)
    }

    /// Writes `buf` at byte `offset` (`spdk_bdev_write`).
    pub fn write(&self, ch: &Channel, buf: IoBuf, offset: u64, cb: Box<dyn IoDone>) -> Submitted {
        let len = buf.len() as u64;
        self.bytes(ch, IoType::Write, IoData::Buf(buf), offset, len, cb)
    }

    /// Reads `num_blocks` at `offset_blocks` into `buf` (`spdk_bdev_read_blocks`).
    #[inline]
    pub fn read_blocks(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Read,
            offset_blocks,
            num_blocks,
            IoData::Buf(buf),
            cb,
        )
    }

    /// Writes `buf` to `num_blocks` at `offset_blocks` (`spdk_bdev_write_blocks`).
    #[inline]
    pub fn write_blocks(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Write,
            offset_blocks,
            num_blocks,
            IoData::Buf(buf),
            cb,
        )
    }

    /// Scatter read into `bufs`, in order (`spdk_bdev_readv_blocks`).
    pub fn readv_blocks(
        &self,
        ch: &Channel,
        bufs: Vec<IoBuf>,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Read,
            offset_blocks,
            num_blocks,
            IoData::Vec(bufs),
            cb,
        )
    }

    /// Gather write from `bufs`, in order (`spdk_bdev_writev_blocks`).
    pub fn writev_blocks(
        &self,
        ch: &Channel,
        bufs: Vec<IoBuf>,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Write,
            offset_blocks,
            num_blocks,
            IoData::Vec(bufs),
            cb,
        )
    }

    /// Compares `buf` with the blocks; a difference completes with
    /// `IoStatus::Miscompare` (`spdk_bdev_compare_blocks`).
    pub fn compare_blocks(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Compare,
            offset_blocks,
            num_blocks,
            IoData::Buf(buf),
            cb,
        )
    }

    /// Writes `write` only if the blocks equal `compare`
    /// (`spdk_bdev_comparev_and_writev_blocks`); never split.
    #[allow(clippy::too_many_arguments)]
    pub fn compare_and_write_blocks(
        &self,
        ch: &Channel,
        compare: IoBuf,
        write: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        let data = IoData::CompareWrite(Box::new([compare, write]));
        let max = ch.0.max_rw;
        if max != 0 && num_blocks > max {
            let error = BdevError::InvalidParam(format!(
                "compare-and-write of {num_blocks} blocks exceeds the {max}-block atomic limit of '{}'",
                self.bdev().name()
            ));
            return Err(Box::new(Rejected {
                error,
                data,
                cb: Some(cb),
            }));
        }
        self.submit(
            ch,
            IoType::CompareAndWrite,
            offset_blocks,
            num_blocks,
            data,
            cb,
        )
    }

    /// Deallocates blocks (`spdk_bdev_unmap_blocks`).
    pub fn unmap_blocks(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Unmap,
            offset_blocks,
            num_blocks,
            IoData::None,
            cb,
        )
    }

    /// Zeroes blocks without a buffer (`spdk_bdev_write_zeroes_blocks`).
    pub fn write_zeroes_blocks(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::WriteZeroes,
            offset_blocks,
            num_blocks,
            IoData::None,
            cb,
        )
    }

    /// Makes writes to the blocks durable (`spdk_bdev_flush_blocks`).
    pub fn flush_blocks(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        cb: Box<dyn IoDone>,
    ) -> Submitted {
        self.submit(
            ch,
            IoType::Flush,
            offset_blocks,
            num_blocks,
            IoData::None,
            cb,
        )
    }

    /// Resets the bdev (`spdk_bdev_reset`): every channel of the bdev, on
    /// every thread, is frozen — what it queued and had not handed to the
    /// module completes `Aborted`, and so does I/O submitted to it until
    /// the reset ends — then the module resets (with
    /// [`BdevProps::reset_io_drain_timeout`](super::BdevProps) set, only if
    /// I/O is still outstanding when that time is up), then the channels
    /// thaw and `cb` runs. A reset asked for while one runs completes with
    /// that one's status. See the `reset` file for the steps.
    pub fn reset(&self, ch: &Channel, cb: Box<dyn IoDone>) -> Submitted {
        self.submit(ch, IoType::Reset, 0, 0, IoData::None, cb)
    }
}
