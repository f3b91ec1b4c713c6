//! Errors of the lvol layer, each with the errno SPDK answers for it.

use crate::bdev::BdevError;
use crate::blob::BlobError;

/// What went wrong in an lvstore or lvol operation.
#[derive(Debug, thiserror::Error)]
pub enum LvolError {
    /// An lvstore or lvol of that name already exists (`-EEXIST`).
    #[error("{what} '{name}' already exists: pick another name")]
    Exists {
        /// "lvolstore" or "lvol".
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// No lvstore or lvol by that name or UUID (`-ENODEV`).
    #[error("{what} '{name}' not found (bdev_lvol_get_lvstores / bdev_lvol_get_lvols list them)")]
    NotFound {
        /// "lvolstore", "lvol" or "bdev".
        what: &'static str,
        /// The name or UUID asked for.
        name: String,
    },
    /// A name that is empty or too long (`-EINVAL`).
    #[error("{what} name '{name}' is invalid: it must be 1 to {max} bytes")]
    BadName {
        /// "lvolstore" or "lvol".
        what: &'static str,
        /// The name given.
        name: String,
        /// Longest allowed length.
        max: usize,
    },
    /// Some other bad argument (`-EINVAL`).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// The lvol or lvstore is in use (`-EBUSY`).
    #[error("{0}")]
    Busy(String),
    /// A snapshot with more than one clone cannot be deleted (`-EPERM`,
    /// as `_vbdev_lvol_destroy`).
    #[error(
        "lvol '{name}' is a snapshot with {clones} clones: delete or inflate the clones first"
    )]
    HasClones {
        /// The snapshot.
        name: String,
        /// How many clones it has.
        clones: usize,
    },
    /// The operation is not allowed on this lvol (`-EPERM`): a shallow
    /// copy of an lvol that is not read-only.
    #[error("{0}")]
    NotPermitted(String),
    /// Not enough free clusters (`-ENOSPC`).
    #[error("lvolstore '{lvs}' has {free} free clusters; {need} are needed: free space or grow the store")]
    NoSpace {
        /// The store.
        lvs: String,
        /// Free clusters.
        free: u64,
        /// Clusters the operation needs.
        need: u64,
    },
    /// The base bdev holds no lvstore, or one whose name or UUID is corrupt
    /// (`-EINVAL`, as `lvs_read_uuid`).
    #[error("bdev '{bdev}': no valid lvolstore: {reason}")]
    NotAnLvstore {
        /// The base bdev.
        bdev: String,
        /// What is missing or corrupt.
        reason: String,
    },
    /// The blobstore refused or failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The bdev layer refused or failed.
    #[error(transparent)]
    Bdev(#[from] BdevError),
}

impl LvolError {
    /// The positive errno SPDK's lvol code reports for this error (its RPC
    /// answers code `-errno`, message `strerror(errno)`).
    pub fn errno(&self) -> i32 {
        match self {
            LvolError::Exists { .. } => libc::EEXIST,
            LvolError::NotFound { .. } => libc::ENODEV,
            LvolError::BadName { .. } | LvolError::Invalid(_) => libc::EINVAL,
            LvolError::Busy(_) => libc::EBUSY,
            LvolError::HasClones { .. } | LvolError::NotPermitted(_) => libc::EPERM,
            LvolError::NoSpace { .. } => libc::ENOSPC,
            LvolError::NotAnLvstore { .. } => libc::EINVAL,
            LvolError::Blob(e) => blob_errno(e),
            LvolError::Bdev(e) => crate::bdev::rpc::errno_of(e),
        }
    }
}

/// The errno SPDK's blobstore uses for the same failure.
pub fn blob_errno(e: &BlobError) -> i32 {
    match e {
        BlobError::Io { .. } => libc::EIO,
        BlobError::SuperBlock(_) | BlobError::Mask { .. } | BlobError::CorruptBlob { .. } => {
            libc::EILSEQ
        }
        BlobError::BstypeMismatch { .. } => libc::ENXIO,
        BlobError::UnknownInvalidFlags { .. } => libc::EINVAL,
        BlobError::NoSuchBlob(_) => libc::ENOENT,
        BlobError::ReadOnly(_) | BlobError::MdReadOnly(_) | BlobError::StoreReadOnly => libc::EPERM,
        BlobError::Busy { .. } | BlobError::BlobsOpen(_) => libc::EBUSY,
        BlobError::OutOfRange { .. } | BlobError::InvalidArgument(_) => libc::EINVAL,
        BlobError::NoSpace(_) => libc::ENOSPC,
        BlobError::AlreadyParent { .. } => libc::EEXIST,
        BlobError::Thread(_) | BlobError::NotRunning => libc::ENODEV,
        #[allow(unreachable_patterns)]
        _ => libc::EIO,
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, LvolError>;
