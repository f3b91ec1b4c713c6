//! `BdevError`: every way a bdev call can fail, with what to do about it.

pub use super::error_source::ErrorSource;
use super::io::IoType;

/// Errors of the bdev layer and its modules.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BdevError {
    /// No bdev with that name, alias or UUID is registered.
    #[error("no bdev named '{0}': check the name (bdev_get_bdevs lists them) or create it first")]
    NotFound(String),
    /// A bdev with that name or alias already exists.
    #[error("a bdev named '{0}' already exists: pick another name")]
    Exists(String),
    /// The bdev is claimed by a module, so it cannot be opened for writing or claimed again.
    #[error("bdev '{bdev}' is already claimed by module '{module}': close the vbdev on it first")]
    Claimed {
        /// The claimed bdev.
        bdev: String,
        /// The module holding the claim.
        module: String,
    },
    /// A write-type I/O was sent through a descriptor opened read-only.
    #[error("{io_type:?} through a read-only descriptor of '{bdev}': open it with write = true")]
    ReadOnly {
        /// The bdev.
        bdev: String,
        /// The rejected I/O type.
        io_type: IoType,
    },
    /// The I/O reaches past the end of the bdev.
    #[error("I/O of {num_blocks} blocks at block {offset_blocks} is beyond the end of '{bdev}' ({bdev_blocks} blocks)")]
    OutOfRange {
        /// The bdev.
        bdev: String,
        /// First block of the I/O.
        offset_blocks: u64,
        /// Length of the I/O in blocks.
        num_blocks: u64,
        /// Size of the bdev in blocks.
        bdev_blocks: u64,
    },
    /// A byte offset or length is not a multiple of the block size, or a buffer has the wrong length.
    #[error("{what} = {value} is not a multiple of the block size {block_size} of '{bdev}'")]
    Unaligned {
        /// The bdev.
        bdev: String,
        /// Which quantity is wrong ("offset", "length", "buffer length").
        what: &'static str,
        /// Its value in bytes.
        value: u64,
        /// The bdev's block size.
        block_size: u32,
    },
    /// The data buffers do not hold exactly the number of bytes the I/O moves.
    #[error("buffers hold {got} bytes but the I/O moves {want} bytes")]
    BufferLength {
        /// Bytes the I/O needs.
        want: u64,
        /// Bytes the buffers hold.
        got: u64,
    },
    /// The bdev's module does not support this I/O type.
    #[error("bdev '{bdev}' does not support {io_type:?}")]
    Unsupported {
        /// The bdev.
        bdev: String,
        /// The unsupported type.
        io_type: IoType,
    },
    /// The channel's I/O pool is empty: wait with `Channel::queue_io_wait` and retry.
    #[error(
        "no free bdev_io in this channel's pool: retry from a Channel::queue_io_wait callback"
    )]
    NoMem,
    /// The bdev was hot-removed (unregistered); close the descriptor.
    #[error("bdev '{0}' was removed: close the descriptor")]
    Removed(String),
    /// A channel from another bdev was passed.
    #[error("the channel belongs to bdev '{channel}', not to '{desc}'")]
    WrongChannel {
        /// The descriptor's bdev.
        desc: String,
        /// The channel's bdev.
        channel: String,
    },
    /// Invalid parameters when creating a bdev.
    #[error("invalid parameter: {0}")]
    InvalidParam(String),
    /// An operating-system call (or the device or thread underneath)
    /// failed: file, controller, worker thread.
    #[error("{op} '{path}': {source}")]
    Os {
        /// What was attempted.
        op: &'static str,
        /// On which path (or controller).
        path: String,
        /// The error underneath (its errno is what the RPC methods answer).
        #[source]
        source: ErrorSource,
    },
    /// A configuration file or JSON-RPC parameter set is wrong.
    #[error("{0}")]
    Config(String),
    /// The I/O was carried out and completed with an error status.
    #[error("I/O completed with status {0:?}")]
    IoStatus(super::IoStatus),
    /// An unlock named a range this channel does not hold locked.
    #[error("blocks {offset_blocks}..+{num_blocks} of '{bdev}' are not locked by this channel: unlock exactly a range this channel locked, after its callback reported success")]
    RangeNotLocked {
        /// The bdev.
        bdev: String,
        /// First block of the range.
        offset_blocks: u64,
        /// Length of the range in blocks.
        num_blocks: u64,
    },
    /// A range lock that was waiting to be granted will never be.
    #[error("range lock on '{bdev}' cancelled before it was granted: {why}; request it again through an open descriptor and a live channel")]
    LockCancelled {
        /// The bdev.
        bdev: String,
        /// Why (descriptor closed, channel put).
        why: &'static str,
    },
    /// An async I/O was awaited on a lightweight thread through a channel
    /// made outside any thread: nothing polls that channel, so the I/O
    /// would never complete.
    #[error("async I/O on bdev '{bdev}' awaited on a thread through a channel made outside any thread: nothing polls that channel; get the channel on the thread that awaits (inside Thread::block_on, spawn_local or event::start), or poll it yourself outside threads")]
    ChannelNotPolled {
        /// The bdev.
        bdev: String,
    },
    /// The thread layer could not give or serve this thread's channel to
    /// the bdev (the thread is exiting, the bdev is being destroyed).
    #[error("I/O channel to bdev '{bdev}': {source}")]
    Channel {
        /// The bdev.
        bdev: String,
        /// What the thread layer said.
        #[source]
        source: ErrorSource,
    },
    /// A bdev someone has open cannot shrink (SPDK's `-EBUSY`).
    #[error("bdev '{bdev}' is open ({descs} descriptor(s)): it cannot shrink from {num_blocks} to {new_blocks} blocks; close it first")]
    ShrinkWhileOpen {
        /// The bdev.
        bdev: String,
        /// Its size in blocks.
        num_blocks: u64,
        /// The size asked for.
        new_blocks: u64,
        /// Descriptors open on it.
        descs: usize,
    },
    /// No module of that name is registered.
    #[error("no bdev module named '{0}'")]
    NoModule(String),
}

/// Result of bdev calls.
pub type Result<T> = std::result::Result<T, BdevError>;
