//! A blob's metadata in memory, and its translation to and from SPDK's
//! metadata pages: the root chain (flags, xattrs, internal xattrs, extent
//! table or RLE extents) and the extent pages.

use super::format::descriptor::MAX_DESCRIPTOR_LEN;
use super::format::{Descriptor, MdPage, DESCRIPTORS_LEN, EXTENTS_PER_EP};
use super::BlobId;

/// invalid_flags bit: thin provisioned (SPDK_BLOB_THIN_PROV).
pub const BLOB_THIN_PROV: u64 = 1 << 0;
/// invalid_flags bit: has internal xattrs (SPDK_BLOB_INTERNAL_XATTR).
pub const BLOB_INTERNAL_XATTR: u64 = 1 << 1;
/// invalid_flags bit: cluster map in extent table + extent pages (SPDK_BLOB_EXTENT_TABLE).
pub const BLOB_EXTENT_TABLE: u64 = 1 << 2;
/// invalid_flags bits this implementation understands (external snapshots are not supported).
pub const INVALID_FLAGS_KNOWN: u64 = BLOB_THIN_PROV | BLOB_INTERNAL_XATTR | BLOB_EXTENT_TABLE;
/// data_ro_flags bit: read-only (SPDK_BLOB_READ_ONLY).
pub const BLOB_READ_ONLY: u64 = 1 << 0;
/// md_ro_flags bits: the blob's clear method (SPDK_BLOB_CLEAR_METHOD).
pub const BLOB_CLEAR_METHOD: u64 = 3;

/// Internal xattr naming a clone's parent snapshot (8-byte little-endian id).
pub const XATTR_SNAPSHOT: &str = "SNAP";
/// Internal xattr on a snapshot whose creation has not finished: the original's id.
pub const XATTR_SNAPSHOT_IN_PROGRESS: &str = "SNAPTMP";
/// Internal xattr on a snapshot being deleted into its single clone.
pub const XATTR_SNAPSHOT_PENDING_REMOVAL: &str = "SNAPRM";

/// Largest number of clusters a blob may claim (bounds memory on corrupt input).
pub const MAX_BLOB_CLUSTERS: u64 = 1 << 26;

/// An extended attribute: name and value bytes.
pub type Xattr = (String, Vec<u8>);

/// A blob's metadata in memory.
#[derive(Debug, Clone, Default)]
pub struct BlobMd {
    /// The blob id.
    pub id: BlobId,
    /// Flags whose unknown bits refuse the open.
    pub invalid_flags: u64,
    /// Flags whose unknown bits make data and metadata read-only.
    pub data_ro_flags: u64,
    /// Flags whose unknown bits make metadata read-only.
    pub md_ro_flags: u64,
    /// User xattrs, in order.
    pub xattrs: Vec<Xattr>,
    /// Internal xattrs, in order.
    pub xattrs_internal: Vec<Xattr>,
    /// Physical cluster per logical cluster; 0 = unallocated.
    pub clusters: Vec<u32>,
    /// Whether the cluster map is an extent table (else RLE extents).
    pub use_extent_table: bool,
    /// md page holding each extent page; 0 = none.
    pub extent_pages: Vec<u32>,
    /// The cluster map as last written to disk.
    pub disk_clusters: Vec<u32>,
    /// The extent pages as last written to disk.
    pub disk_extent_pages: Vec<u32>,
    /// md pages of the root chain as last written (root first).
    pub chain: Vec<u32>,
    /// Changed in memory since the last sync.
    pub dirty: bool,
    /// Open handles.
    pub open_refs: u32,
    /// Clusters to release once the next sync has committed.
    pub free_after_sync: Vec<u32>,
}

fn corrupt(s: impl Into<String>) -> String {
    s.into()
}

impl BlobMd {
    /// Whether the blob is thin provisioned.
    pub fn is_thin(&self) -> bool {
        self.invalid_flags & BLOB_THIN_PROV != 0
    }

    /// Whether the data may not be written (read-only flag or unknown data_ro bits).
    pub fn data_ro(&self) -> bool {
        self.data_ro_flags != 0
    }

