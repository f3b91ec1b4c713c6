//! The blobstore object: geometry, the in-memory maps, device page I/O,
//! cluster and md-page allocation, init, unload, super blob and grow.

use std::collections::BTreeMap;

use super::bitmap::BitArray;
use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::format::super_block::{BLOBID_INVALID, VERSION};
use super::format::{MaskKind, MaskPage, SuperBlock, PAGE_SIZE};
use super::md::BlobMd;
use super::BlobId;

/// High bit of every blob id: id = (1 << 32) | root md page index.
pub const BLOBID_HIGH_BIT: u64 = 1 << 32;

/// The blob id rooted at md page `page`.
pub fn page_to_blobid(page: u32) -> BlobId {
    BLOBID_HIGH_BIT | page as u64
}

/// The root md page of a blob id, if the id is well-formed.
pub fn blobid_to_page(id: BlobId) -> Option<u32> {
    (id >> 32 == 1).then_some(id as u32)
}

/// How `init` clears the data region (SPDK's bs clear_method).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClearMethod {
    /// Unmap the data clusters (SPDK's default).
    #[default]
    Unmap,
    /// Write zeroes over the data clusters.
    WriteZeroes,
    /// Leave the data clusters as they are.
    None,
}

/// Options of [`Blobstore::init`] (spdk_bs_opts).
#[derive(Debug, Clone)]
pub struct BsOpts {
    /// Cluster size in bytes (default 1 MiB): a multiple of 4096.
    pub cluster_size: u32,
    /// Metadata pages to reserve; `None` = one per cluster, as SPDK.
    pub num_md_pages: Option<u32>,
    /// Blobstore type, checked on load when non-zero.
    pub bstype: [u8; 16],
    /// How to clear the data region at init.
    pub clear_method: ClearMethod,
}

impl Default for BsOpts {
    fn default() -> Self {
        BsOpts {
            cluster_size: 1 << 20,
            num_md_pages: None,
            bstype: [0; 16],
            clear_method: ClearMethod::Unmap,
        }
    }
}

/// A blobstore on a device `D`: SPDK's `struct spdk_blob_store`.
///
/// Operations that touch the device are `async fn`s (`*_async`) that never
/// block their thread; on a device that completes inline each also has a
/// synchronous form. The store is owned by one (metadata) thread.
pub struct Blobstore<D: BsDev> {
    pub(crate) dev: D,
    pub(crate) sb: SuperBlock,
    pub(crate) total_clusters: u32,
    pub(crate) used_md_pages: BitArray,
    pub(crate) used_clusters: BitArray,
    pub(crate) used_blobids: BitArray,
    pub(crate) blobs: BTreeMap<BlobId, BlobMd>,
    /// Blobs whose metadata cannot be used, and why.
    pub(crate) bad_blobs: BTreeMap<BlobId, BlobError>,
    /// Metadata of set-aside blobs whose pages and clusters stay claimed.
    pub(crate) reserved: Vec<BlobMd>,
    /// Whether the on-disk super block says clean.
    pub(crate) disk_clean: bool,
    /// Opened read-only: nothing is ever written to the device.
    pub(crate) read_only: bool,
    /// A zeroed cluster-sized buffer, reused for zero fills.
    pub(crate) zero_cluster: Vec<u8>,
    /// While an operation runs on the metadata thread with a logged
    /// refresh: the (blob, logical cluster) pairs it gave clusters to, so
    /// only those map entries are published afterwards.
    pub(crate) alloc_log: Option<Vec<(BlobId, u64)>>,
    /// What the store counts: metadata syncs, clusters allocated, batches.
    pub(crate) counters: super::stats::Counters,
}

pub(crate) fn io_err(
    op: &'static str,
    lba: u64,
    blocks: u64,
) -> impl FnOnce(std::io::Error) -> BlobError {
    move |source| BlobError::Io {
        op,
        lba,
        blocks,
        source,
    }
}

