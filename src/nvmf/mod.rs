//! The NVMe-oF target (SPDK's `lib/nvmf`): subsystems of namespaces over
//! bdevs, the controller a host sees, and the TCP transport that carries
//! its queues.
//!
//! | file | job |
//! |---|---|
//! | `target` | [`Target`]: the subsystems, the discovery subsystem, [`TransportOpts`] |
//! | `subsystem` | [`Subsystem`]: NQN, identity, host allow list, namespaces, listeners, controllers |
//! | `ctrlr` | [`Ctrlr`]: controller ID, properties (CAP, VS, CC, CSTS), features, I/O queues |
//! | `fabrics` | Connect and Property Get/Set |
//! | `admin`, `identify`, `log_page` | admin commands, Identify data, log pages (discovery included) |
//! | `io` | I/O commands decoded into bdev operations, bdev statuses into NVMe statuses |
//! | `status` | [`Completion`]: what goes into a CQE |
//! | `rpc` | the `nvmf_*` JSON-RPC methods, the subsystem's init/fini and `save_config` entries |
//! | `tcp` | the NVMe/TCP transport: listener, poll groups, one connection per queue |
//! | `error` | [`NvmfError`] |

pub mod admin;
mod ctrlr;
mod error;
pub mod fabrics;
pub mod identify;
pub mod io;
pub mod log_page;
pub mod rpc;
mod status;
mod subsystem;
mod target;
pub mod tcp;

pub use ctrlr::{Ctrlr, CtrlrState};
pub use error::NvmfError;
pub use status::{sc, sct, Completion};
pub use subsystem::{
    check_nqn, parse_uuid, ListenAddr, NamespaceConfig, Subsystem, SubsystemOpts, SubsystemState,
    SubsystemType, DISCOVERY_NQN,
};
pub use target::{Target, TransportOpts};
