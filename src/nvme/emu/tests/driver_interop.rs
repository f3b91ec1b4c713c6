//! The crate's NVMe driver against the software controller: two independent
//! readings of the spec meeting in the middle.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::env::DmaBuf;
use crate::nvme::emu::{nvm_opc, EmuController};
use crate::nvme::{Controller, ControllerOpts, IoCompletion, QPair, QPairOpts};

use super::host::{env_up, pattern};

fn wait_one(qp: &mut QPair, slot: &Rc<RefCell<Option<IoCompletion>>>) -> IoCompletion {
    let start = Instant::now();
    loop {
        qp.process_completions(0).expect("process completions");
        if let Some(c) = slot.borrow_mut().take() {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "I/O did not complete"
        );
        std::thread::yield_now();
    }
}

fn attach(shadow: bool) -> (Arc<EmuController>, Controller) {
    env_up();
    let emu = Arc::new(
        EmuController::builder()
            .serial("INTEROP1")
            .mdts(2)
            .shadow_doorbells(shadow)
            .namespace(512, 8192)
            .namespace(4096, 256)
            .build()
            .unwrap(),
    );
    let ctrlr = Controller::attach(emu.clone(), ControllerOpts::default()).expect("attach");
    (emu, ctrlr)
}

fn round_trips(shadow: bool) {
    let (emu, ctrlr) = attach(shadow);
    assert_eq!(ctrlr.shadow_doorbells_enabled(), shadow);
    assert_eq!(ctrlr.namespace_ids(), vec![1, 2]);
    let mut qp = ctrlr.alloc_io_qpair(QPairOpts::default()).expect("qpair");
    for nsid in [1, 2] {
        let ns = ctrlr.namespace(nsid).unwrap();
        let bs = ns.block_size() as usize;
        // From one block to several times MDTS (16 KiB), split by the driver.
        for (i, blocks) in [1usize, 3, 8, 40].iter().enumerate() {
            let len = blocks * bs;
            if len > 64 * 1024 {
                continue;
            }
            let lba = (i as u64 * 37) % (ns.num_blocks() - *blocks as u64);
            let mut data = DmaBuf::alloc_zeroed(len, 4096).unwrap();
            pattern(&mut data, lba + nsid as u64);
            let expect = data.to_vec();
            let slot = Rc::new(RefCell::new(None));
            let s = slot.clone();
            qp.write(&ns, data, lba, *blocks as u32, move |_, c| {
                *s.borrow_mut() = Some(c)
            })
            .expect("submit write");
            let c = wait_one(&mut qp, &slot);
            assert!(c.result.is_ok(), "write: {:?}", c.result);
            let mut media = vec![0u8; len];
            emu.handle().read_blocks(nsid, lba, &mut media).unwrap();
            assert_eq!(
                media, expect,
                "media after write, ns {nsid} {blocks} blocks"
            );

            let back = DmaBuf::alloc_zeroed(len, 4096).unwrap();
            let s = slot.clone();
            qp.read(&ns, back, lba, *blocks as u32, move |_, c| {
                *s.borrow_mut() = Some(c)
            })
            .expect("submit read");
            let c = wait_one(&mut qp, &slot);
            assert!(c.result.is_ok(), "read: {:?}", c.result);
            let back = c.buf.into_dma_buf().unwrap();
            assert_eq!(&back[..], &expect[..]);
        }
    }
    let s = emu.stats();
    assert!(s.io(nvm_opc::WRITE) > 4 && s.io(nvm_opc::READ) > 4);
    if shadow {
        assert!(s.shadow_doorbell_updates > 0);
    }
    drop(qp);
    drop(ctrlr);
}

#[test]
fn driver_reads_back_what_it_wrote() {
    round_trips(false);
}

#[test]
fn driver_reads_back_what_it_wrote_with_shadow_doorbells() {
    round_trips(true);
}
