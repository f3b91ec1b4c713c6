//! Device page I/O and space allocation for the blobstore: the super
//! block, md pages (bounds-checked against the md region), clusters, and
//! the clean-to-dirty transition before the first metadata change; the
//! super blob and growing the store (both write the super block).

use crate::bdev::IoBuf;

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::format::super_block::BLOBID_INVALID;
use super::format::PAGE_SIZE;
use super::store::{io_err, page_to_blobid, Blobstore};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    pub(crate) async fn write_super(&mut self) -> Result<()> {
        let p = self.sb.encode();
        self.write_pages(0, &p).await
    }

    /// Before the first metadata change after a load or init: mark the super
    /// block dirty on disk, so a crash is detected and recovered.
    pub(crate) async fn mark_dirty(&mut self) -> Result<()> {
        self.check_writable()?;
        if self.disk_clean || self.sb.clean != 0 {
            self.sb.clean = 0;
            self.write_super().await?;
            self.flush().await?;
            self.disk_clean = false;
        }
        Ok(())
    }

    pub(crate) async fn flush(&mut self) -> Result<()> {
        self.dev.flush_async().await.map_err(io_err("flush", 0, 0))
    }

    fn page_lba(&self, page: u64) -> u64 {
        page * PAGE_SIZE as u64 / self.dev.block_len() as u64
    }

    /// Writes metadata pages (encoded in memory, handed to the device in
    /// an I/O buffer of their own).
    pub(crate) async fn write_pages(&mut self, page: u64, buf: &[u8]) -> Result<()> {
        self.check_writable()?;
        let lba = self.page_lba(page);
        let n = buf.len() as u64 / self.dev.block_len() as u64;
        let mut b = IoBuf::new(buf.len());
        b.copy_from_slice(buf);
        self.dev
            .write_buf(lba, b)
            .await
            .map(drop)
            .map_err(io_err("write", lba, n))
    }

    /// Reads `len` bytes of metadata pages from page `page`.
    pub(crate) async fn read_pages(&mut self, page: u64, len: usize) -> Result<IoBuf> {
        let lba = self.page_lba(page);
        let n = len as u64 / self.dev.block_len() as u64;
        self.dev
            .read_buf(lba, IoBuf::new(len))
            .await
            .map_err(io_err("read", lba, n))
    }

    /// Reads md page `idx` (relative to md_start).
    pub(crate) async fn read_md_page(&mut self, idx: u32) -> Result<[u8; PAGE_SIZE]> {
        let b = self
            .read_pages(self.sb.md_start as u64 + idx as u64, PAGE_SIZE)
            .await?;
        let mut p = [0u8; PAGE_SIZE];
        p.copy_from_slice(&b);
        Ok(p)
    }

    /// Writes md page `idx`; `idx` is checked against md_len so metadata
    /// can never land outside its region.
    pub(crate) async fn write_md_page(&mut self, idx: u32, p: &[u8; PAGE_SIZE]) -> Result<()> {
        if idx >= self.sb.md_len {
            return Err(BlobError::InvalidArgument(format!(
                "md page {idx} outside the md region"
            )));
        }
        self.write_pages(self.sb.md_start as u64 + idx as u64, p)
            .await
    }

    /// Whether md page `p` may be given out: free in the used-page map,
    /// and not the root of a blob by the blob-id map or of a blob that
    /// could not be loaded (the maps of a corrupt store can disagree).
    fn md_page_free(&self, p: u32) -> bool {
        !self.used_md_pages.get(p)
            && !self.used_blobids.get(p)
            && !self.bad_blobs.contains_key(&page_to_blobid(p))
    }

    /// Claims the first free md page at or after `from`.
    pub(crate) fn alloc_md_page(&mut self, from: u32) -> Result<u32> {
        let p = (from..self.sb.md_len)
            .find(|&p| self.md_page_free(p))
            .ok_or(BlobError::NoSpace("metadata pages"))?;
        self.used_md_pages.set(p);
        Ok(p)
    }

    /// The first md page a new blob may be rooted at (its id is
    /// `page_to_blobid(page)`); the caller claims it.
    pub(crate) fn find_free_root_page(&self) -> Result<u32> {
        (0..self.sb.md_len)
            .find(|&p| self.md_page_free(p))
            .ok_or(BlobError::NoSpace("metadata pages"))
    }

    /// Claims the first free cluster after the metadata clusters (whatever
    /// the used-cluster mask says of those: mask pages carry no crc).
    pub(crate) fn alloc_cluster(&mut self) -> Result<u32> {
        let first_data = self.num_md_clusters();
        let c = self
            .used_clusters
            .find_first_clear(first_data)
            .ok_or(BlobError::NoSpace("clusters"))?;
        self.used_clusters.set(c);
        Ok(c)
    }

    /// First device block of cluster `c`.
    pub(crate) fn cluster_lba(&self, c: u32) -> u64 {
        c as u64 * (self.sb.cluster_size / self.dev.block_len()) as u64
    }

    /// Io units per cluster.
    pub(crate) fn io_units_per_cluster(&self) -> u64 {
        (self.sb.cluster_size / self.sb.io_unit_size) as u64
    }

    /// Sets (or clears) the super blob and writes the super block (spdk_bs_set_super).
    pub async fn set_super_blob_async(&mut self, id: Option<BlobId>) -> Result<()> {
        self.check_writable()?;
        if let Some(id) = id {
            self.md(id)?;
        }
        self.sb.super_blob = id.unwrap_or(BLOBID_INVALID);
        self.write_super().await
    }

    /// Grows the store to the device's current size (spdk_bs_grow_live).
    pub async fn grow_async(&mut self) -> Result<()> {
        self.check_writable()?;
        let size = self.dev.block_count() * self.dev.block_len() as u64;
        let total = size / self.sb.cluster_size as u64;
        if size <= self.sb.size || total <= self.total_clusters as u64 {
            return Ok(());
        }
        let room = (self.sb.used_cluster_mask_len as u64 * PAGE_SIZE as u64 - 5) * 8;
        if total > room || total > u32::MAX as u64 {
            return Err(BlobError::NoSpace(
                "used-cluster mask room (the mask region cannot describe that many clusters)",
            ));
        }
        self.mark_dirty().await?;
        self.total_clusters = total as u32;
        self.used_clusters.resize(total as u32);
        self.sb.size = size;
        self.write_super().await
    }
}
