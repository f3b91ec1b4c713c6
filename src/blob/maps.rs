//! The three in-memory maps (used md pages, used clusters, used blob ids):
//! rebuilt from the blobs after a dirty load, topped up after a clean one,
//! and checked against the blobs by [`Blobstore::verify`].

use std::collections::BTreeMap;

use super::dev::BsDev;
use super::error::BlobError;
use super::format::PAGE_SIZE;
use super::store::{blobid_to_page, page_to_blobid, Blobstore};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    /// Clusters holding the super block, masks and md region.
    pub(crate) fn num_md_clusters(&self) -> u32 {
        let pages = self.sb.md_start as u64 + self.sb.md_len as u64;
        (pages * PAGE_SIZE as u64).div_ceil(self.sb.cluster_size as u64) as u32
    }

    /// After a clean load: marks used whatever a blob references that the
    /// masks on disk missed (they are trusted, but never to free a page or
    /// cluster in use).
    pub(crate) fn claim_referenced(&mut self) {
        let mut missing = 0u32;
        for c in 0..self.num_md_clusters().min(self.total_clusters) {
            missing += u32::from(!self.used_clusters.get(c));
            self.used_clusters.set(c);
        }
        for md in self.blobs.values().chain(self.reserved.iter()) {
            let pages = md
                .chain
                .iter()
                .chain(md.disk_extent_pages.iter().filter(|&&p| p != 0));
            for &p in pages {
                missing += u32::from(!self.used_md_pages.get(p));
                self.used_md_pages.set(p);
            }
            for &c in md.clusters.iter().filter(|&&c| c != 0) {
                missing += u32::from(!self.used_clusters.get(c));
                self.used_clusters.set(c);
            }
        }
        if missing > 0 {
            log::warn!("clean load: {missing} md page(s)/cluster(s) in use were not marked in the masks; claimed them");
        }
    }

    /// Recomputes the used md page, cluster and blob id maps from the loaded blobs.
    pub(crate) fn rebuild_maps(&mut self) {
        self.used_md_pages.resize(0);
        self.used_md_pages.resize(self.sb.md_len);
        self.used_blobids.resize(0);
        self.used_blobids.resize(self.sb.md_len);
        self.used_clusters.resize(0);
        self.used_clusters.resize(self.total_clusters);
        for c in 0..self.num_md_clusters() {
            self.used_clusters.set(c);
        }
        for md in self.blobs.values().chain(self.reserved.iter()) {
            if let Some(p) = blobid_to_page(md.id) {
                self.used_blobids.set(p);
            }
            for &p in md
                .chain
                .iter()
                .chain(md.disk_extent_pages.iter().filter(|&&p| p != 0))
            {
                self.used_md_pages.set(p);
            }
            for &c in md.clusters.iter().filter(|&&c| c != 0) {
                self.used_clusters.set(c);
            }
        }
    }
    /// Checks that the in-memory maps agree with the blobs: every md page,
    /// cluster and blob id a blob uses is marked, nothing else is, and no
    /// two blobs share an md page or (unless one reads through the other) a
    /// cluster. Returns what disagrees.
    pub fn verify(&self) -> std::result::Result<(), String> {
        let mut pages = std::collections::BTreeMap::new();
        let mut clusters = std::collections::BTreeMap::new();
        let first_data = self.num_md_clusters();
        for md in self.all_md() {
            for &p in md
                .chain
                .iter()
                .chain(md.disk_extent_pages.iter().filter(|&&p| p != 0))
            {
                if let Some(other) = pages.insert(p, md.id) {
                    return Err(format!(
                        "md page {p} used by blobs {other:#x} and {:#x}",
                        md.id
                    ));
                }
            }
            for &c in md.clusters.iter().filter(|&&c| c != 0) {
                if c < first_data {
                    return Err(format!("blob {:#x} maps metadata cluster {c}", md.id));
                }
                if let Some(other) = clusters.insert(c, md.id) {
                    return Err(format!(
                        "cluster {c} used by blobs {other:#x} and {:#x}",
                        md.id
                    ));
                }
            }
            if md.dirty {
                return Err(format!("blob {:#x} has unsynced metadata", md.id));
            }
        }
        for p in 0..self.sb.md_len {
            let want = pages.contains_key(&p);
            if self.used_md_pages.get(p) != want {
                return Err(format!(
                    "used md page mask bit {p} is {}, blobs say {want}",
                    self.used_md_pages.get(p)
                ));
            }
            let root = self.all_md().any(|b| b.id == page_to_blobid(p));
            if self.used_blobids.get(p) != root {
                return Err(format!(
                    "used blob id mask bit {p} is {}, blobs say {root}",
                    self.used_blobids.get(p)
                ));
            }
        }
        for c in 0..self.total_clusters {
            let want = c < first_data || clusters.contains_key(&c);
            if self.used_clusters.get(c) != want {
                return Err(format!(
                    "used cluster mask bit {c} is {}, blobs say {want}",
                    self.used_clusters.get(c)
                ));
            }
        }
        Ok(())
    }

    /// Sets aside blobs that share an md page or a cluster with another
    /// blob (only a corrupt store does): writing either would damage the other.
    pub(crate) fn check_sharing(&mut self) {
        let mut pages: BTreeMap<u32, BlobId> = BTreeMap::new();
        let mut clusters: BTreeMap<u32, BlobId> = BTreeMap::new();
        let mut bad: Vec<(BlobId, String)> = Vec::new();
        for md in self.all_md() {
            for &p in md
                .chain
                .iter()
                .chain(md.disk_extent_pages.iter().filter(|&&p| p != 0))
            {
                if let Some(other) = pages.insert(p, md.id) {
                    bad.push((md.id, format!("shares md page {p} with blob {other:#x}")));
                    bad.push((other, format!("shares md page {p} with blob {:#x}", md.id)));
                }
            }
            for &c in md.clusters.iter().filter(|&&c| c != 0) {
                if let Some(other) = clusters.insert(c, md.id) {
                    bad.push((md.id, format!("shares cluster {c} with blob {other:#x}")));
                    bad.push((other, format!("shares cluster {c} with blob {:#x}", md.id)));
                }
            }
        }
        for (id, reason) in bad {
            if let Some(md) = self.blobs.remove(&id) {
                self.set_aside(md, BlobError::CorruptBlob { id, reason });
            }
        }
    }
}
