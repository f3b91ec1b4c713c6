//! [`AppOpts`]: what [`run`](super::run) is told (SPDK's `spdk_app_opts`
//! and `spdk_tgt`'s flags).

use crate::rpc::Method;
use crate::thread::{CpuMask, ReactorOpts};
use std::path::PathBuf;

/// SPDK's default RPC socket.
pub const DEFAULT_RPC_SOCKET: &str = "/var/tmp/spdk.sock";

/// Options of [`run`](super::run) (SPDK's `spdk_app_opts` and `spdk_tgt`'s flags).
#[derive(Clone, Debug)]
pub struct AppOpts {
    /// The program's name (hugepage file names, logs).
    pub name: String,
    /// Cores to run reactors on (`-m`); the app thread runs on the first.
    pub cpumask: CpuMask,
    /// A JSON config to load at start (`-c/--json`).
    pub json_config: Option<PathBuf>,
    /// The RPC socket (`-r`); `None` runs without an RPC server.
    pub rpc_socket: Option<PathBuf>,
    /// Do not initialise subsystems until `framework_start_init` (`--wait-for-rpc`).
    pub wait_for_rpc: bool,
    /// MiB of DMA memory reserved at start (`-s`; 0 grows on demand).
    pub mem_size_mb: usize,
    /// Ordinary pinned pages instead of hugepages (`--no-huge`).
    pub no_huge: bool,
    /// Go on when a config entry fails (`--json-ignore-init-errors`).
    pub json_ignore_init_errors: bool,
    /// Debug log flags to set (`-L`).
    pub log_flags: Vec<String>,
    /// How the reactors poll.
    pub reactor_opts: ReactorOpts,
    /// Methods of the embedding program, registered beside the framework's.
    pub extra_methods: Vec<Method>,
}

impl Default for AppOpts {
    fn default() -> Self {
        AppOpts {
            name: "spdk_tgt".into(),
            cpumask: CpuMask::single(0),
            json_config: None,
            rpc_socket: Some(DEFAULT_RPC_SOCKET.into()),
            wait_for_rpc: false,
            mem_size_mb: 0,
            no_huge: false,
            json_ignore_init_errors: false,
            log_flags: Vec::new(),
            reactor_opts: ReactorOpts::default(),
            extra_methods: Vec::new(),
        }
    }
}
