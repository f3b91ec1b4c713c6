//! Blob I/O from any thread through a per-thread channel (SPDK's
//! `spdk_bs_alloc_io_channel`): the channel turns the offset into device
//! blocks through the blob's shared cluster map (`io_map`) on the
//! calling thread, and submits to its own device handle — for a bdev, this
//! thread's bdev channel — with the caller's buffer. No message, no
//! allocation per I/O. Only a write to a cluster the blob does not own yet
//! (thin provisioning's first write, copy-on-write from a snapshot) goes to
//! the metadata thread, which allocates the cluster, writes, and publishes
//! the new map. I/O on a frozen blob waits for the thaw.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::bdev::{Channel, Desc, IoBuf};

use super::alloc_batch::Need;
use super::alloc_queue::AllocQueue;
pub(crate) use super::channel_geom::Divisor;
use super::channel_geom::IdHasher;
use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::io_map::{BlobMap, Entry, Freeze, Refresh};
use super::service::BlobstoreHandle;
use super::BlobId;

/// A thread's way to do blob I/O: a device handle of this thread (the same
/// device the store is on: the same bdev, file or image) and the store's
/// handle. `!Send`: it belongs to the thread that made it.
pub struct BlobIoChannel<D, C: BsDev> {
    pub(crate) bs: BlobstoreHandle<D>,
    dev: RefCell<C>,
    /// The bdev under `dev`, if it is one: I/O goes there directly.
    pub(crate) bdev: Option<(Desc, Channel)>,
    /// The maps this channel met, by id (an `Rc` around the shared `Arc`:
    /// taking one per I/O is a plain increment).
    cache: RefCell<HashMap<BlobId, Rc<Cached>, BuildHasherDefault<IdHasher>>>,
    /// The map of the blob met last (most channels serve one blob): found
    /// without hashing.
    last: RefCell<Option<(BlobId, Rc<Cached>)>>,
    /// Bytes per io unit and per device block; io units per cluster;
    /// device blocks per io unit and per cluster.
    unit: Divisor,
    pub(crate) block: Divisor,
    upc: Divisor,
    bpu: u64,
    bpc: u64,
    /// The bdev completions of direct callback I/O, for reuse.
    pub(crate) free: super::channel_cb::DirectFree,
    /// Writes waiting for their clusters to be allocated, in batches.
    pub(crate) alloc: AllocQueue,
    _thread: PhantomData<*const ()>,
}

/// How many allocation batches a write waits for before the metadata
/// thread writes it itself (a write whose cluster was taken away again
/// between its batch and its retry, by an unmap or a snapshot, tries once
/// more; then it stops racing).
pub(crate) const ALLOC_ROUNDS: u8 = 2;

/// A channel's reference to a shared map.
pub(crate) struct Cached(Arc<BlobMap>);

impl std::ops::Deref for Cached {
    type Target = BlobMap;
    fn deref(&self) -> &BlobMap {
        &self.0
    }
}

/// Where an I/O's io units are on the device.
pub(crate) enum Run {
    /// One contiguous run from this device block.
    Dev(u64),
    /// They read as zeroes.
    Zero,
    /// Not one run: split by cluster.
    Split,
}

pub(crate) fn dev_err(op: &'static str, lba: u64, blocks: u64, e: impl ToString) -> BlobError {
    BlobError::Io {
        op,
        lba,
        blocks,
        source: std::io::Error::other(e.to_string()),
    }
}

