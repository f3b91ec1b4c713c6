//! Errors of the NVMe driver: one enum, each message says what failed and what to do.

use super::spec::Status;
use std::time::Duration;

/// What went wrong attaching, programming or using an NVMe controller.
#[derive(Debug, thiserror::Error)]
pub enum NvmeError {
    /// The PCI layer failed (mapping BAR0, config space).
    #[error("PCI access failed: {0}")]
    Pci(Box<crate::pci::PciError>),
    /// DMA memory could not be allocated.
    #[error("DMA memory: {0}")]
    Env(Box<crate::env::EnvError>),
    /// The controller did not reach the wanted state in time.
    #[error("controller did not {what} within {waited:?} (CAP.TO); check the device or its driver binding")]
    NotReady {
        /// The transition that was awaited.
        what: &'static str,
        /// How long we waited.
        waited: Duration,
    },
    /// CSTS.CFS is set: the controller hit a fatal error and must be reset.
    #[error("controller fatal status (CSTS.CFS=1): reset the controller with Controller::reset")]
    ControllerFatal,
    /// Registers read all ones: the device was removed or its BAR is not reachable.
    #[error("controller registers read all ones: the device is gone or not enabled")]
    DeviceGone,
    /// The controller does not support what we need.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A command completed with an error status (decoded by name).
    #[error("{opcode} failed: {status}")]
    Command {
        /// What the command was ("Read", "Identify", ...).
        opcode: &'static str,
        /// The decoded completion status.
        status: Status,
    },
    /// A command did not complete in time.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// The command.
        what: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// No free request on this queue pair: complete some I/O (process_completions) and retry.
    #[error("queue full: no free request on this qpair; call process_completions and retry")]
    QueueFull,
    /// The I/O was failed because the controller was reset while it was in flight.
    #[error("I/O failed by a controller reset while in flight; resubmit it")]
    AbortedByReset,
    /// The controller is detached or failed: no new commands are accepted.
    #[error("controller is failed or detached; reset it or attach again")]
    ControllerUnavailable,
    /// The queue pair was shut down ([`QPair::shutdown`](super::QPair::shutdown)): it takes no more commands.
    #[error("queue pair {0} was shut down: allocate a new one")]
    QPairShutDown(u16),
    /// Zero logical blocks were asked for.
    #[error("zero-length I/O: lba_count must be at least 1")]
    ZeroLength,
    /// The LBA range ends beyond the namespace.
    #[error("LBA Out of Range: blocks {lba}..{lba}+{count} are beyond namespace {nsid} ({nsze} blocks); not submitted")]
    LbaOutOfRange {
        /// Namespace.
        nsid: u32,
        /// Starting LBA.
        lba: u64,
        /// Number of blocks.
        count: u64,
        /// Namespace size in blocks.
        nsze: u64,
    },
    /// The buffer is shorter than the I/O.
    #[error("buffer of {have} bytes is shorter than the I/O ({need} bytes)")]
    BufferTooShort {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// A buffer (or segment) cannot be described by PRPs.
    #[error("buffer not usable for DMA: {0}")]
    BadBuffer(String),
    /// No namespace with that ID is active.
    #[error("namespace {0} does not exist or is inactive on this controller")]
    NoSuchNamespace(u32),
    /// A caller argument outside what the controller or driver allows.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// No I/O queue ID is free (Set Features Number of Queues granted fewer).
    #[error("no free I/O queue: the controller granted {0} I/O queue pairs; free one first")]
    NoFreeQueue(u16),
    /// An NVMe/TCP connection failed (connect, reset, protocol error).
    #[error("{0}")]
    Tcp(Box<super::tcp::TcpError>),
    /// The controller refused a Fabrics Connect (the message names why:
    /// wrong subsystem NQN, host not allowed, ...).
    #[error("{0}")]
    ConnectRefused(String),
    /// An NVMe/TCP connection failed: the I/O in flight on it failed once
    /// with this error, and its queue pair (or the admin queue) takes no
    /// more commands until the controller is reset.
    #[error("the NVMe/TCP connection failed (its I/O in flight failed once with this error): reset the controller (Controller::reset) to reconnect, then resubmit")]
    ConnectionLost,
    /// A reset could not connect to the controller again (the target is
    /// unreachable, or refused the connection): the controller stays
    /// failed until a later reset succeeds.
    #[error("reconnecting to {trid} failed: {source}; the controller stays failed: retry Controller::reset later")]
    ReconnectFailed {
        /// The controller's transport ID.
        trid: String,
        /// Why the connection failed.
        source: Box<NvmeError>,
    },
}

// Boxed so that an NvmeError (and a SubmitError carrying a buffer back) stays small.
impl From<crate::pci::PciError> for NvmeError {
    fn from(e: crate::pci::PciError) -> Self {
        NvmeError::Pci(Box::new(e))
    }
}

impl From<crate::env::EnvError> for NvmeError {
    fn from(e: crate::env::EnvError) -> Self {
        NvmeError::Env(Box::new(e))
    }
}

impl NvmeError {
    /// The NVMe status, when the error is a failed command.
    pub fn status(&self) -> Option<Status> {
        match self {
            NvmeError::Command { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// True when retrying the same call later may succeed (queue full, reset,
    /// a lost NVMe/TCP connection once the controller is reset, a reconnect
    /// that may find the target back, or a command status without DNR).
    pub fn is_retryable(&self) -> bool {
        match self {
            NvmeError::QueueFull
            | NvmeError::AbortedByReset
            | NvmeError::ConnectionLost
            | NvmeError::ReconnectFailed { .. } => true,
            NvmeError::Command { status, .. } => !status.dnr,
            _ => false,
        }
    }
}

/// Result type of the nvme layer.
pub type Result<T, E = NvmeError> = std::result::Result<T, E>;
