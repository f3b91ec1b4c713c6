//! Loading a blobstore (spdk_bs_load): validate the super block, read the
//! masks of a clean store or rebuild them from the metadata pages of a
//! dirty one, load every blob's metadata, and finish or roll back snapshot
//! operations a crash interrupted.

use std::collections::HashMap;

use crate::bdev::IoBuf;

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::format::{MaskKind, MaskPage, MdPage, SuperBlock, INVALID_MD_PAGE, PAGE_SIZE};
use super::md::{
    BlobMd, INVALID_FLAGS_KNOWN, XATTR_SNAPSHOT_IN_PROGRESS, XATTR_SNAPSHOT_PENDING_REMOVAL,
};
use super::store::{blobid_to_page, io_err, page_to_blobid, Blobstore};
use super::BlobId;

/// Options of [`Blobstore::load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOpts {
    /// Expected blobstore type; all-zero accepts any.
    pub bstype: [u8; 16],
    /// Open without ever writing to the device: a dirty store is recovered
    /// in memory only, an interrupted snapshot operation is finished in
    /// memory only, every change is refused with
    /// [`BlobError::StoreReadOnly`], and unload writes nothing. For
    /// read-only media and for commands that only look.
    pub read_only: bool,
}

/// How a load went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadKind {
    /// The store was unloaded cleanly; masks were read from disk.
    Clean,
    /// The store was not unloaded cleanly; masks were rebuilt by scanning.
    Recovered,
}

impl<D: BsDev> Blobstore<D> {
    /// Loads the blobstore on `dev`, recovering it if it was not unloaded cleanly.
    pub async fn load_async(mut dev: D, opts: &LoadOpts) -> Result<Self> {
        let bl = dev.block_len();
        if bl == 0 || PAGE_SIZE as u32 % bl != 0 {
            return Err(BlobError::InvalidArgument(format!(
                "device block size {bl} must divide 4096"
            )));
        }
        let dev_bytes = dev.block_count() * bl as u64;
        if dev_bytes < PAGE_SIZE as u64 {
            return Err(BlobError::SuperBlock(
                super::format::FormatError::Truncated {
                    what: "device",
                    len: dev_bytes as usize,
                    need: PAGE_SIZE,
                },
            ));
        }
        let n = PAGE_SIZE as u64 / bl as u64;
        let p = dev
            .read_buf(0, IoBuf::new(PAGE_SIZE))
            .await
            .map_err(io_err("read", 0, n))?;
        let mut sb = SuperBlock::decode(&p).map_err(BlobError::SuperBlock)?;
        if opts.bstype != [0; 16] && sb.bstype != opts.bstype {
            return Err(BlobError::BstypeMismatch {
                found: sb.bstype,
                expected: opts.bstype,
            });
        }
        sb.validate_layout(dev_bytes, bl)
            .map_err(BlobError::SuperBlock)?;
        if sb.size == 0 {
            sb.size = dev_bytes;
        }
        if sb.io_unit_size == 0 {
            sb.io_unit_size = PAGE_SIZE as u32;
        }
        let total = (sb.size / sb.cluster_size as u64).min(u32::MAX as u64) as u32;
        let clean = sb.is_clean();
        let mut bs = Blobstore::new(dev, sb, total);
        bs.read_only = opts.read_only;
        if clean {
            bs.load_masks().await?;
            bs.disk_clean = true;
            let ids: Vec<u32> = bs.used_blobids.iter_set().collect();
            for page in ids {
                let id = page_to_blobid(page);
                bs.adopt_blob(id).await;
            }
            bs.claim_referenced();
        } else {
            bs.sb.clean = 0;
            bs.recover().await?;
        }
        bs.finish_interrupted_snapshot_ops().await?;
        bs.check_parents();
        bs.check_sharing();
        Ok(bs)
    }

    /// Whether this load had to recover the store.
    pub fn load_kind(&self) -> LoadKind {
        if self.disk_clean {
            LoadKind::Clean
        } else {
            LoadKind::Recovered
        }
    }

