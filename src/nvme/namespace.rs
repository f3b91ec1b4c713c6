//! Namespaces: what Identify Namespace says about one NSID, in the form the
//! I/O path needs (size, block size) plus the raw structure.
//!
//! A namespace formatted with metadata (an LBA format with MS > 0, with or
//! without end-to-end protection) is listed but takes no I/O that
//! addresses blocks: the driver has no metadata buffers yet, and such a
//! device would move more bytes per block than the data buffer holds
//! (extended LBAs) or fetch metadata from address 0 (a separate buffer).
//! Those commands fail with [`NvmeError::Unsupported`] naming the format.

use super::spec::IdentifyNamespace;
use super::NvmeError;
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
    /// Blocks that commands may address: `num_blocks`, or 0 for a
    /// namespace the driver cannot do block I/O on (metadata formats),
    /// so the one range check refuses it at no cost to the I/O path.
    pub(crate) io_blocks: u64,
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
        let has_metadata = data.lba_format().ms != 0;
        Some(Namespace {
            id,
            num_blocks: data.nsze,
            block_size: bs,
            lba_shift: bs.trailing_zeros(),
            io_blocks: if has_metadata { 0 } else { data.nsze },
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
    /// Metadata bytes per logical block in the LBA format in use (MS).
    pub fn metadata_size(&self) -> u16 {
        self.data.lba_format().ms
    }
    /// End-to-end protection information type in use (DPS bits 2:0; 0 = none).
    pub fn protection_type(&self) -> u8 {
        self.data.dps & 0x7
    }
    /// Whether commands that address blocks (read, write, compare, write
    /// zeroes, deallocate) are accepted: false for a namespace formatted
    /// with metadata, which the driver does not support yet (see the
    /// module docs). Flush is accepted either way.
    pub fn supports_block_io(&self) -> bool {
        self.metadata_size() == 0
    }

    /// `Ok` when [`Namespace::supports_block_io`]; otherwise the error
    /// block commands fail with, naming the format and what to do.
    pub fn check_block_io(&self) -> Result<(), NvmeError> {
        if self.supports_block_io() {
            return Ok(());
        }
        let ext = if self.data.flbas & 1 << 4 != 0 {
            "extended LBAs"
        } else {
            "a separate buffer"
        };
        let pi = match self.protection_type() {
            0 => String::new(),
            t => format!(", protection information type {t}"),
        };
        Err(NvmeError::Unsupported(format!(
            "namespace {} is formatted with {} bytes of metadata per block ({ext}{pi}); \
             metadata is not supported yet: format it with an LBA format without \
             metadata (MS = 0)",
            self.id,
            self.metadata_size()
        )))
    }

    /// The Identify Namespace data.
    pub fn identify(&self) -> &IdentifyNamespace {
        &self.data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(ms: u16, flbas: u8, dps: u8) -> IdentifyNamespace {
        let mut d: IdentifyNamespace = crate::nvme::spec::zeroed();
        d.nsze = 1000;
        d.nlbaf = 1;
        d.lbaf[0].lbads = 9;
        d.lbaf[1].lbads = 12;
        d.lbaf[1].ms = ms;
        d.flbas = flbas;
        d.dps = dps;
        d
    }

    #[test]
    fn a_format_without_metadata_takes_block_io() {
        let ns = Namespace::new(1, data(8, 0, 0), 0).unwrap();
        assert_eq!((ns.block_size(), ns.metadata_size()), (512, 0));
        assert!(ns.supports_block_io());
        assert!(ns.check_block_io().is_ok());
        assert_eq!(ns.io_blocks, 1000);
    }

    #[test]
    fn a_metadata_format_is_listed_but_refuses_block_io_by_name() {
        let ns = Namespace::new(3, data(8, 1 | 1 << 4, 1), 0).unwrap();
        assert_eq!((ns.block_size(), ns.num_blocks()), (4096, 1000));
        assert_eq!((ns.metadata_size(), ns.protection_type()), (8, 1));
        assert!(!ns.supports_block_io());
        assert_eq!(ns.io_blocks, 0);
        let msg = ns.check_block_io().unwrap_err().to_string();
        for part in [
            "namespace 3",
            "8 bytes of metadata",
            "extended LBAs",
            "type 1",
        ] {
            assert!(msg.contains(part), "{part:?} missing from {msg:?}");
        }
        let sep = Namespace::new(4, data(16, 1, 0), 0).unwrap();
        let msg = sep.check_block_io().unwrap_err().to_string();
        assert!(
            msg.contains("a separate buffer") && !msg.contains("protection"),
            "{msg}"
        );
    }
}
