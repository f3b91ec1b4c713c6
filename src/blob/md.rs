//! A blob's metadata in memory: flags, xattrs, the cluster map, and where
//! it sits on disk. Its translation to metadata pages is in `md_pages`.

use super::format::descriptor::MAX_DESCRIPTOR_LEN;
use super::format::{Descriptor, EXTENTS_PER_EP};
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
}

/// Whether an xattr of this name and value can be stored (one descriptor must fit one page).
pub fn xattr_fits(name: &str, value: &[u8]) -> bool {
    4 + name.len() + value.len() <= MAX_DESCRIPTOR_LEN && name.len() <= u16::MAX as usize
}
