//! Namespaces: what Identify Namespace says about one NSID, in the form the
//! I/O path needs (size, block size) plus the raw structure.

use super::spec::IdentifyNamespace;
use std::sync::Arc;

/// An active namespace of a controller (SPDK's `spdk_nvme_ns`).
///
/// A cheap-to-clone snapshot; I/O calls take `&Namespace` so an I/O can only
/// name a namespace the driver has identified.
#[derive(Clone, Debug)]
pub struct Namespace {
    pub(crate) id: u32,
    pub(crate) num_blocks: u64,
    pub(crate) block_size: u32,
    pub(crate) lba_shift: u32,
    pub(crate) supports_dsm: bool,
    pub(crate) supports_write_zeroes: bool,
    pub(crate) supports_compare: bool,
    pub(crate) data: Arc<IdentifyNamespace>,
}

impl Namespace {
    /// Builds from Identify Namespace data and the controller's ONCS.
    pub(crate) fn new(id: u32, data: IdentifyNamespace, oncs: u16) -> Option<Self> {
        use super::spec::identify::{ONCS_COMPARE, ONCS_DSM, ONCS_WRITE_ZEROES};
        let bs = data.block_size();
        if data.is_inactive() || bs == 0 {
            return None;
        }
        Some(Namespace {
            id,
            num_blocks: data.nsze,
            block_size: bs,
            lba_shift: bs.trailing_zeros(),
            supports_dsm: oncs & ONCS_DSM != 0,
            supports_write_zeroes: oncs & ONCS_WRITE_ZEROES != 0,
            supports_compare: oncs & ONCS_COMPARE != 0,
            data: Arc::new(data),
        })
    }
    /// Namespace ID.
    pub fn id(&self) -> u32 {
        self.id
    }
    /// Size in logical blocks (NSZE).
    pub fn num_blocks(&self) -> u64 {
        self.num_blocks
    }
    /// Logical block (sector) size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }
    /// Size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.num_blocks << self.lba_shift
    }
    /// True when Dataset Management (deallocate) is supported.
    pub fn supports_deallocate(&self) -> bool {
        self.supports_dsm
    }
    /// True when Write Zeroes is supported.
    pub fn supports_write_zeroes(&self) -> bool {
        self.supports_write_zeroes
    }
    /// True when Compare is supported.
    pub fn supports_compare(&self) -> bool {
        self.supports_compare
    }
    /// The Identify Namespace data.
    pub fn identify(&self) -> &IdentifyNamespace {
        &self.data
    }
}
