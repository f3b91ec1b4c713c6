//! NVMe with callbacks, on the software controller: attach the driver,
//! write a pattern, read it back, compare. A real drive is the same code
//! with `spdk_io::pci` opening the device (see `spdk-io identify`).
//!
//! Run: `cargo run --example nvme_callback`

use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::emu::EmuController;
use spdk_io::nvme::{Controller, ControllerOpts, IoCompletion, QPair, QPairOpts};
use std::cell::RefCell;
use std::error::Error;
use std::rc::Rc;
use std::sync::Arc;

/// Polls the queue pair until the callback has left its completion.
fn wait(
    qp: &mut QPair,
    slot: &Rc<RefCell<Option<IoCompletion>>>,
) -> Result<IoCompletion, Box<dyn Error>> {
    for _ in 0..10_000_000 {
        if let Some(c) = slot.borrow_mut().take() {
            return Ok(c);
        }
        qp.process_completions(0)?;
    }
    Err("the command did not complete".into())
}

fn main() -> Result<(), Box<dyn Error>> {
    // Ordinary pinned pages: no hugepages or root needed for the software controller.
    env::init(EnvOpts::no_huge())?;
    let emu = Arc::new(
        EmuController::builder()
            .serial("EXAMPLE0")
            .namespace(512, 2048)
            .build()?,
    );
    let ctrlr = Controller::attach(emu, ControllerOpts::default())?;
    let ns = ctrlr.namespace(1)?;
    println!(
        "attached: serial {}, namespace 1 of {} blocks",
        ctrlr.identify_controller()?.serial(),
        ns.num_blocks()
    );
    let mut qp = ctrlr.alloc_io_qpair(QPairOpts::default())?;

    let mut buf = DmaBuf::alloc(4096, 4096)?;
    buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    // The buffer is the command's until its completion hands it back.
    qp.write(&ns, buf, 8, 8, move |_qp, c| *s.borrow_mut() = Some(c))?;
    let done = wait(&mut qp, &slot)?;
    done.result?;

    let s = slot.clone();
    qp.read(
        &ns,
        DmaBuf::alloc_zeroed(4096, 4096)?,
        8,
        8,
        move |_qp, c| *s.borrow_mut() = Some(c),
    )?;
    let done = wait(&mut qp, &slot)?;
    done.result?;
    let back = done.buf.into_dma_buf().ok_or("the read buffer came back")?;
    let same = back.iter().enumerate().all(|(i, b)| *b == i as u8);
    println!(
        "wrote and read back 8 blocks at LBA 8: {}",
        if same { "identical" } else { "DIFFERENT" }
    );

    drop(qp);
    drop(ctrlr);
    env::fini();
    if same {
        Ok(())
    } else {
        Err("data mismatch".into())
    }
}
