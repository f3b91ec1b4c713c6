//! SPDK's blobstore on-disk format, version 3: every structure is a 4 KiB
//! page, little-endian and packed (no padding between fields).
//!
//! - [`super_block`]: page 0 of the device, the root of everything.
//! - [`mask`]: the three bitmaps (used md pages, used clusters, used blob ids).
//! - [`md_page`]: a metadata page (id, sequence number, descriptors, next, crc).
//! - [`descriptor`]: the typed records inside a metadata page.
//!
//! Decoders validate every field they read and return [`FormatError`]; they
//! never panic on any input. Encoders produce exactly SPDK's bytes.

pub mod descriptor;
pub mod mask;
pub mod md_page;
pub mod super_block;

pub use descriptor::Descriptor;
pub use mask::{MaskKind, MaskPage};
pub use md_page::{MdPage, INVALID_MD_PAGE};
pub use super_block::SuperBlock;

/// Size of a blobstore page (super block, mask pages, metadata pages).
pub const PAGE_SIZE: usize = 4096;

/// Number of cluster entries an extent page holds (SPDK_EXTENTS_PER_EP).
pub const EXTENTS_PER_EP: usize = 512;

/// Bytes of the descriptor region of a metadata page.
pub const DESCRIPTORS_LEN: usize = 4072;

/// A decoding failure: which structure, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The page or descriptor is shorter than its structure.
    #[error("{what}: truncated ({len} bytes, need {need})")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes available.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The stored crc32c does not match the page content.
    #[error("{what}: crc mismatch (stored {stored:#010x}, computed {computed:#010x}): the page is corrupt or torn")]
    Crc {
        /// What was being decoded.
        what: &'static str,
        /// The crc found in the page.
        stored: u32,
        /// The crc computed over the first 4092 bytes.
        computed: u32,
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was being decoded.
        what: &'static str,
        /// Which field, and why.
        reason: String,
    },
}

/// SPDK's page crc: crc32c (Castagnoli, initial and final xor 0xffffffff)
/// over the first 4092 bytes of the page; the crc itself sits in the last 4.
pub fn page_crc(page: &[u8; PAGE_SIZE]) -> u32 {
    crc32c::crc32c(&page[..PAGE_SIZE - 4])
}

pub(crate) fn get_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn get_u32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(crate) fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(x)
}

pub(crate) fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

pub(crate) fn page_array<'a>(
    b: &'a [u8],
    what: &'static str,
) -> Result<&'a [u8; PAGE_SIZE], FormatError> {
    b.get(..PAGE_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or(FormatError::Truncated {
            what,
            len: b.len(),
            need: PAGE_SIZE,
        })
}
