//! NVMe with `async`, on the software controller: the controller is
//! registered with the bdev layer's nvme module (as `bdev_nvme_attach_controller`
//! does), and its namespace is read and written with `.await` on the app
//! thread that `event::start` runs.
//!
//! Run: `cargo run --example nvme_bdev_async`

use spdk_io::bdev::{self, IoBuf};
use spdk_io::event::{self, AppOpts};
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{Controller, ControllerOpts};
use std::error::Error;
use std::sync::Arc;

async fn round_trip() -> Result<bool, Box<dyn Error>> {
    let emu = Arc::new(
        EmuController::builder()
            .serial("EXAMPLE1")
            .namespace(4096, 1024)
            .build()?,
    );
    let ctrlr = Controller::attach(emu, ControllerOpts::default())?;
    let bdevs = bdev::nvme::register_controller("Nvme0", ctrlr, None)?;
    let name = bdevs
        .first()
        .ok_or("the controller has a namespace")?
        .name()
        .to_string();
    let desc = bdev::open(&name, true)?;
    let ch = desc.get_io_channel()?;
    let pattern: Vec<u8> = (0..8192).map(|i| (i % 251) as u8).collect();
    desc.write_async(&ch, IoBuf::from_vec(pattern.clone()), 4096)
        .await?;
    let back = desc.read_async(&ch, IoBuf::new(8192), 4096).await?;
    println!("{name}: wrote and read back 8 KiB at byte 4096");
    // Close what we opened, then detach (bdev_nvme_detach_controller):
    // the controller shuts down with its last bdev.
    drop((ch, desc));
    bdev::nvme::detach_controller("Nvme0")?;
    Ok(back.to_vec() == pattern)
}

fn main() -> Result<(), Box<dyn Error>> {
    let opts = AppOpts {
        name: "nvme_async".into(),
        no_huge: true,
        rpc_socket: None,
        ..AppOpts::default()
    };
    let same = event::start(opts, round_trip)??;
    println!("{}", if same { "identical" } else { "DIFFERENT" });
    if same {
        Ok(())
    } else {
        Err("data mismatch".into())
    }
}
