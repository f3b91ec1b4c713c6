//! The embedding entry, `event::start`: a program's future runs to
//! completion inside the framework and everything is torn down after;
//! what used to hang is an error.

use spdk_io::bdev::{self, malloc, malloc::MallocOpts, IoBuf};
use spdk_io::event::{self, AppOpts, EventError};
use spdk_io::thread::{CpuMask, ReactorOpts, Thread, ThreadError, ThreadOpts};

use crate::ONE_APP;

fn opts(name: &str) -> AppOpts {
    AppOpts {
        name: name.into(),
        no_huge: true,
        rpc_socket: None,
        ..AppOpts::default()
    }
}

#[test]
fn start_runs_the_future_and_unregisters_its_bdevs_after() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let data = event::start(opts("embed_io"), || async {
        malloc::create(MallocOpts::new("EmbedMalloc0", 128, 512)).unwrap();
        let d = bdev::open("EmbedMalloc0", true).unwrap();
        let ch = d.get_io_channel().unwrap();
        d.write_async(&ch, IoBuf::from_vec(vec![0xa5; 1024]), 512)
            .await
            .unwrap();
        let b = d.read_async(&ch, IoBuf::new(1024), 512).await.unwrap();
        b.to_vec()
    })
    .unwrap();
    assert_eq!(data, vec![0xa5; 1024]);
    assert!(
        bdev::get_by_name("EmbedMalloc0").is_none(),
        "the bdev subsystem's fini unregistered it"
    );
}

#[test]
fn a_future_that_can_never_complete_is_an_error_not_a_hang() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let e = event::start(opts("embed_stuck"), std::future::pending::<()>).unwrap_err();
    assert!(
        matches!(e, EventError::Thread(ThreadError::NeverWoken { .. })),
        "{e}"
    );
}

#[test]
fn a_second_application_in_the_same_process_is_refused() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let inner = event::start(opts("embed_outer"), || async {
        event::start(opts("embed_inner"), || async {}).map(|_| ())
    })
    .unwrap();
    assert!(
        matches!(inner, Err(EventError::AlreadyRunning)),
        "{inner:?}"
    );
    // The outer one ended cleanly: a new one may start.
    event::start(opts("embed_after"), || async {}).unwrap();
}

#[test]
fn the_other_cores_of_the_mask_run_reactors_the_future_can_use() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let mut mask = CpuMask::single(0);
    mask.set(1);
    let o = AppOpts {
        cpumask: mask,
        reactor_opts: ReactorOpts {
            pin: false,
            ..ReactorOpts::default()
        },
        ..opts("embed_cores")
    };
    let got = event::start(o, || async {
        let r = event::reactors().expect("a reactor on core 1");
        assert_eq!(r.cores(), vec![1]);
        let (tx, rx) = std::sync::mpsc::channel();
        let h = r
            .spawn_thread(
                1,
                ThreadOpts {
                    name: "worker".into(),
                    cpumask: CpuMask::single(1),
                    ..ThreadOpts::default()
                },
                move || tx.send(()).unwrap(),
            )
            .unwrap();
        let name = Thread::send(&h, || Thread::current().unwrap().name().to_string())
            .await
            .unwrap();
        rx.recv().unwrap();
        name
    })
    .unwrap();
    assert_eq!(got, "worker");
}

#[test]
fn without_a_second_core_there_are_no_reactors() {
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let none = event::start(opts("embed_one_core"), || async {
        event::reactors().is_none()
    })
    .unwrap();
    assert!(none);
}

#[test]
fn the_nvme_modules_fini_detaches_every_controller_with_a_clean_shutdown() {
    use spdk_io::nvme::{emu::EmuController, Controller, ControllerOpts};
    use spdk_io::pci::PciDevice;
    let _one = ONE_APP.lock().unwrap_or_else(|p| p.into_inner());
    let emu = event::start(opts("embed_nvme_fini"), || async {
        let e = std::sync::Arc::new(
            EmuController::builder()
                .namespace(512, 1024)
                .build()
                .unwrap(),
        );
        let c = Controller::attach(e.clone(), ControllerOpts::default()).unwrap();
        bdev::nvme::register_controller("FiniNvme", c, None).unwrap();
        // A bdev still open at shutdown does not keep the controller.
        let d = bdev::open("FiniNvmen1", true).unwrap();
        std::mem::forget(d);
        e
    })
    .unwrap();
    assert!(bdev::nvme::controllers(None).unwrap().is_empty());
    assert!(bdev::get_by_name("FiniNvmen1").is_none());
    let csts = emu.map_bar(0).unwrap().read32(0x1c);
    assert_eq!(
        csts >> 2 & 0x3,
        2,
        "CSTS.SHST: the controller was shut down normally"
    );
}
