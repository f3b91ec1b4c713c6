//! The argument checks of a submission (SPDK's `bdev_io_valid_blocks`
//! and friends): one pass of plain tests on the I/O path, each failure
//! named out of line.

use super::buf::IoData;
use super::channel::ChannelInner;
use super::desc::Desc;
use super::io::IoType;
use super::BdevError;
use std::sync::Arc;

/// Whether `data` moves `want` bytes. Always inlined: as a closure it
/// was a call per I/O.
#[inline(always)]
fn len_is(data: &IoData, want: u64) -> bool {
    match data {
        // The common case spelled out: the general length sums a vector.
        IoData::Buf(b) => b.len() as u64 == want,
        IoData::CompareWrite(b) => b[0].len() as u64 == want && b[1].len() as u64 == want,
        d => d.len() == want,
    }
}

impl Desc {
    /// Checks a submission: the channel's bdev, the descriptor's write
    /// permission, the type, the range, the data's length, removal. One
    /// pass of plain tests; the error, when there is one, is built out of
    /// line ([`Desc::check_failed`]).
    #[inline(always)]
    pub(crate) fn check(
        &self,
        ch: &ChannelInner,
        io_type: IoType,
        off: u64,
        n: u64,
        data: &IoData,
    ) -> Result<(), BdevError> {
        if self.passes(ch, io_type, off, n, data) {
            return Ok(());
        }
        Err(self.check_failed(ch, io_type, off, n, data))
    }

    /// The tests of [`Desc::check`], as one answer.
    #[inline(always)]
    fn passes(&self, ch: &ChannelInner, io_type: IoType, off: u64, n: u64, data: &IoData) -> bool {
        let bdev = &self.inner.bdev;
        Arc::ptr_eq(&ch.bdev, bdev)
            && (self.inner.write || !io_type.is_write())
            && ch.supported & io_type.bit() != 0
            && (io_type == IoType::Reset
                || (n != 0 && off.checked_add(n).is_some_and(|e| e <= bdev.num_blocks())))
            && (!io_type.has_data() || len_is(data, n * ch.block_size as u64))
            && !bdev.is_removed()
    }

    /// What [`Desc::check`] refused, as an error naming the bdev.
    #[cold]
    #[inline(never)]
    fn check_failed(
        &self,
        ch: &ChannelInner,
        io_type: IoType,
        off: u64,
        n: u64,
        data: &IoData,
    ) -> BdevError {
        match self.check_each(ch, io_type, off, n, data) {
            Err(e) => e,
            // The bdev was removed, or changed, between the two looks.
            Ok(()) => BdevError::InvalidParam(format!(
                "'{}': the submission was refused, then passed on a second look; submit it again",
                self.inner.bdev.name()
            )),
        }
    }

    /// [`Desc::check`] one test at a time, each failure with its error.
    fn check_each(
        &self,
        ch: &ChannelInner,
        io_type: IoType,
        off: u64,
        n: u64,
        data: &IoData,
    ) -> Result<(), BdevError> {
        let bdev = &self.inner.bdev;
        if !Arc::ptr_eq(&ch.bdev, bdev) {
            return Err(BdevError::WrongChannel {
                desc: bdev.name().into(),
                channel: ch.bdev.name().into(),
            });
        }
        if io_type.is_write() && !self.inner.write {
            return Err(BdevError::ReadOnly {
                bdev: bdev.name().into(),
                io_type,
            });
        }
        if ch.supported & io_type.bit() == 0 {
            return Err(BdevError::Unsupported {
                bdev: bdev.name().into(),
                io_type,
            });
        }
        let blocks = bdev.num_blocks();
        if io_type != IoType::Reset && (n == 0 || off.checked_add(n).map_or(true, |e| e > blocks)) {
            return Err(BdevError::OutOfRange {
                bdev: bdev.name().into(),
                offset_blocks: off,
                num_blocks: n,
                bdev_blocks: blocks,
            });
        }
        if io_type.has_data() {
            let want = n * ch.block_size as u64;
            let ok = match data {
                // The common case spelled out: the general length sums a vector.
                IoData::Buf(b) => b.len() as u64 == want,
                IoData::CompareWrite(b) => b[0].len() as u64 == want && b[1].len() as u64 == want,
                d => d.len() == want,
            };
            if !ok {
                return Err(BdevError::BufferLength {
                    want,
                    got: data.len(),
                });
            }
        }
        if bdev.is_removed() {
            return Err(BdevError::Removed(bdev.name().into()));
        }
        Ok(())
    }

    /// The tests of [`Desc::passes`] for the common path, with the
    /// channel's supported types, locks and QoS read as one word.
    #[inline(always)]
    pub(crate) fn passes_common(
        &self,
        ch: &ChannelInner,
        io_type: IoType,
        off: u64,
        n: u64,
        data: &IoData,
    ) -> bool {
        let bdev = &self.inner.bdev;
        Arc::ptr_eq(&ch.bdev, bdev)
            && (self.inner.write || !io_type.is_write())
            && ch.lock_local.slow.get() & io_type.bit() == 0
            && (io_type == IoType::Reset
                || (n != 0 && off.checked_add(n).is_some_and(|e| e <= bdev.num_blocks())))
            && (!io_type.has_data() || len_is(data, n * ch.block_size as u64))
            && !bdev.is_removed()
    }
}
