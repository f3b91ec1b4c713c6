//! NVMe with `async`, on the software controller: the queue pair's I/O as
//! futures ([`AsyncQPair`]). Four writes run at once, each in its own task
//! on one lightweight thread; then each block range is read back and
//! compared. Every I/O takes its DMA buffer and hands it back.
//!
//! Run: `cargo run --example nvme_async`

use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{AsyncQPair, Controller, ControllerOpts, QPairOpts};
use spdk_io::thread::{spawn_local, Thread};
use std::error::Error;
use std::sync::Arc;

const IOS: u64 = 4;
const BLOCKS: u32 = 8;

fn main() -> Result<(), Box<dyn Error>> {
    // Ordinary pinned pages: no hugepages or root needed for the software controller.
    env::init(EnvOpts::no_huge())?;
    let emu = Arc::new(
        EmuController::builder()
            .serial("EXAMPLE2")
            .namespace(512, 4096)
            .build()?,
    );
    let ctrlr = Controller::attach(emu, ControllerOpts::default())?;
    let ns = ctrlr.namespace(1)?;
    let qp = AsyncQPair::new(ctrlr.alloc_io_qpair(QPairOpts::default())?);
    let len = BLOCKS as usize * ns.block_size() as usize;

    let t = Thread::new("app");
    let same = t.block_on(async {
        // Four writes in flight at once: one task each.
        let mut writes = Vec::new();
        for i in 0..IOS {
            let (qp, ns) = (qp.clone(), ns.clone());
            let mut buf = DmaBuf::alloc_zeroed(len, 4096)?;
            buf.fill(i as u8 + 1);
            writes.push(spawn_local(async move {
                qp.write(&ns, buf, i * BLOCKS as u64, BLOCKS).await
            })?);
        }
        for w in writes {
            w.await??;
        }
        // Read each range back into one recycled buffer.
        let mut buf = DmaBuf::alloc_zeroed(len, 4096)?;
        let mut same = true;
        for i in 0..IOS {
            let back = qp.read(&ns, buf, i * BLOCKS as u64, BLOCKS).await?;
            buf = back.into_dma_buf().ok_or("one buffer comes back")?;
            same &= buf.iter().all(|&b| b == i as u8 + 1);
        }
        println!("wrote {IOS} ranges of {len} bytes at once, read each back");
        Ok::<bool, Box<dyn Error>>(same)
    })??;
    t.shutdown()?;
    t.destroy()?;
    drop((qp, ctrlr));
    env::fini();
    println!("{}", if same { "identical" } else { "DIFFERENT" });
    if same {
        Ok(())
    } else {
        Err("data mismatch".into())
    }
}
