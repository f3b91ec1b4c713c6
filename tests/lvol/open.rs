//! An lvol bdev someone has open: grown in place (its users get the
//! resize event and see the new size at once), renamed in place (its alias
//! moves, on an lvol rename and on its store's), and never shrunk while
//! open (`-EBUSY`, as SPDK's bdev layer refuses it).

use crate::bdev::{by_name, expect, opts, setup};
use crate::lvol_common::{pattern, run};
use spdk_io::bdev::{self, malloc, IoBuf};
use spdk_io::blob::BlobClearMethod;
use spdk_io::lvol::vbdev;

const MIB: u64 = 1 << 20;

/// Waits (bounded) on this thread until `done` says so.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        spdk_io::thread::yield_now().await;
    }
    panic!("{what}: not after 100000 polls");
}

#[test]
fn an_open_lvol_grows_and_is_renamed_in_place_and_its_users_get_the_resize_event() {
    use spdk_io::bdev::BdevEvent;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolOpenMalloc",
        32 * MIB / 512,
        512,
    ))
    .unwrap();
    run(async {
        vbdev::create_lvstore("LvolOpenMalloc", &opts("lvs_open"))
            .await
            .unwrap();
        let sel = by_name("lvs_open");
        let name = vbdev::create(&sel, "o", 2, true, BlobClearMethod::Default)
            .await
            .unwrap();
        let resized = Arc::new(AtomicUsize::new(0));
        let r = resized.clone();
        let d = bdev::open_ext("lvs_open/o", true, move |ev, _| {
            if ev == BdevEvent::Resize {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
        let ch = d.get_io_channel().unwrap();
        let a = pattern("open#1", 0, 4096);
        let mut b = IoBuf::new(4096);
        b.copy_from_slice(&a);
        d.write_blocks_async(&ch, b, 0, 8).await.unwrap();

        // Growing while open: the same descriptor sees the new size at once,
        // gets the resize event, and reaches the new blocks.
        vbdev::resize("lvs_open/o", 4).await.unwrap();
        assert_eq!(d.bdev().num_blocks(), 4 * MIB / 512);
        until("resize event", || resized.load(Ordering::SeqCst) == 1).await;
        let z = pattern("open#2", 3 * MIB, 4096);
        let mut b = IoBuf::new(4096);
        b.copy_from_slice(&z);
        d.write_blocks_async(&ch, b, 3 * MIB / 512, 8)
            .await
            .unwrap();
        expect("lvs_open/o", 3 * MIB, &z).await;
        expect("lvs_open/o", 0, &a).await;

        // Shrinking while open is refused, and nothing changes.
        let e = vbdev::resize("lvs_open/o", 1).await.unwrap_err();
        assert_eq!(e.errno(), libc::EBUSY, "{e}");
        assert_eq!(d.bdev().num_blocks(), 4 * MIB / 512);
        let (s, l) = vbdev::find_lvol("lvs_open/o").unwrap();
        assert_eq!(s.lvs.lvol_info(&l.name).await.unwrap().num_clusters, 4);

        // Renaming while open moves the alias; the descriptor stays usable.
        vbdev::rename("lvs_open/o", "o2").await.unwrap();
        assert!(bdev::get_by_name("lvs_open/o").is_none());
        assert_eq!(bdev::get_by_name("lvs_open/o2").unwrap().name(), name);
        assert_eq!(d.bdev().aliases(), ["lvs_open/o2"]);
        let r = d
            .read_blocks_async(&ch, IoBuf::new(4096), 0, 8)
            .await
            .unwrap();
        assert!(r[..] == a[..]);
        // So does renaming its store.
        vbdev::rename_lvstore("lvs_open", "lvs_open2")
            .await
            .unwrap();
        assert_eq!(d.bdev().aliases(), ["lvs_open2/o2"]);
        assert!(bdev::get_by_name("lvs_open/o2").is_none());
        // A name whose alias another bdev has is refused; the lvol keeps its name.
        let taken = malloc::create(malloc::MallocOpts::new("lvs_open2/taken", 8, 512)).unwrap();
        let e = vbdev::rename("lvs_open2/o2", "taken").await.unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST, "{e}");
        assert_eq!(vbdev::find_lvol(&name).unwrap().1.name, "o2");
        assert_eq!(d.bdev().aliases(), ["lvs_open2/o2"]);
        taken.unregister();

        // Closed, it shrinks.
        drop(ch);
        drop(d);
        vbdev::resize("lvs_open2/o2", 1).await.unwrap();
        assert_eq!(bdev::get_by_name(&name).unwrap().num_blocks(), MIB / 512);
        expect("lvs_open2/o2", 0, &a).await;
        vbdev::delete_lvstore(&by_name("lvs_open2")).await.unwrap();
    });
}
