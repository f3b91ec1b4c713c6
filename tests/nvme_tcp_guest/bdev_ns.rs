//! The nvme bdev module over TCP against Linux's kernel target: a
//! namespace added to the subsystem while the controller is attached shows
//! up as a bdev (the module's admin queue poller handles the target's
//! Namespace Attribute Changed notice), and disabled again it goes.

use super::Nvmet;
use spdk_io::bdev::{self, IoBuf, IoCompletion};
use spdk_io::env::{self, EnvOpts};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn put(path: &Path, v: &str) {
    std::fs::write(path, v).unwrap_or_else(|e| panic!("writing '{v}' to {}: {e}", path.display()));
}

/// Waits (up to 30 s) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A memory-backed null_blk disk of `mb` MiB named after `name` (the
/// helper's naming, so its `stop` removes it), as the kernel names it.
fn null_blk(name: &str, mb: u32) -> String {
    let nb = Path::new("/sys/kernel/config/nullb").join(name);
    std::fs::create_dir(&nb).unwrap_or_else(|e| panic!("{}: {e}", nb.display()));
    put(&nb.join("size"), &mb.to_string());
    put(&nb.join("blocksize"), "4096");
    put(&nb.join("memory_backed"), "1");
    put(&nb.join("power"), "1");
    let dev = format!("/dev/{name}");
    if Path::new(&dev).exists() {
        return dev;
    }
    let index = std::fs::read_to_string(nb.join("index")).unwrap();
    format!("/dev/nullb{}", index.trim())
}

#[test]
#[ignore = "needs Linux's nvmet-tcp: qemu/run-tests --only nvme_tcp_guest --mode vfio"]
fn a_namespace_added_on_the_kernel_target_while_attached_becomes_a_bdev_and_goes_when_disabled() {
    let t = Nvmet::start(4436, 16, 512);
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    let o = bdev::nvme::AttachOpts::new("Kns", t.trid());
    assert_eq!(bdev::nvme::attach_controller(o).unwrap().len(), 1);

    let dev = null_blk("spdkio4436n2", 8);
    let ns = Path::new("/sys/kernel/config/nvmet/subsystems")
        .join(&t.nqn)
        .join("namespaces/2");
    std::fs::create_dir(&ns).unwrap();
    put(&ns.join("device_path"), &dev);
    put(&ns.join("enable"), "1");
    wait_for("no bdev for the namespace added on the target", || {
        bdev::get_by_name("Knsn2").is_some()
    });
    let b = bdev::get_by_name("Knsn2").unwrap();
    assert_eq!((b.block_size(), b.num_blocks()), (4096, 8 * 256));

    // It carries I/O: a pattern written and read back.
    let d = bdev::open("Knsn2", true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let log: Rc<RefCell<Vec<IoCompletion>>> = Rc::default();
    let rec = |l: &Rc<RefCell<Vec<IoCompletion>>>| {
        let l = l.clone();
        Box::new(move |c: IoCompletion| l.borrow_mut().push(c))
    };
    let mut w = IoBuf::dma(8192, 4096).unwrap();
    w.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i * 7) as u8);
    d.write_blocks(&ch, w, 100, 2, rec(&log)).unwrap();
    d.read_blocks(&ch, IoBuf::dma(8192, 4096).unwrap(), 100, 2, rec(&log))
        .unwrap();
    let start = Instant::now();
    while log.borrow().len() < 2 {
        ch.poll();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "I/O did not complete"
        );
    }
    let r = log.borrow_mut().pop().unwrap();
    assert!(log.borrow()[0].success() && r.success());
    let data = r.data.into_buf().unwrap();
    assert!(data.iter().enumerate().all(|(i, &x)| x == (i * 7) as u8));
    drop(ch);
    drop(d);

    put(&ns.join("enable"), "0");
    wait_for("the disabled namespace's bdev is still there", || {
        bdev::get_by_name("Knsn2").is_none()
    });
    assert!(bdev::get_by_name("Knsn1").is_some());
    bdev::nvme::detach_controller("Kns").unwrap();
}
