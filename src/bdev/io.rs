//! The vocabulary of one I/O: its type, its status, how it completes.

use super::buf::IoData;

/// I/O types a bdev may support (SPDK's `enum spdk_bdev_io_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum IoType {
    /// Read blocks into the buffers.
    Read = 0,
    /// Write the buffers to blocks.
    Write = 1,
    /// Deallocate blocks (contents afterwards are unspecified or zeroes).
    Unmap = 2,
    /// Make earlier writes durable.
    Flush = 3,
    /// Reset the device; outstanding I/O may be aborted.
    Reset = 4,
    /// Write zeroes without a data buffer.
    WriteZeroes = 5,
    /// Compare the buffers with the blocks; miscompare is an error status.
    Compare = 6,
    /// Atomically compare, and write only if equal.
    CompareAndWrite = 7,
}

impl IoType {
    /// Every type, in declaration order.
    pub const ALL: [IoType; 8] = [
        IoType::Read,
        IoType::Write,
        IoType::Unmap,
        IoType::Flush,
        IoType::Reset,
        IoType::WriteZeroes,
        IoType::Compare,
        IoType::CompareAndWrite,
    ];

    /// True for types that change the media (need a writable descriptor).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            IoType::Write
                | IoType::Unmap
                | IoType::WriteZeroes
                | IoType::CompareAndWrite
                | IoType::Flush
                | IoType::Reset
        )
    }

    /// True for types that carry a data buffer.
    pub fn has_data(self) -> bool {
        matches!(
            self,
            IoType::Read | IoType::Write | IoType::Compare | IoType::CompareAndWrite
        )
    }

    /// Bit of this type in a supported-types mask.
    #[inline]
    pub fn bit(self) -> u32 {
        1 << self as u8
    }

    /// SPDK's name of the type, as `bdev_get_bdevs` prints in `supported_io_types`.
    pub fn name(self) -> &'static str {
        match self {
            IoType::Read => "read",
            IoType::Write => "write",
            IoType::Unmap => "unmap",
            IoType::Flush => "flush",
            IoType::Reset => "reset",
            IoType::WriteZeroes => "write_zeroes",
            IoType::Compare => "compare",
            IoType::CompareAndWrite => "compare_and_write",
        }
    }
}

/// How an I/O ended (SPDK's `SPDK_BDEV_IO_STATUS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    /// Done without error.
    Success,
    /// Failed; the module logged why.
    Failed,
    /// A compare found different data.
    Miscompare,
    /// Aborted (reset, hot remove, or cancelled while queued).
    Aborted,
    /// The module ran out of resources: the bdev layer queues and retries
    /// it once in-flight I/O drains; users never see this status.
    NoMem,
    /// An NVMe error status (status code type and status code).
    NvmeError {
        /// Status Code Type.
        sct: u8,
        /// Status Code.
        sc: u8,
    },
}

impl IoStatus {
    /// True for `Success`.
    pub fn is_success(self) -> bool {
        self == IoStatus::Success
    }
}

/// Handle of a request in a channel's pool: slot index plus a generation,
/// so a stale or doubled completion is detected and ignored. One `u64`
/// (generation in the high half) so it moves as a single word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoId(u64);

impl IoId {
    #[inline]
    pub(crate) fn new(idx: u32, gen: u32) -> IoId {
        IoId(idx as u64 | (gen as u64) << 32)
    }

    /// Slot index in the channel's pool (dense: 0..pool size), handy as an
    /// index into a module's per-request table.
    #[inline]
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// The handle as one word, for a module that tags device commands
    /// with it ([`IoId::from_u64`] turns it back).
    #[inline]
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// A handle from [`IoId::as_u64`]. A word that names no request in
    /// flight is harmless: the layer ignores (and logs) a completion for it.
    #[inline]
    pub fn from_u64(v: u64) -> IoId {
        IoId(v)
    }

    #[inline]
    pub(crate) fn gen(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// What a completed I/O hands back to its submitter.
#[derive(Debug)]
pub struct IoCompletion {
    /// How the I/O ended.
    pub status: IoStatus,
    /// Its type.
    pub io_type: IoType,
    /// First block.
    pub offset_blocks: u64,
    /// Length in blocks.
    pub num_blocks: u64,
    /// The buffers the I/O took, handed back.
    pub data: IoData,
    /// Tick at submission (see [`super::ticks`]).
    pub submit_tick: u64,
    /// Tick at completion.
    pub complete_tick: u64,
}

impl IoCompletion {
    /// True when the I/O succeeded.
    pub fn success(&self) -> bool {
        self.status.is_success()
    }

    /// Latency in ticks (nanoseconds).
    pub fn latency_ticks(&self) -> u64 {
        self.complete_tick.saturating_sub(self.submit_tick)
    }
}

/// A completion callback, stored in the pooled request and called once on
/// the submitting thread.
///
/// It takes `self: Box<Self>` so a caller can keep a preallocated task
/// object (buffer, bookkeeping) that travels with the I/O and comes back
/// in its completion, ready to be submitted again: no allocation per I/O.
/// Every `FnOnce(IoCompletion)` closure is an `IoDone` too; boxing one that
/// captures nothing does not allocate.
pub trait IoDone: 'static {
    /// Called once when the I/O completes.
    fn io_done(self: Box<Self>, completion: IoCompletion);
}

impl<F: FnOnce(IoCompletion) + 'static> IoDone for F {
    fn io_done(self: Box<Self>, completion: IoCompletion) {
        (*self)(completion)
    }
}

/// A submission the bdev layer refused; the data and callback come back.
pub struct Rejected {
    /// Why.
    pub error: super::BdevError,
    /// The data that was passed in.
    pub data: IoData,
    /// The callback that was passed in (never called).
    pub cb: Option<Box<dyn IoDone>>,
}

impl std::fmt::Debug for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish()
    }
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Rejected {}
