//! [`EventError`]: what can stop the application framework from starting
//! or from loading its configuration.

use thiserror::Error;

/// A failure of the application framework.
#[derive(Debug, Error)]
pub enum EventError {
    /// Another process holds the lock file beside the RPC socket.
    #[error("RPC Unix domain socket path {socket} in use (lock file {lock} is held by another process). Specify another with -r/--rpc-socket.")]
    SocketInUse {
        /// The socket path asked for.
        socket: String,
        /// The lock file SPDK keeps beside it (`<socket>.lock`).
        lock: String,
    },
    /// Creating, locking or binding the RPC socket failed.
    #[error("cannot listen on RPC socket {path}: {op}: {source}")]
    Listen {
        /// The socket (or lock file) path.
        path: String,
        /// What was being done (open lock file, bind, ...).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON configuration is malformed or one of its entries failed.
    #[error("{0}")]
    Config(String),
    /// A subsystem failed to initialise.
    #[error("subsystem {name} failed to initialise: {msg}")]
    SubsystemInit {
        /// The subsystem (`bdev`).
        name: String,
        /// Its error.
        msg: String,
    },
    /// The subsystems' dependencies are inconsistent.
    #[error("subsystem {name} depends on {missing}, which is not registered (or the dependencies form a cycle)")]
    SubsystemDepends {
        /// The subsystem.
        name: String,
        /// The dependency that cannot be satisfied.
        missing: String,
    },
    /// The env (DMA memory) could not be brought up.
    #[error("env: {0}")]
    Env(#[from] crate::env::EnvError),
    /// The reactors or the app thread could not be started.
    #[error("reactors: {0}")]
    Reactor(String),
    /// The thread layer refused to start the reactors, the app thread or
    /// one of the framework's pollers.
    #[error("reactors: {0}")]
    ReactorStart(#[source] crate::thread::ThreadError),
    /// An application is already running in this process.
    #[error("an application is already running in this process (one app framework per process, as with spdk_app_start)")]
    AlreadyRunning,
    /// The app thread under `start` could not run or finish the program's
    /// future (it can never complete, or a channel was left held).
    #[error("app thread: {0}")]
    Thread(#[from] crate::thread::ThreadError),
    /// [`stop`](super::stop) was called with a non-zero code.
    #[error("the application was stopped with code {0}")]
    Stopped(i32),
    /// Signal handling could not be set up.
    #[error("signals: {op}: {source}")]
    Signals {
        /// What was being done (block SIGINT/SIGTERM, signalfd).
        op: &'static str,
        /// The OS error.
        #[source]
        source: nix::errno::Errno,
    },
}