impl<D: BsDev + 'static, C: BsDev> BlobIoChannel<D, C> {
    /// A channel doing I/O on `dev`, which must show the same blocks as the
    /// store's device (checked: block size and count).
    pub async fn new(bs: &BlobstoreHandle<D>, dev: C) -> Result<Self> {
        let (bl, count, unit, cs) = bs
            .op_with(Freeze::None, Refresh::Nothing, |s| {
                let g = (
                    s.dev().block_len(),
                    s.dev().block_count(),
                    s.io_unit_size(),
                    s.cluster_size(),
                );
                Box::pin(std::future::ready(Ok(g)))
            })
            .await?;
        if (dev.block_len(), dev.block_count()) != (bl, count) {
            return Err(BlobError::InvalidArgument(format!(
                "channel device has {} blocks of {} bytes; the blobstore's has {count} of {bl}",
                dev.block_count(),
                dev.block_len()
            )));
        }
        let bdev = dev.bdev().map(|(d, c)| (d.clone(), c.clone()));
        if bdev.is_none() && !dev.completes_inline() {
            return Err(BlobError::InvalidArgument(
                "a channel device must be a bdev or complete inline".into(),
            ));
        }
        Ok(BlobIoChannel {
            bs: bs.clone(),
            bdev,
            dev: RefCell::new(dev),
            cache: RefCell::default(),
            last: RefCell::default(),
            unit: Divisor::new(unit as u64),
            block: Divisor::new(bl as u64),
            upc: Divisor::new((cs / unit) as u64),
            bpu: (unit / bl) as u64,
            bpc: (cs / bl) as u64,
            free: Rc::default(),
            alloc: AllocQueue::default(),
            _thread: PhantomData,
        })
    }

    /// The current map of open blob `id` (from this channel's cache).
    #[inline]
    pub(crate) fn map(&self, id: BlobId) -> Result<Rc<Cached>> {
        match self.map_last(id) {
            Some(m) => Ok(m),
            None => self.map_slow(id),
        }
    }

    /// [`Self::map`] for the blob met last, if it is `id` and current: a
    /// compare and an increment, inline, with no `Result` to build.
    #[inline(always)]
    pub(crate) fn map_last(&self, id: BlobId) -> Option<Rc<Cached>> {
        match &*self.last.borrow() {
            Some((last, m)) if *last == id && !m.is_stale() => Some(m.clone()),
            _ => None,
        }
    }

    #[inline(never)]
    pub(crate) fn map_slow(&self, id: BlobId) -> Result<Rc<Cached>> {
        if let Some(m) = self.cache.borrow().get(&id) {
            if !m.is_stale() {
                *self.last.borrow_mut() = Some((id, m.clone()));
                return Ok(m.clone());
            }
        }
        let m = self.bs.maps().get(id).ok_or_else(|| {
            BlobError::InvalidArgument(format!("blob {id:#x} is not open: open it before I/O"))
        })?;
        let m = Rc::new(Cached(m));
        self.cache.borrow_mut().insert(id, m.clone());
        *self.last.borrow_mut() = Some((id, m.clone()));
        Ok(m)
    }

    #[inline]
    pub(crate) fn units(&self, id: BlobId, m: &BlobMap, offset: u64, bytes: usize) -> Result<u64> {
        if self.unit.rem(bytes as u64) != 0 || bytes == 0 {
            return Err(BlobError::InvalidArgument(format!(
                "I/O of {bytes} bytes is not a positive multiple of the io unit ({} bytes)",
                self.unit.d
            )));
        }
        let len = self.unit.div(bytes as u64);
        let size = m.clusters() * self.upc.d;
        if offset.checked_add(len).map_or(true, |end| end > size) {
            return Err(BlobError::OutOfRange {
                id,
                offset,
                len,
                size,
            });
        }
        Ok(len)
    }

    /// Where `units` io units at `offset` are on the device (`owned`: only
    /// clusters the blob owns count). An I/O within one cluster (almost
    /// every one) is one map entry, inline; a longer one is checked
    /// cluster by cluster out of line.
    #[inline(always)]
    pub(crate) fn run(&self, m: &BlobMap, offset: u64, units: u64, owned: bool) -> Run {
        let first = self.upc.div(offset);
        if first != self.upc.div(offset + units - 1) {
            return self.run_across(m, offset, units, owned);
        }
        match m.entry(first) {
            Entry::Dev { lba, owned: o } if o || !owned => {
                Run::Dev(lba + self.upc.rem(offset) * self.bpu)
            }
            Entry::Zero if !owned => Run::Zero,
            _ => Run::Split,
        }
    }

    #[inline(never)]
    fn run_across(&self, m: &BlobMap, offset: u64, units: u64, owned: bool) -> Run {
        let (first, last) = (self.upc.div(offset), self.upc.div(offset + units - 1));
        let start = match m.entry(first) {
            Entry::Zero if !owned => None,
            Entry::Dev { lba, owned: o } if o || !owned => Some(lba),
            _ => return Run::Split,
        };
        for k in first + 1..=last {
            let want = start.map(|l| l + (k - first) * self.bpc);
            let ok = match (m.entry(k), want) {
                (Entry::Zero, None) => true,
                (Entry::Dev { lba, owned: o }, Some(w)) => lba == w && (o || !owned),
                _ => false,
            };
            if !ok {
                return Run::Split;
            }
        }
        match start {
            Some(l) => Run::Dev(l + self.upc.rem(offset) * self.bpu),
            None => Run::Zero,
        }
    }

    /// For a write of `bytes` at io unit `offset` of open blob `id`: its
    /// first and last logical cluster when one of them is not the blob's
    /// own yet (an allocation batch would give it), else `None`.
    pub(crate) fn unowned(&self, id: BlobId, offset: u64, bytes: usize) -> Option<Need> {
        let m = self.map(id).ok()?;
        if m.data_ro() {
            return None;
        }
        let units = self.units(id, &m, offset, bytes).ok()?;
        let (first, last) = (self.upc.div(offset), self.upc.div(offset + units - 1));
        (first..=last)
            .any(|k| !matches!(m.entry(k), Entry::Dev { owned: true, .. }))
            .then_some((id, first, last))
    }

    async fn dev_read(&self, lba: u64, mut buf: IoBuf) -> Result<IoBuf> {
        let n = self.block.div(buf.len() as u64);
        if let Some((desc, ch)) = &self.bdev {
            let f = desc.read_blocks_async(ch, buf, lba, n);
            return f.await.map_err(|e| dev_err("read", lba, n, e));
        }
        // A device that completes inline (checked when the channel was made).
        self.dev
            .borrow_mut()
            .read(lba, &mut buf)
            .map_err(|e| dev_err("read", lba, n, e))?;
        Ok(buf)
    }

    async fn dev_write(&self, lba: u64, buf: IoBuf) -> Result<IoBuf> {
        let n = self.block.div(buf.len() as u64);
        if let Some((desc, ch)) = &self.bdev {
            let f = desc.write_blocks_async(ch, buf, lba, n);
            return f.await.map_err(|e| dev_err("write", lba, n, e));
        }
        self.dev
            .borrow_mut()
            .write(lba, &buf)
            .map_err(|e| dev_err("write", lba, n, e))?;
        Ok(buf)
    }

    /// Reads `buf.len()` bytes at io unit `offset` of open blob `id` into
    /// `buf`, which comes back filled.
    pub async fn read(&self, id: BlobId, offset: u64, buf: IoBuf) -> Result<IoBuf> {
        loop {
            let m = self.map(id)?;
            let units = self.units(id, &m, offset, buf.len())?;
            if !m.enter() {
                m.thawed().await;
                continue;
            }
            let r = self.read_mapped(&m, offset, units, buf).await;
            m.exit();
            return r;
        }
    }

    async fn read_mapped(
        &self,
        m: &BlobMap,
        offset: u64,
        units: u64,
        mut buf: IoBuf,
    ) -> Result<IoBuf> {
        match self.run(m, offset, units, false) {
            Run::Dev(lba) => self.dev_read(lba, buf).await,
            Run::Zero => {
                buf.fill(0);
                Ok(buf)
            }
            Run::Split => {
                // Spans clusters that are not one run: cluster by cluster.
                let (mut off, end) = (offset, offset + units);
                while off < end {
                    let n = (self.upc.d - self.upc.rem(off)).min(end - off);
                    let at = ((off - offset) * self.unit.d) as usize;
                    let part = IoBuf::new((n * self.unit.d) as usize);
                    let part = Box::pin(self.read_mapped(m, off, n, part)).await?;
                    buf[at..at + part.len()].copy_from_slice(&part);
                    off += n;
                }
                Ok(buf)
            }
        }
    }

    /// Writes `buf` at io unit `offset` of open blob `id`; `buf` comes back.
    /// A write to clusters the blob does not own yet waits for a batch of
    /// this channel to allocate them (`alloc_queue`), then goes to the
    /// device like any other.
    pub async fn write(&self, id: BlobId, offset: u64, buf: IoBuf) -> Result<IoBuf> {
        let mut rounds = ALLOC_ROUNDS;
        let mut failed: super::alloc_queue::Outcome = None;
        loop {
            let m = self.map(id)?;
            if m.data_ro() {
                return Err(BlobError::ReadOnly(id));
            }
            let units = self.units(id, &m, offset, buf.len())?;
            if !m.enter() {
                m.thawed().await;
                continue;
            }
            if let Run::Dev(lba) = self.run(&m, offset, units, true) {
                let r = self.dev_write(lba, buf).await;
                m.exit();
                return r;
            }
            m.exit();
            if let Some(need) = self.unowned(id, offset, buf.len()) {
                if let Some(e) = failed {
                    return Err(e.duplicate());
                }
                if rounds > 0 {
                    rounds -= 1;
                    failed = self.alloc.allocate(&self.bs, need).await;
                    continue;
                }
            }
            // Clusters the blob owns that are not one run on the device (or
            // still not its own after every round): the metadata thread
            // writes it piece by piece, allocating what it must.
            return self
                .bs
                .op_with(Freeze::None, Refresh::Logged, move |bs| {
                    Box::pin(async move { bs.write_async(id, offset, buf).await })
                })
                .await;
        }
    }

    /// Unmaps `len` io units of open blob `id` (on the metadata thread).
    pub async fn unmap(&self, id: BlobId, offset: u64, len: u64) -> Result<()> {
        self.bs
            .op(Freeze::None, move |bs| {
                Box::pin(bs.unmap_async(id, offset, len))
            })
            .await
    }

    /// Makes `len` io units of open blob `id` read as zeroes (on the metadata thread).
    pub async fn write_zeroes(&self, id: BlobId, offset: u64, len: u64) -> Result<()> {
        self.bs
            .op(Freeze::None, move |bs| {
                Box::pin(bs.write_zeroes_async(id, offset, len))
            })
            .await
    }
}
