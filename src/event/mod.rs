//! The application framework (SPDK's `lib/event` and `lib/init`): what
//! makes spdk-io a daemon, `spdk-io tgt`, that SPDK's `rpc.py` and the
//! control planes written against `spdk_tgt` drive unchanged.
//!
//! [`start`] is the same framework for a program that embeds spdk-io: it
//! runs one future to completion on an app thread hosted by the calling
//! OS thread, then tears everything down.
//!
//! [`run`] starts the env, one reactor per core of the mask, and the app
//! thread; there the [`MethodTable`] gathers the framework's methods and
//! every [`Subsystem`]'s (the bdev layer's `bdev::rpc::methods`), the
//! [`RpcServer`] serves them on a Unix socket from a poller, and the
//! subsystems are initialised in dependency order — at once, from a
//! `--json` config, or on `framework_start_init`. SIGINT, SIGTERM,
//! `spdk_kill_instance` or [`stop`] shut it down cleanly: subsystems finish
//! in reverse order, reactors stop, memory is returned.
//!
//! | file | job |
//! |---|---|
//! | `app` | [`run`], [`stop`]: start-up, signals, shutdown |
//! | `embed` | [`start`]: run a program's future inside the framework, then tear down |
//! | `opts` | [`AppOpts`]: cores, config, socket, memory, log flags, extra methods |
//! | `subsystem` | [`Subsystem`]: init/fini/config/methods, dependency order |
//! | `table` | [`MethodTable`]: methods by name, startup/runtime state |
//! | `config` | `--json` loading through the table, in SPDK's two rounds |
//! | `ctx` | the app thread's state the framework methods use |
//! | `jsonrpc` | the JSON-RPC 2.0 server ([`RpcServer`]) |
//! | `methods` | framework, reactor/thread and log methods |
//! | [`log`] | SPDK's log levels and flags over the `log` facade |
//! | `error` | [`EventError`] |

#![deny(unsafe_code)]

mod app;
mod config;
mod ctx;
mod embed;
mod error;
pub mod jsonrpc;
pub mod log;
mod methods;
mod opts;
mod subsystem;
mod table;

pub use app::{run, stop};
pub use embed::{reactors, start};
pub use error::EventError;
pub use jsonrpc::RpcServer;
pub use methods::methods as framework_methods;
pub use opts::{AppOpts, DEFAULT_RPC_SOCKET};
pub use subsystem::{builtin as builtin_subsystems, sort as sort_subsystems, Subsystem};
pub use table::{state_error, MethodTable, INVALID_STATE};