    /// Blobs that could not be loaded (corrupt, or flags this implementation
    /// does not know), with the reason.
    pub fn unusable_blobs(&self) -> impl Iterator<Item = (BlobId, &BlobError)> {
        self.bad_blobs.iter().map(|(id, e)| (*id, e))
    }

    async fn load_masks(&mut self) -> Result<()> {
        let sb = self.sb.clone();
        let regions = [
            (
                "used md page",
                MaskKind::UsedPages,
                sb.used_page_mask_start,
                sb.used_page_mask_len,
                sb.md_len,
            ),
            (
                "used cluster",
                MaskKind::UsedClusters,
                sb.used_cluster_mask_start,
                sb.used_cluster_mask_len,
                self.total_clusters,
            ),
            (
                "used blob id",
                MaskKind::UsedBlobIds,
                sb.used_blobid_mask_start,
                sb.used_blobid_mask_len,
                sb.md_len,
            ),
        ];
        for (which, kind, start, len, bits) in regions {
            let buf = self
                .read_pages(start as u64, len as usize * PAGE_SIZE)
                .await?;
            let mut m = MaskPage::decode(&buf, kind, bits)
                .map_err(|source| BlobError::Mask { which, source })?;
            m.bits.resize(bits);
            match kind {
                MaskKind::UsedPages => self.used_md_pages = m.bits,
                MaskKind::UsedClusters => self.used_clusters = m.bits,
                MaskKind::UsedBlobIds => self.used_blobids = m.bits,
            }
        }
        Ok(())
    }

    /// Reads and parses a blob's root chain and extent pages.
    pub(crate) async fn load_blob(&mut self, id: BlobId) -> Result<BlobMd> {
        let bad = |reason: String| BlobError::CorruptBlob { id, reason };
        let md_len = self.sb.md_len;
        let mut idx = blobid_to_page(id)
            .filter(|&p| p < md_len)
            .ok_or(BlobError::NoSuchBlob(id))?;
        let mut chain = Vec::new();
        loop {
            if chain.len() as u32 >= md_len || chain.iter().any(|(p, _)| *p == idx) {
                return Err(bad("metadata page chain loops".into()));
            }
            let raw = self.read_md_page(idx).await?;
            let page = MdPage::decode(&raw).map_err(|e| bad(format!("md page {idx}: {e}")))?;
            let next = page.next;
            chain.push((idx, page));
            if next == INVALID_MD_PAGE {
                break;
            }
            if next >= md_len {
                return Err(bad(format!(
                    "md page {idx} links to page {next}, outside the md region"
                )));
            }
            idx = next;
        }
        let total = self.total_clusters;
        let md = self.parse_blob(id, &chain, total, md_len).await?;
        let first_data = self.num_md_clusters();
        if let Some(c) = md.clusters.iter().find(|&&c| c != 0 && c < first_data) {
            return Err(bad(format!(
                "maps a data cluster onto metadata cluster {c}"
            )));
        }
        Ok(md)
    }

