//! Blob I/O from any thread through a per-thread channel (SPDK's
//! `spdk_bs_alloc_io_channel`): the metadata thread maps the I/O to device
//! blocks and holds its gate; the data moves on the channel's own device
//! handle on the calling thread; the gate is released after. Writes that
//! need a new cluster (thin allocation, copy-on-write) are done by the
//! metadata thread itself.
//!
//! Cost: two messages to the metadata thread and a few small allocations
//! per I/O (the mapping, the reply slot). The zero-allocation path is the
//! blobstore's own I/O on the metadata thread; caching mappings on the
//! channel (with the gate turned into a freeze message to every channel) is
//! the next step.

use std::cell::RefCell;
use std::marker::PhantomData;

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::io::Piece;
use super::service::BlobstoreHandle;
use super::store::io_err;
use super::BlobId;

/// A thread's way to do blob I/O: a device handle of this thread (the same
/// device the store is on, e.g. the same file or bdev) and the store's handle.
/// `!Send`: it belongs to the thread that made it.
pub struct BlobIoChannel<D, C: BsDev> {
    bs: BlobstoreHandle<D>,
    dev: RefCell<C>,
    unit: usize,
    _thread: PhantomData<*const ()>,
}

impl<D: BsDev + 'static, C: BsDev> BlobIoChannel<D, C> {
    /// A channel doing I/O on `dev`, which must show the same blocks as the
    /// store's device (checked: block size and count).
    pub async fn new(bs: &BlobstoreHandle<D>, dev: C) -> Result<Self> {
        let (bl, count, unit) = bs
            .run(|s| Ok((s.dev().block_len(), s.dev().block_count(), s.io_unit_size())))
            .await?;
        if (dev.block_len(), dev.block_count()) != (bl, count) {
            return Err(BlobError::InvalidArgument(format!(
                "channel device has {} blocks of {} bytes; the blobstore's has {count} of {bl}",
                dev.block_count(),
                dev.block_len()
            )));
        }
        Ok(BlobIoChannel {
            bs: bs.clone(),
            dev: RefCell::new(dev),
            unit: unit as usize,
            _thread: PhantomData,
        })
    }

    /// Reads `buf.len()` bytes at io unit `offset` of open blob `id`.
    pub async fn read(&self, id: BlobId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let Some(plan) = self.bs.plan(id, offset, buf.len(), false).await? else {
            return Err(BlobError::InvalidArgument(format!(
                "blob {id:#x}: read could not be mapped"
            )));
        };
        let r = self.run_plan(&plan, |dev, lba, range| {
            let blocks = range.len() as u64 / dev.block_len() as u64;
            let piece = &mut buf[range];
            match lba {
                Some(lba) => dev.read(lba, piece).map_err(io_err("read", lba, blocks)),
                None => {
                    piece.fill(0);
                    Ok(())
                }
            }
        });
        self.bs.release();
        r
    }

    /// Writes `buf` at io unit `offset` of open blob `id`.
    pub async fn write(&self, id: BlobId, offset: u64, buf: &[u8]) -> Result<()> {
        match self.bs.plan(id, offset, buf.len(), true).await? {
            Some(plan) => {
                let r = self.run_plan(&plan, |dev, lba, range| {
                    let blocks = range.len() as u64 / dev.block_len() as u64;
                    match lba {
                        Some(lba) => dev
                            .write(lba, &buf[range])
                            .map_err(io_err("write", lba, blocks)),
                        None => Ok(()),
                    }
                });
                self.bs.release();
                r
            }
            None => {
                let data = buf.to_vec();
                self.bs
                    .run(move |s| s.write_inner(id, offset, &data, false))
                    .await
            }
        }
    }

    fn run_plan(
        &self,
        plan: &[Piece],
        mut f: impl FnMut(&mut C, Option<u64>, std::ops::Range<usize>) -> Result<()>,
    ) -> Result<()> {
        let mut dev = self.dev.borrow_mut();
        let mut at = 0usize;
        for p in plan {
            let (lba, bytes) = match *p {
                Piece::Dev { lba, bytes } => (Some(lba), bytes),
                Piece::Zero { bytes } => (None, bytes),
            };
            f(&mut dev, lba, at..at + bytes)?;
            at += bytes;
        }
        debug_assert!(at % self.unit == 0);
        Ok(())
    }
}