    /// Whether the metadata may not be changed (unknown md_ro or data_ro bits).
    pub fn md_ro(&self) -> bool {
        self.md_ro_flags & !BLOB_CLEAR_METHOD != 0 || self.data_ro_flags & !BLOB_READ_ONLY != 0
    }

    /// The parent snapshot, from the "SNAP" internal xattr.
    pub fn parent(&self) -> Option<BlobId> {
        let v = &self
            .xattrs_internal
            .iter()
            .find(|(n, _)| n == XATTR_SNAPSHOT)?
            .1;
        Some(u64::from_le_bytes(v.as_slice().try_into().ok()?))
    }

    /// An internal xattr's value.
    pub fn internal(&self, name: &str) -> Option<&[u8]> {
        self.xattrs_internal
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Sets an xattr (internal or not), replacing a value in place as SPDK does.
    pub fn set_xattr(&mut self, internal: bool, name: &str, value: &[u8]) {
        let list = if internal {
            &mut self.xattrs_internal
        } else {
            &mut self.xattrs
        };
        match list.iter_mut().find(|(n, _)| n == name) {
            Some(x) => x.1 = value.to_vec(),
            None => list.push((name.to_string(), value.to_vec())),
        }
        if internal {
            self.invalid_flags |= BLOB_INTERNAL_XATTR;
        }
        self.dirty = true;
    }

    /// Removes an xattr; returns whether it existed.
    pub fn remove_xattr(&mut self, internal: bool, name: &str) -> bool {
        let list = if internal {
            &mut self.xattrs_internal
        } else {
            &mut self.xattrs
        };
        let before = list.len();
        list.retain(|(n, _)| n != name);
        let removed = list.len() != before;
        if internal && self.xattrs_internal.is_empty() {
            self.invalid_flags &= !BLOB_INTERNAL_XATTR;
        }
        self.dirty |= removed;
        removed
    }

    /// Sets or clears the parent snapshot.
    pub fn set_parent(&mut self, parent: Option<BlobId>) {
        match parent {
            Some(p) => self.set_xattr(true, XATTR_SNAPSHOT, &p.to_le_bytes()),
            None => {
                self.remove_xattr(true, XATTR_SNAPSHOT);
            }
        }
    }

    /// Extent pages a blob of this size needs.
    pub fn num_extent_pages(&self) -> usize {
        self.clusters.len().div_ceil(EXTENTS_PER_EP)
    }

    /// The EXTENT_PAGE descriptor of extent page `slot`.
    pub fn extent_page_descriptor(&self, slot: usize) -> Descriptor {
        let start = slot * EXTENTS_PER_EP;
        let end = (start + EXTENTS_PER_EP).min(self.clusters.len());
        Descriptor::ExtentPage {
            start_cluster_idx: start as u32,
            cluster_idx: self.clusters[start..end].to_vec(),
        }
    }

    /// Serializes the root chain into per-page descriptor lists, packing
    /// exactly as SPDK's blob_serialize: flags, xattrs, internal xattrs,
    /// then the extent table (or RLE extents), opening a new page whenever
    /// the next descriptor does not fit.
    pub fn serialize(&self) -> Vec<Vec<Descriptor>> {
        let mut pages = vec![vec![Descriptor::Flags {
            invalid_flags: self.invalid_flags,
            data_ro_flags: self.data_ro_flags,
            md_ro_flags: self.md_ro_flags,
        }]];
        let mut remaining = DESCRIPTORS_LEN - pages[0][0].encoded_len();
        let push = |pages: &mut Vec<Vec<Descriptor>>, remaining: &mut usize, d: Descriptor| {
            if d.encoded_len() > *remaining {
                pages.push(Vec::new());
                *remaining = DESCRIPTORS_LEN;
            }
            *remaining -= d.encoded_len();
            pages.last_mut().expect("at least one page").push(d);
        };
        for (n, v) in &self.xattrs {
            push(
                &mut pages,
                &mut remaining,
                Descriptor::Xattr {
                    name: n.clone(),
                    value: v.clone(),
                },
            );
        }
        for (n, v) in &self.xattrs_internal {
            push(
                &mut pages,
                &mut remaining,
                Descriptor::XattrInternal {
                    name: n.clone(),
                    value: v.clone(),
                },
            );
        }
        if self.use_extent_table {
            self.serialize_extent_table(&mut pages, &mut remaining);
        } else {
            self.serialize_extents_rle(&mut pages, &mut remaining);
        }
        pages
    }

    fn serialize_extent_table(&self, pages: &mut Vec<Vec<Descriptor>>, remaining: &mut usize) {
        let eps = &self.extent_pages;
        let mut next = 0usize;
        loop {
            let mut runs = Vec::new();
            if *remaining >= 13 {
                let mut used = 13;
                let mut len = 1u32;
                while next < eps.len() {
                    if *remaining < used + 8 {
                        break;
                    }
                    if eps[next] == 0 && next + 1 < eps.len() && eps[next + 1] == 0 {
                        len += 1;
                        next += 1;
                        continue;
                    }
                    runs.push((eps[next], len));
                    len = 1;
                    used += 8;
                    next += 1;
                }
                let d = Descriptor::ExtentTable {
                    num_clusters: self.clusters.len() as u64,
                    runs,
                };
                *remaining -= d.encoded_len();
                pages.last_mut().expect("page").push(d);
            }
            if next == eps.len() {
                break;
            }
            pages.push(Vec::new());
            *remaining = DESCRIPTORS_LEN;
        }
    }

    fn serialize_extents_rle(&self, pages: &mut Vec<Vec<Descriptor>>, remaining: &mut usize) {
        let c = &self.clusters;
        let mut i = 0usize;
        while i < c.len() {
            let mut runs = Vec::new();
            let mut used = 5;
            while i < c.len() && *remaining >= used + 8 {
                let start = c[i];
                let mut len = 1usize;
                while i + len < c.len()
                    && ((start == 0 && c[i + len] == 0)
                        || (start != 0 && c[i + len] == start + len as u32))
                {
                    len += 1;
                }
                runs.push((start, len as u32));
                used += 8;
                i += len;
            }
            if !runs.is_empty() {
                let d = Descriptor::ExtentRle(runs);
                *remaining -= d.encoded_len();
                pages.last_mut().expect("page").push(d);
            }
            if i < c.len() {
                pages.push(Vec::new());
                *remaining = DESCRIPTORS_LEN;
            }
        }
    }

    /// Rebuilds a blob from its root chain, reading extent pages through
    /// `extent_page` (md page index -> decoded page). Every value is checked
    /// against `total_clusters` and `md_len`.
    pub fn parse(
        id: BlobId,
        chain: &[(u32, MdPage)],
        mut extent_page: impl FnMut(u32) -> Result<MdPage, String>,
        total_clusters: u32,
        md_len: u32,
    ) -> Result<BlobMd, String> {
        let mut md = BlobMd {
            id,
            ..Default::default()
        };
        let mut et_clusters: Option<u64> = None;
        let mut saw_rle = false;
        for (idx, (_, page)) in chain.iter().enumerate() {
            if page.id != id {
                return Err(corrupt(format!(
                    "page {idx} of the chain belongs to blob {:#x}",
                    page.id
                )));
            }
            if page.sequence_num as usize != idx {
                return Err(corrupt(format!(
                    "page {idx} of the chain has sequence number {}",
                    page.sequence_num
                )));
            }
            for d in &page.descriptors {
                match d {
                    Descriptor::Flags {
                        invalid_flags,
                        data_ro_flags,
                        md_ro_flags,
                    } => {
                        md.invalid_flags = *invalid_flags;
                        md.data_ro_flags = *data_ro_flags;
                        md.md_ro_flags = *md_ro_flags;
                    }
                    Descriptor::Xattr { name, value } => {
                        md.xattrs.push((name.clone(), value.clone()))
                    }
                    Descriptor::XattrInternal { name, value } => {
                        md.xattrs_internal.push((name.clone(), value.clone()))
                    }
                    Descriptor::ExtentRle(runs) => {
                        saw_rle = true;
                        for &(c, n) in runs {
                            if md.clusters.len() as u64 + n as u64 > MAX_BLOB_CLUSTERS {
                                return Err(corrupt(
                                    "extent RLE describes more clusters than supported",
                                ));
                            }
                            if c != 0 && c as u64 + n as u64 > total_clusters as u64 {
                                return Err(corrupt(format!(
                                    "extent RLE run {c}+{n} is past cluster {total_clusters}"
                                )));
                            }
                            md.clusters
                                .extend((0..n).map(|j| if c == 0 { 0 } else { c + j }));
                        }
                    }
                    Descriptor::ExtentTable { num_clusters, runs } => {
                        if *num_clusters > MAX_BLOB_CLUSTERS
                            || et_clusters.is_some_and(|n| n != *num_clusters)
                        {
                            return Err(corrupt(format!(
                                "extent table num_clusters {num_clusters} is invalid"
                            )));
                        }
                        et_clusters = Some(*num_clusters);
                        for &(p, n) in runs {
                            if md.extent_pages.len() as u64 + n as u64 > MAX_BLOB_CLUSTERS {
                                return Err(corrupt("extent table lists too many pages"));
                            }
                            if p != 0 && (p as u64 + n as u64 > md_len as u64) {
                                return Err(corrupt(format!(
                                    "extent page {p}+{n} is outside the md region"
                                )));
                            }
                            md.extent_pages
                                .extend((0..n).map(|j| if p == 0 { 0 } else { p + j }));
                        }
                    }
                    Descriptor::ExtentPage { .. } => {
                        return Err(corrupt("an extent page descriptor inside the root chain"));
                    }
                }
            }
        }
        md.use_extent_table = md.invalid_flags & BLOB_EXTENT_TABLE != 0;
        if md.use_extent_table {
            if saw_rle {
                return Err(corrupt("both extent RLE and extent table descriptors"));
            }
            let n = et_clusters.unwrap_or(0) as usize;
            md.clusters = vec![0; n];
            if md.extent_pages.len() != n.div_ceil(EXTENTS_PER_EP) {
                return Err(corrupt(format!(
                    "extent table lists {} pages for {n} clusters",
                    md.extent_pages.len()
                )));
            }
            for slot in 0..md.extent_pages.len() {
                let p = md.extent_pages[slot];
                if p == 0 {
                    continue;
                }
                let page = extent_page(p).map_err(|e| format!("extent page {p}: {e}"))?;
                let start = slot * EXTENTS_PER_EP;
                let want = (n - start).min(EXTENTS_PER_EP);
                match page.descriptors.as_slice() {
                    [Descriptor::ExtentPage {
                        start_cluster_idx,
                        cluster_idx,
                    }] if *start_cluster_idx as usize == start && cluster_idx.len() == want => {
                        for (j, &c) in cluster_idx.iter().enumerate() {
                            if c >= total_clusters {
                                return Err(corrupt(format!(
                                    "extent page {p} maps to cluster {c}, past {total_clusters}"
                                )));
                            }
                            md.clusters[start + j] = c;
                        }
                    }
                    _ => {
                        return Err(corrupt(format!(
                            "md page {p} is not the extent page for clusters {start}..{}",
                            start + want
                        )))
                    }
                }
            }
        } else if et_clusters.is_some() {
            return Err(corrupt(
                "extent table descriptor without the extent table flag",
            ));
        }
        md.disk_clusters = md.clusters.clone();
        md.disk_extent_pages = md.extent_pages.clone();
        md.chain = chain.iter().map(|(p, _)| *p).collect();
        Ok(md)
    }
}

/// Whether an xattr of this name and value can be stored (one descriptor must fit one page).
pub fn xattr_fits(name: &str, value: &[u8]) -> bool {
    4 + name.len() + value.len() <= MAX_DESCRIPTOR_LEN && name.len() <= u16::MAX as usize
}
