//! The NVMe-oF target (SPDK's `lib/nvmf`): subsystems of namespaces over
//! bdevs, the controller a host sees, and the TCP transport that carries
//! its queues.
//!
//! | file | job |
//! |---|---|
//! | `target` | [`Target`]: the subsystems, the discovery subsystem, [`TransportOpts`] |
//! | `buf_pool` | [`BufPool`]: the transport's shared data buffers and each poll group's cache |
//! | `ids` | NQNs, UUIDs, identity strings and [`ListenAddr`]: checked, parsed, matched |
//! | `subsystem` | [`Subsystem`]: NQN, identity, host allow list, namespaces, listeners, controllers |
//! | `ctrlr` | [`Ctrlr`]: controller ID, properties (CAP, VS, CC, CSTS), features, I/O queues |
//! | `fabrics` | Connect and Property Get/Set |
//! | `admin`, `identify`, `log_page` | admin commands, Identify data, log pages (discovery included) |
//! | `io` | I/O commands decoded into bdev operations, bdev statuses into NVMe statuses |
//! | `abort` | Abort of an I/O command: the mailbox between a controller's admin queue and its I/O queues |
//! | `ana` | Asymmetric Namespace Access: per-listener group states, the ANA log page |
//! | `status` | [`Completion`]: what goes into a CQE |
//! | `rpc` | the `nvmf_*` JSON-RPC methods, the subsystem's init/fini and `save_config` entries |
//! | `tcp` | the NVMe/TCP transport: listener, poll groups, one connection per queue |
//! | `error` | [`NvmfError`] |

#![deny(unsafe_code)]

pub mod abort;
pub mod admin;
pub mod ana;
pub mod buf_pool;
mod ctrlr;
mod error;
pub mod fabrics;
pub mod identify;
mod ids;
pub mod io;
pub mod log_page;
pub mod rpc;
mod status;
mod subsystem;
mod target;
pub mod tcp;

pub use ana::AnaState;
pub use buf_pool::{BufCache, BufPool, BUF_CACHE_AUTO};
pub use ctrlr::{Ctrlr, CtrlrState, QueueOrigin};
pub use error::NvmfError;
pub use ids::{check_nqn, parse_uuid, ListenAddr, NQN_MAX_LEN};
pub use status::{sc, sct, Completion};
pub use subsystem::{
    NamespaceConfig, Subsystem, SubsystemOpts, SubsystemState, SubsystemType, DISCOVERY_NQN,
};
pub use target::{Target, TransportOpts};
