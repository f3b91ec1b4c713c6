//! The nvme bdev module (SPDK's `module/bdev/nvme`): attached controllers
//! by name, one bdev per active namespace (`Nvme0n1`), and what happens
//! when a controller is lost.
//!
//! Each bdev channel owns an I/O queue pair with batched doorbells: submits
//! queue SQEs, the channel's poll rings the doorbell once and reaps the
//! completion queue. DMA buffers ([`IoBuf::dma`](super::IoBuf::dma)) are
//! lent to the device by address and stay in the layer's request
//! ([`IoRequest::dma_range`](super::IoRequest::dma_range)); the command
//! carries the request's id as its tag
//! ([`QPair::rw_tagged`](crate::nvme::QPair::rw_tagged)), so nothing moves
//! and no closure is stored per I/O. Heap buffers are bounced through a DMA
//! copy (slower, but any memory works, as in SPDK). Closing a channel
//! deletes its queue pair first; if the controller refuses, the buffers of
//! unfinished requests are never freed. A bdev reset resets the controller.
//! The bdev's `dump_info_json` (in `bdev_get_bdevs`) carries the transport
//! counters ([`PcieStat`](crate::nvme::PcieStat)) of its channels that
//! have closed.
//!
//! Controller bring-up, reset and shutdown wait on the device or the
//! network, so the JSON-RPC methods run them on worker threads and await
//! them ([`attach_controller_async`], [`reset_controller_async`],
//! [`detach_controller_async`]): the app
//! thread keeps serving meanwhile. A lost controller is brought back by
//! SPDK's policy ([`ReconnectOpts`]). Each controller's admin queue is
//! polled every 10 ms: Keep Alive at half the KATO over fabrics
//! ([`AttachOpts::keep_alive_timeout_ms`]), and a namespace added, removed
//! or resized on the controller shows up as a bdev added, removed
//! (hot remove) or resized. The module's fini detaches every controller
//! and waits for the workers.
//!
//! | file | job |
//! |---|---|
//! | `adminq` | the admin queue poller: keep alive, events, a lost admin queue |
//! | `paths` | multipath failover: alternate paths of a controller |
//! | `populate` | the bdevs kept in step with the namespaces |
//! | `attach` | `bdev_nvme_attach_controller`: its options, inline or awaited |
//! | `bdev` | the bdev of a namespace; registering a controller's bdevs |
//! | `channel` | a channel's queue pair, submission and completion paths |
//! | `revive` | a channel that lost its queue pair: hold, fail, move on |
//! | `reconnect` | the controller behind a name, its state and recovery loop |
//! | `ctrlrs` | the attached controllers by name: list, detach, reset, fini |
//! | `worker` | blocking controller work on OS threads, awaited |

mod adminq;
mod attach;
mod bdev;
mod channel;
mod ctrlrs;
mod paths;
mod populate;
mod reconnect;
mod revive;
mod worker;

pub use attach::{
    attach_controller, attach_controller_async, transport_id, AttachOpts,
    DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
};
pub use bdev::register_controller;
pub use ctrlrs::{
    controllers, detach_controller, detach_controller_async, reset_controller,
    reset_controller_async, AttachedController,
};
pub use paths::Multipath;
pub use reconnect::{LinkState, ReconnectOpts};

use super::BdevModule;
use std::sync::Arc;

struct NvmeModule;

impl BdevModule for NvmeModule {
    fn name(&self) -> &'static str {
        "nvme"
    }

    /// Detaches every controller and waits for the module's workers.
    fn module_fini(&self) {
        ctrlrs::fini();
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(NvmeModule)
}
