//! Errors of the target's configuration and transport.

/// What went wrong configuring or running the NVMe-oF target.
#[derive(Debug, thiserror::Error)]
pub enum NvmfError {
    /// An NQN that is not one (empty, too long, not `nqn.` or the discovery NQN).
    #[error("invalid NQN '{nqn}': {why}")]
    InvalidNqn {
        /// The NQN given.
        nqn: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A subsystem with this NQN exists already.
    #[error("subsystem '{0}' already exists: pick another NQN or delete it first")]
    SubsystemExists(String),
    /// No subsystem has this NQN.
    #[error("no subsystem '{0}': create it with nvmf_create_subsystem")]
    NoSubsystem(String),
    /// The bdev a namespace names is not registered.
    #[error("bdev '{0}' not found: create it before adding it as a namespace")]
    NoBdev(String),
    /// A namespace ID that is taken, zero or above the subsystem's limit.
    #[error("namespace ID {nsid} of subsystem '{nqn}' is {why}")]
    BadNsid {
        /// The subsystem.
        nqn: String,
        /// The namespace ID.
        nsid: u32,
        /// Why it cannot be used.
        why: String,
    },
    /// A parameter out of its range.
    #[error("invalid parameter {name} = {value}: {why}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: String,
        /// The allowed range.
        why: String,
    },
    /// The operation needs a subsystem that can hold namespaces and hosts.
    #[error("'{0}' is the discovery subsystem: it has no namespaces or hosts")]
    Discovery(String),
    /// Binding or configuring a listening socket failed.
    #[error("listening on {addr} failed: {source} (is the address local and the port free?)")]
    Listen {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A thread-layer failure (registering a poller).
    #[error("poll group: {0}")]
    Thread(#[from] crate::thread::ThreadError),
}
