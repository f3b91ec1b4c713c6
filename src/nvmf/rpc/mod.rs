//! The `nvmf_*` JSON-RPC methods (SPDK's `lib/nvmf/nvmf_rpc.c`) with SPDK's
//! parameters and result shapes, the "nvmf" subsystem's init/fini, and its
//! `save_config` entries. The event layer registers them; nothing here
//! knows the wire.
//!
//! | file | job |
//! |---|---|
//! | `state` | the target of the process, its poll groups (one per thread) and the transport on the app thread |
//! | `params` | the methods' parameters as SPDK decodes them |
//! | `methods` | the handlers that change the target |
//! | `query` | the handlers that report controllers, queue pairs, listeners and poll group counters |
//! | `config` | `save_config` entries that rebuild the same target |

mod config;
mod methods;
mod params;
mod query;
mod state;

pub use config::{config, config_entries};
pub use methods::methods;
pub use state::{fini, init, target};

/// The subsystem's name in SPDK's configuration.
pub const SUBSYSTEM: &str = "nvmf";
