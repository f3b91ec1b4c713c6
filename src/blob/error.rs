//! Errors of the blobstore.

use super::format::FormatError;
use super::BlobId;

/// What went wrong in a blobstore operation.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The device failed an I/O.
    #[error("device {op} at block {lba} (+{blocks} blocks) failed: {source}")]
    Io {
        /// read, write, unmap, write_zeroes or flush.
        op: &'static str,
        /// First block.
        lba: u64,
        /// Block count.
        blocks: u64,
        /// The device's error.
        #[source]
        source: std::io::Error,
    },
    /// The super block is not a valid version-3 blobstore super block.
    #[error("cannot load blobstore: {0}")]
    SuperBlock(#[source] FormatError),
    /// The blobstore type on disk differs from the one asked for.
    #[error("blobstore type mismatch: device has {found:?}, caller asked for {expected:?}")]
    BstypeMismatch {
        /// bstype on disk.
        found: [u8; 16],
        /// bstype asked for.
        expected: [u8; 16],
    },
    /// A mask region is corrupt.
    #[error("{which} mask region is corrupt: {source}; the store needs recovery (it was not unloaded cleanly?)")]
    Mask {
        /// Which mask.
        which: &'static str,
        /// The decoding error.
        #[source]
        source: FormatError,
    },
    /// A blob's metadata is corrupt.
    #[error("blob {id:#x}: metadata is corrupt: {reason}")]
    CorruptBlob {
        /// The blob.
        id: BlobId,
        /// What is wrong.
        reason: String,
    },
    /// The blob carries invalid_flags this implementation does not know.
    #[error("blob {id:#x} has unknown invalid_flags {flags:#x}: it was written by a newer blobstore and cannot be opened here")]
    UnknownInvalidFlags {
        /// The blob.
        id: BlobId,
        /// The unknown bits.
        flags: u64,
    },
    /// No blob with this id.
    #[error("no blob {0:#x} in this blobstore (list blobs to see the ids)")]
    NoSuchBlob(BlobId),
    /// The blob's data is read-only (a snapshot, or set read-only).
    #[error("blob {0:#x} is read-only")]
    ReadOnly(BlobId),
    /// The blob's metadata is read-only (unknown md_ro/data_ro flags).
    #[error("blob {0:#x} metadata is read-only (written by a newer blobstore)")]
    MdReadOnly(BlobId),
    /// The operation conflicts with the blob's state.
    #[error("blob {id:#x} is busy: {reason}")]
    Busy {
        /// The blob.
        id: BlobId,
        /// Why.
        reason: String,
    },
    /// I/O outside the blob.
    #[error(
        "blob {id:#x}: I/O at io unit {offset} (+{len}) is beyond its size of {size} io units"
    )]
    OutOfRange {
        /// The blob.
        id: BlobId,
        /// First io unit.
        offset: u64,
        /// Io units.
        len: u64,
        /// Blob size in io units.
        size: u64,
    },
    /// Out of clusters or metadata pages.
    #[error("blobstore is out of {0}: free space or grow the device")]
    NoSpace(&'static str),
    /// A bad argument from the caller.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The metadata thread could not take the request.
    #[error("blobstore metadata thread: {0}")]
    Thread(String),
    /// The store is not (or no longer) on its metadata thread.
    #[error(
        "the blobstore is not running on its metadata thread (unloaded, or the thread exited)"
    )]
    NotRunning,
    /// The store was opened read-only and the operation would write.
    #[error("the blobstore was opened read-only and nothing may be written to it: load it without read_only to change it")]
    StoreReadOnly,
    /// A synchronous call on a device that completes asynchronously (a bdev).
    #[error("{op}: the device completes asynchronously (a bdev); use the async form (Blobstore::{op}_async, or a BlobstoreHandle on the metadata thread)")]
    NotInline {
        /// The operation called.
        op: &'static str,
    },
    /// The snapshot asked for is already the blob's parent (SPDK's `-EEXIST`).
    #[error("snapshot {snapshot:#x} is already the parent of blob {id:#x}")]
    AlreadyParent {
        /// The blob.
        id: BlobId,
        /// Its parent.
        snapshot: BlobId,
    },
    /// The store still has open blobs.
    #[error("cannot unload: {0} blob(s) still open; close them first")]
    BlobsOpen(usize),
}

impl BlobError {
    /// The same error again, for each of several callers one failure
    /// reached (a batch of writes): the same variant and fields; a wrapped
    /// device or format error keeps its kind and its message.
    pub(crate) fn duplicate(&self) -> BlobError {
        use BlobError as E;
        match self {
            E::Io {
                op,
                lba,
                blocks,
                source,
            } => E::Io {
                op,
                lba: *lba,
                blocks: *blocks,
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            E::SuperBlock(f) => E::InvalidArgument(format!("cannot load blobstore: {f}")),
            E::BstypeMismatch { found, expected } => E::BstypeMismatch {
                found: *found,
                expected: *expected,
            },
            E::Mask { which, source } => E::CorruptBlob {
                id: 0,
                reason: format!("{which} mask region is corrupt: {source}"),
            },
            E::CorruptBlob { id, reason } => E::CorruptBlob {
                id: *id,
                reason: reason.clone(),
            },
            E::UnknownInvalidFlags { id, flags } => E::UnknownInvalidFlags {
                id: *id,
                flags: *flags,
            },
            E::NoSuchBlob(id) => E::NoSuchBlob(*id),
            E::ReadOnly(id) => E::ReadOnly(*id),
            E::MdReadOnly(id) => E::MdReadOnly(*id),
            E::Busy { id, reason } => E::Busy {
                id: *id,
                reason: reason.clone(),
            },
            E::OutOfRange {
                id,
                offset,
                len,
                size,
            } => E::OutOfRange {
                id: *id,
                offset: *offset,
                len: *len,
                size: *size,
            },
            E::NoSpace(what) => E::NoSpace(what),
            E::InvalidArgument(s) => E::InvalidArgument(s.clone()),
            E::Thread(s) => E::Thread(s.clone()),
            E::NotRunning => E::NotRunning,
            E::StoreReadOnly => E::StoreReadOnly,
            E::NotInline { op } => E::NotInline { op },
            E::AlreadyParent { id, snapshot } => E::AlreadyParent {
                id: *id,
                snapshot: *snapshot,
            },
            E::BlobsOpen(n) => E::BlobsOpen(*n),
        }
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, BlobError>;