impl<D: BsDev> Blobstore<D> {
    /// Makes a new, empty blobstore on `dev` (spdk_bs_init), leaving it loaded.
    ///
    /// `dev` is any [`BsDev`]: a [`RamDev`](super::RamDev), a
    /// [`FileDev`](super::FileDev) (both also through the synchronous
    /// [`Self::init`]), or a bdev through [`BdevBsDev`](super::BdevBsDev),
    /// on the thread that opened it:
    /// ```
    /// use spdk_io::bdev::malloc::{self, MallocOpts};
    /// use spdk_io::blob::{BdevBsDev, BlobOpts, Blobstore, BsOpts, LoadOpts};
    /// use spdk_io::thread::Thread;
    /// spdk_io::env::init(spdk_io::env::EnvOpts::no_huge())?;
    /// malloc::create(MallocOpts::new("Malloc0", 16384, 512))?; // 8 MiB
    /// let t = Thread::new("blob_md");
    /// let clusters = t.block_on(async {
    ///     let dev = BdevBsDev::open("Malloc0")?; // a channel of this thread
    ///     let mut bs = Blobstore::init_async(dev, &BsOpts::default()).await?;
    ///     let opts = BlobOpts { num_clusters: 2, ..BlobOpts::default() };
    ///     let id = bs.create_blob_async(&opts).await?;
    ///     let dev = bs.unload_async().await?;
    ///     let bs = Blobstore::load_async(dev, &LoadOpts::default()).await?;
    ///     let n = bs.blob_info(id)?.num_clusters;
    ///     drop(bs.unload_async().await?);
    ///     Ok::<_, Box<dyn std::error::Error>>(n)
    /// })??;
    /// assert_eq!(clusters, 2);
    /// t.shutdown()?;
    /// t.destroy()?;
    /// # spdk_io::bdev::fini(); spdk_io::env::fini();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn init_async(mut dev: D, opts: &BsOpts) -> Result<Self> {
        let block_len = dev.block_len();
        let page = PAGE_SIZE as u64;
        if block_len == 0 || page % block_len as u64 != 0 {
            return Err(BlobError::InvalidArgument(format!(
                "device block size {block_len} must divide 4096"
            )));
        }
        let cs = opts.cluster_size as u64;
        if cs < page || cs % page != 0 {
            return Err(BlobError::InvalidArgument(format!(
                "cluster size {cs} must be a non-zero multiple of 4096"
            )));
        }
        let size = dev.block_count() * block_len as u64;
        let total_clusters = size / cs;
        if total_clusters == 0 || total_clusters > u32::MAX as u64 {
            return Err(BlobError::InvalidArgument(format!(
                "device of {size} bytes holds {total_clusters} clusters of {cs} bytes"
            )));
        }
        let md_len = opts.num_md_pages.unwrap_or(total_clusters as u32);
        if md_len == 0 {
            return Err(BlobError::InvalidArgument(
                "num_md_pages must be at least 1".into(),
            ));
        }
        let mask_pages = |bits: u64| (5 + bits.div_ceil(8)).div_ceil(page) as u32;
        let used_page_mask_len = mask_pages(md_len as u64);
        let used_cluster_mask_len = mask_pages(total_clusters);
        let used_blobid_mask_len = mask_pages(md_len as u64);
        let used_page_mask_start = 1;
        let used_cluster_mask_start = used_page_mask_start + used_page_mask_len;
        let used_blobid_mask_start = used_cluster_mask_start + used_cluster_mask_len;
        let md_start = used_blobid_mask_start + used_blobid_mask_len;
        let num_md_pages = md_start as u64 + md_len as u64;
        let num_md_clusters = (num_md_pages * page).div_ceil(cs);
        if num_md_clusters > total_clusters {
            return Err(BlobError::InvalidArgument(format!(
                "metadata needs {num_md_clusters} clusters but the device has {total_clusters}: use fewer md pages or a larger device"
            )));
        }
        let sb = SuperBlock {
            version: VERSION,
            length: PAGE_SIZE as u32,
            clean: 1,
            super_blob: BLOBID_INVALID,
            cluster_size: opts.cluster_size,
            used_page_mask_start,
            used_page_mask_len,
            used_cluster_mask_start,
            used_cluster_mask_len,
            md_start,
            md_len,
            bstype: opts.bstype,
            used_blobid_mask_start,
            used_blobid_mask_len,
            size,
            io_unit_size: block_len,
            md_page_size: PAGE_SIZE as u32,
        };
        let md_lbas = num_md_pages * page / block_len as u64;
        dev.write_zeroes_async(0, md_lbas)
            .await
            .map_err(io_err("write_zeroes", 0, md_lbas))?;
        let rest = dev.block_count() - md_lbas;
        match opts.clear_method {
            ClearMethod::Unmap => dev
                .unmap_async(md_lbas, rest)
                .await
                .map_err(io_err("unmap", md_lbas, rest))?,
            ClearMethod::WriteZeroes => dev
                .write_zeroes_async(md_lbas, rest)
                .await
                .map_err(io_err("write_zeroes", md_lbas, rest))?,
            ClearMethod::None => {}
        }
        let mut bs = Blobstore::new(dev, sb, total_clusters as u32);
        for c in 0..num_md_clusters as u32 {
            bs.used_clusters.set(c);
        }
        // A complete clean store from the start, as SPDK's bs_init writes it.
        bs.write_masks().await?;
        bs.flush().await?;
        bs.write_super().await?;
        bs.disk_clean = true;
        Ok(bs)
    }

    pub(crate) fn new(dev: D, sb: SuperBlock, total_clusters: u32) -> Self {
        let md_len = sb.md_len;
        let zero_cluster = vec![0u8; sb.cluster_size as usize];
        Blobstore {
            dev,
            used_md_pages: BitArray::new(md_len),
            used_clusters: BitArray::new(total_clusters),
            used_blobids: BitArray::new(md_len),
            sb,
            total_clusters,
            blobs: BTreeMap::new(),
            bad_blobs: BTreeMap::new(),
            reserved: Vec::new(),
            disk_clean: false,
            read_only: false,
            zero_cluster,
            alloc_log: None,
            counters: Default::default(),
        }
    }

    /// Persists the masks, then marks the store clean (spdk_bs_unload), and
    /// returns the device. Every blob must be closed.
    ///
    /// A store that is clean on disk and was not changed since it was loaded
    /// (or one opened read-only) is left untouched: nothing is written.
    pub async fn unload_async(mut self) -> Result<D> {
        let open = self.blobs.values().filter(|b| b.open_refs > 0).count();
        if open > 0 {
            return Err(BlobError::BlobsOpen(open));
        }
        if self.read_only || (self.disk_clean && !self.blobs.values().any(|b| b.dirty)) {
            return Ok(self.dev);
        }
        let ids: Vec<BlobId> = self
            .blobs
            .values()
            .filter(|b| b.dirty)
            .map(|b| b.id)
            .collect();
        for id in ids {
            self.persist(id).await?;
        }
        self.write_masks().await?;
        self.flush().await?;
        self.sb.clean = 1;
        self.write_super().await?;
        self.flush().await?;
        Ok(self.dev)
    }

    /// Writes the three mask regions from the in-memory maps.
    async fn write_masks(&mut self) -> Result<()> {
        let masks = [
            (
                MaskKind::UsedPages,
                self.sb.used_page_mask_start,
                self.sb.used_page_mask_len,
                self.used_md_pages.clone(),
            ),
            (
                MaskKind::UsedClusters,
                self.sb.used_cluster_mask_start,
                self.sb.used_cluster_mask_len,
                self.used_clusters.clone(),
            ),
            (
                MaskKind::UsedBlobIds,
                self.sb.used_blobid_mask_start,
                self.sb.used_blobid_mask_len,
                self.used_blobids.clone(),
            ),
        ];
        for (kind, start, len, bits) in masks {
            let buf = MaskPage { kind, bits }.encode(len);
            self.write_pages(start as u64, &buf).await?;
        }
        Ok(())
    }

    /// Drops the store without unloading and returns the device, exactly as
    /// a crash would leave it (the next load recovers).
    pub fn abandon(self) -> D {
        self.dev
    }

    /// The super blob, if one is set (spdk_bs_get_super).
    pub fn super_blob(&self) -> Option<BlobId> {
        (self.sb.super_blob != BLOBID_INVALID).then_some(self.sb.super_blob)
    }

    /// Free clusters (spdk_bs_free_cluster_count).
    pub fn free_cluster_count(&self) -> u64 {
        (self.total_clusters - self.used_clusters.count_set()) as u64
    }

    /// Total clusters (spdk_bs_total_data_cluster_count plus md clusters).
    pub fn total_clusters(&self) -> u64 {
        self.total_clusters as u64
    }

    /// Cluster size in bytes.
    pub fn cluster_size(&self) -> u32 {
        self.sb.cluster_size
    }

    /// The I/O unit in bytes (spdk_bs_get_io_unit_size).
    pub fn io_unit_size(&self) -> u32 {
        self.sb.io_unit_size
    }

    /// The md page size (4096).
    pub fn page_size(&self) -> u32 {
        PAGE_SIZE as u32
    }

    /// The super block as it will next be written.
    pub fn super_block(&self) -> &SuperBlock {
        &self.sb
    }

    /// The blobstore type.
    pub fn bstype(&self) -> [u8; 16] {
        self.sb.bstype
    }

    /// The device.
    pub fn dev(&self) -> &D {
        &self.dev
    }

    /// Whether the store was loaded read-only ([`super::LoadOpts::read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Refuses a change to a store opened read-only.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(BlobError::StoreReadOnly);
        }
        Ok(())
    }

    /// The used md page, used cluster and used blob id maps in memory.
    pub fn masks(&self) -> (&BitArray, &BitArray, &BitArray) {
        (&self.used_md_pages, &self.used_clusters, &self.used_blobids)
    }

    /// Sets a blob aside: it cannot be opened (`err` says why), but what it
    /// references stays claimed so nothing overwrites it.
    pub(crate) fn set_aside(&mut self, md: BlobMd, err: BlobError) {
        log::warn!("blob {:#x} set aside: {err}", md.id);
        self.bad_blobs.insert(md.id, err);
        self.reserved.push(md);
    }

    /// Every blob's metadata, usable or set aside.
    pub(crate) fn all_md(&self) -> impl Iterator<Item = &BlobMd> {
        self.blobs.values().chain(self.reserved.iter())
    }
}
