//! The thread layer's error type.

use std::sync::Arc;

/// What went wrong in the thread layer. Each message says what failed and
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ThreadError {
    /// The call needs a current lightweight thread and there is none.
    #[error("no current spdk-io thread: call this from a message, poller or task running on a Thread (inside Thread::poll)")]
    NoCurrentThread,
    /// The target thread's message ring is full.
    #[error("message ring of thread '{thread}' is full ({capacity} messages): poll that thread, then retry, or create it with a larger ThreadOpts::msg_ring_size")]
    RingFull {
        /// Name of the target thread.
        thread: Arc<str>,
        /// Capacity of its ring.
        capacity: usize,
    },
    /// The target thread has exited (or was destroyed) and takes no messages.
    #[error("thread '{thread}' has exited: it accepts no more messages; send to a running thread")]
    Exited {
        /// Name of the target thread.
        thread: Arc<str>,
    },
    /// The critical-message slot of the target thread is already taken.
    #[error("critical message slot of thread '{thread}' is busy: the previous critical message has not run yet; poll the thread and retry")]
    CriticalBusy {
        /// Name of the target thread.
        thread: Arc<str>,
    },
    /// `Thread::destroy` was called on a thread that has not exited.
    #[error("thread '{thread}' cannot be destroyed: it has not exited (call exit() on it and poll it until is_exited())")]
    NotExited {
        /// Name of the thread.
        thread: Arc<str>,
    },
    /// A poller period is beyond the supported maximum.
    #[error("poller period {period_us} µs is too long: the maximum is {max_us} µs (one day)")]
    PollerPeriodTooLong {
        /// The period asked for.
        period_us: u64,
        /// The largest period accepted.
        max_us: u64,
    },
    /// The thread has exited and takes no new pollers, channels or tasks.
    #[error("thread '{thread}' has exited: it takes no new pollers, io_channels or tasks")]
    ThreadExited {
        /// Name of the thread.
        thread: Arc<str>,
    },
    /// An io_device with this key is already registered.
    #[error("io_device {key:?} is already registered (as '{name}'): unregister it first or use another key")]
    DeviceExists {
        /// The key.
        key: super::IoDeviceKey,
        /// Name of the registered device.
        name: String,
    },
    /// No io_device with this key is registered.
    #[error("io_device {key:?} is not registered (never registered, or already unregistered)")]
    UnknownDevice {
        /// The key.
        key: super::IoDeviceKey,
    },
    /// The io_device is registered with a different channel context type.
    #[error("io_device {key:?} ('{name}') has channel context type {actual}, not {wanted}")]
    DeviceTypeMismatch {
        /// The key.
        key: super::IoDeviceKey,
        /// Name of the device.
        name: String,
        /// Its registered context type.
        actual: &'static str,
        /// The type asked for.
        wanted: &'static str,
    },
    /// The io_device is being unregistered and hands out no new channels.
    #[error("io_device '{name}' is being unregistered: no new io_channels can be created")]
    DeviceUnregistering {
        /// Name of the device.
        name: String,
    },
    /// The io_device's create callback failed.
    #[error("creating an io_channel for io_device '{name}' failed: {source}")]
    ChannelCreate {
        /// Name of the device.
        name: String,
        /// What the create callback reported.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The future's message was dropped without running (the target thread was destroyed).
    #[error("thread '{thread}' dropped the request without running it (the thread was destroyed)")]
    Canceled {
        /// Name of the target thread.
        thread: Arc<str>,
    },
    /// `block_on` or `shutdown` was called while a thread is being polled
    /// or entered on this OS thread.
    #[error("cannot block on a thread from inside thread '{thread}' (a message, poller, task or enter() closure): await the future there instead, or call this from outside any thread")]
    NestedBlockOn {
        /// The thread current on this OS thread.
        thread: Arc<str>,
    },
    /// A future given to `block_on` is pending and nothing can wake it:
    /// nobody holds its waker and the thread has nothing left to run.
    #[error("the future run by block_on on thread '{thread}' is pending and can never be woken (nobody holds its waker and the thread has no messages, pollers or tasks): was it awaiting something polled by another thread or by nobody?")]
    NeverWoken {
        /// The thread running it.
        thread: Arc<str>,
    },
    /// `shutdown` found io_channels that only their holder can put.
    #[error("thread '{thread}' cannot exit: it still holds io_channels {channels} and nothing on it will put them; drop them (inside Thread::enter) and call shutdown again")]
    ChannelsHeld {
        /// The thread.
        thread: Arc<str>,
        /// The channels' devices and reference counts.
        channels: String,
    },
    /// The exit timeout forced the thread to exited with work left.
    #[error("thread '{thread}' exit timed out with pollers [{pollers}] left (see ThreadOpts::exit_timeout): unregister them, or finish their work, before exiting")]
    ExitTimedOut {
        /// The thread.
        thread: Arc<str>,
        /// Pollers still registered.
        pollers: String,
    },
    /// A reactor could not be started or addressed.
    #[error("reactor error: {0}")]
    Reactor(String),
    /// The OS thread of a reactor could not be spawned.
    #[error("cannot spawn reactor {core}: {source}")]
    ReactorSpawn {
        /// The core.
        core: usize,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A reactor could not be pinned to its core.
    #[error("cannot pin reactor to core {core}: {source} (is the core online and in this process's affinity?)")]
    ReactorPin {
        /// The core.
        core: usize,
        /// The OS error.
        #[source]
        source: nix::errno::Errno,
    },
}