    /// Parses a blob's root chain, reading its extent pages as the parser
    /// asks for them: the parser is pure, so each page it misses is read
    /// and the parse runs again (at most once per extent page).
    async fn parse_blob(
        &mut self,
        id: BlobId,
        chain: &[(u32, MdPage)],
        total: u32,
        md_len: u32,
    ) -> Result<BlobMd> {
        let mut pages: HashMap<u32, std::result::Result<MdPage, String>> = HashMap::new();
        loop {
            let mut missing = None;
            let r = BlobMd::parse(
                id,
                chain,
                |p| match pages.get(&p) {
                    Some(page) => page.clone(),
                    None => {
                        missing = Some(p);
                        Err(format!("extent page {p} not read yet"))
                    }
                },
                total,
                md_len,
            );
            match (r, missing) {
                (Err(_), Some(p)) if !pages.contains_key(&p) => {
                    let page = match self.read_md_page(p).await {
                        Ok(raw) => MdPage::decode(&raw).map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    pages.insert(p, page);
                }
                (r, _) => return r.map_err(|reason| BlobError::CorruptBlob { id, reason }),
            }
        }
    }

    /// Loads a blob found on disk: usable ones join the store; ones with
    /// invalid_flags this implementation does not know are set aside (their
    /// space stays claimed); unreadable ones are recorded.
    async fn adopt_blob(&mut self, id: BlobId) {
        match self.load_blob(id).await {
            Ok(md) => {
                let unknown = md.invalid_flags & !INVALID_FLAGS_KNOWN;
                if unknown != 0 {
                    self.set_aside(md, BlobError::UnknownInvalidFlags { id, flags: unknown });
                } else {
                    self.blobs.insert(id, md);
                }
            }
            Err(e) => {
                log::warn!("blob {id:#x}: {e}");
                self.bad_blobs.insert(id, e);
            }
        }
    }

    /// Dirty load: scan every md page for blob roots (crc valid, sequence 0,
    /// id matching the page), load each blob, and rebuild the three maps
    /// from what the blobs reference.
    async fn recover(&mut self) -> Result<()> {
        for page in 0..self.sb.md_len {
            let raw = self.read_md_page(page).await?;
            let Ok(p) = MdPage::decode(&raw) else {
                continue;
            };
            if p.sequence_num != 0 || p.id != page_to_blobid(page) {
                continue;
            }
            self.adopt_blob(p.id).await;
        }
        self.rebuild_maps();
        Ok(())
    }

    /// Sets aside blobs whose parent snapshot is missing or whose parent
    /// chain loops: reading them would be wrong or would never end.
    fn check_parents(&mut self) {
        loop {
            let bad = self.blobs.values().find_map(|b| {
                let mut cur = b.parent()?;
                for _ in 0..=self.blobs.len() {
                    match self.blobs.get(&cur) {
                        None => {
                            return Some((b.id, format!("parent snapshot {cur:#x} does not exist")))
                        }
                        Some(p) => match p.parent() {
                            None => return None,
                            Some(next) => cur = next,
                        },
                    }
                }
                Some((b.id, "its chain of parent snapshots loops".to_string()))
            });
            let Some((id, reason)) = bad else { break };
            let md = self.blobs.remove(&id).expect("found among the blobs");
            self.set_aside(md, BlobError::CorruptBlob { id, reason });
        }
    }

    /// Rolls forward or back a snapshot creation or snapshot deletion that a
    /// crash interrupted (the SNAPTMP and SNAPRM internal xattrs).
    async fn finish_interrupted_snapshot_ops(&mut self) -> Result<()> {
        let pending: Vec<(BlobId, bool)> = self
            .blobs
            .values()
            .filter_map(|b| {
                if b.internal(XATTR_SNAPSHOT_IN_PROGRESS).is_some() {
                    Some((b.id, true))
                } else if b.internal(XATTR_SNAPSHOT_PENDING_REMOVAL).is_some() {
                    Some((b.id, false))
                } else {
                    None
                }
            })
            .collect();
        for (snap, creating) in pending {
            let has_clone = self.blobs.values().any(|b| b.parent() == Some(snap));
            let attr = if creating {
                XATTR_SNAPSHOT_IN_PROGRESS
            } else {
                XATTR_SNAPSHOT_PENDING_REMOVAL
            };
            if has_clone {
                // Creation committed (the original points at the snapshot) or
                // deletion had not: the snapshot stays.
                let md = self.blobs.get_mut(&snap).expect("pending blob is loaded");
                md.remove_xattr(true, attr);
                if self.read_only {
                    md.dirty = false;
                } else {
                    self.persist(snap).await?;
                }
            } else if self.read_only {
                // Seen as it will be once a writable load finishes the removal.
                self.blobs.remove(&snap);
            } else {
                // Creation had not committed, or the clone already took over.
                log::info!("finishing interrupted snapshot operation: removing {snap:#x}");
                let md = self.blobs.remove(&snap).expect("pending blob is loaded");
                self.remove_blob_md(&md).await?;
            }
        }
        Ok(())
    }
}
