//! The software controller both host driver test files attach to.

use spdk_io::env::{self, EnvOpts};
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{Controller, ControllerOpts};
use std::sync::Arc;

/// A software controller with two namespaces (512 B x 16384, 4 KiB x 1024),
/// the given MDTS and shadow doorbells (read as QEMU reads them, so the
/// driver's EventIdx handling is exercised by every test), on a
/// no-hugepage env.
pub fn emu(mdts: u8) -> Arc<EmuController> {
    env::init_once(EnvOpts::no_huge()).expect("env");
    Arc::new(
        EmuController::builder()
            .serial("EMU0001")
            .model("spdk-io emu")
            .mdts(mdts)
            .max_io_queue_pairs(4)
            .shadow_doorbells(true)
            .namespace(512, 16384)
            .namespace(4096, 1024)
            .build()
            .expect("emu"),
    )
}

/// Attaches the driver to `e` with default options.
pub fn attach(e: &Arc<EmuController>) -> Controller {
    Controller::attach(e.clone(), ControllerOpts::default()).expect("attach")
}

/// Attaches the driver to `e` with the shadow doorbell buffer off: every
/// doorbell is an MMIO write, as on QEMU's controller, so each ring counts.
pub fn attach_mmio_doorbells(e: &Arc<EmuController>) -> Controller {
    let opts = ControllerOpts {
        shadow_doorbell: false,
        ..ControllerOpts::default()
    };
    Controller::attach(e.clone(), opts).expect("attach")
}
