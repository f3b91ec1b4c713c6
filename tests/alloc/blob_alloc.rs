//! The blob I/O path allocates nothing: after warm-up, reads and writes to
//! allocated clusters make no heap allocation — on the store itself, and
//! through a blob channel on a bdev (offsets translated on the calling
//! thread, the caller's buffer handed to the bdev) and sends no message: the
//! metadata thread is not even polled meanwhile. The counting allocator
//! proves the first, counting the allocations of the test's own thread.

use crate::counting::allocs;
use spdk_io::bdev::{self, malloc::MallocOpts, IoBuf};
use spdk_io::blob::{
    BdevBsDev, BlobIoChannel, BlobOpts, Blobstore, BlobstoreHandle, BsOpts, RamDev,
};
use spdk_io::thread::{spawn_local, Thread};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// Runs `fut` as a task of a new thread named `name`, polling it on this OS
/// thread until the task ends (at most 10,000,000 polls); returns its
/// output once the thread is shut down and destroyed.
fn run_task<T: 'static>(name: &str, fut: impl std::future::Future<Output = T> + 'static) -> T {
    let t = Thread::new(name);
    let task = t.enter(|| spawn_local(fut)).unwrap();
    let mut polls = 0u64;
    while !task.is_finished() {
        assert!(polls < 10_000_000, "no end after {polls} polls");
        t.poll(0);
        polls += 1;
    }
    let out = task.try_take().unwrap().unwrap();
    t.shutdown().unwrap();
    t.destroy().unwrap();
    out
}

#[test]
fn reads_and_writes_to_allocated_clusters_do_not_allocate() {
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 4,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    let mut buf = vec![7u8; 8192];
    bs.write(&h, 0, &buf).unwrap();
    let before = allocs();
    for i in 0..10_000u64 {
        let off = (i * 37) % 1000;
        bs.write(&h, off, &buf).unwrap();
        bs.read(&h, off, &mut buf).unwrap();
    }
    let after = allocs();
    bs.close_blob(h).unwrap();
    assert_eq!(
        after - before,
        0,
        "blob I/O allocated {} times",
        after - before
    );
}

#[test]
fn blob_channel_io_on_a_bdev_makes_no_allocation_and_no_message() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::init().unwrap();
    bdev::malloc::create(MallocOpts::new("BlobAllocMalloc", 16384, 4096)).unwrap();
    // The metadata thread, on an OS thread of its own that can stop polling it.
    let (stop, pause) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s2, p2) = (stop.clone(), pause.clone());
    let (tx, rx) = mpsc::channel();
    let md = std::thread::spawn(move || {
        let t = Thread::new("blob_md");
        tx.send(t.handle()).unwrap();
        while !s2.load(Ordering::Acquire) {
            if p2.load(Ordering::Acquire) {
                std::thread::yield_now();
            } else {
                t.poll(0);
            }
        }
        t.shutdown().unwrap();
        t.destroy().unwrap();
    });
    let md_handle = rx.recv().unwrap();
    let p3 = pause.clone();
    let n = run_task("blob_io", async move {
        let open = || BdevBsDev::open("BlobAllocMalloc").unwrap();
        let h = BlobstoreHandle::start_with_async(&md_handle, move || async move {
            Blobstore::init_async(open(), &BsOpts::default()).await
        })
        .await
        .unwrap();
        let opts = BlobOpts {
            num_clusters: 8,
            ..Default::default()
        };
        let id = h.create_blob(opts).await.unwrap();
        let blob = h.open_blob(id).await.unwrap();
        let ch = BlobIoChannel::new(&h, open()).await.unwrap();
        let mut buf = IoBuf::from_vec(vec![7u8; 8192]);
        // Warm-up: the channel meets the blob, the bdev pool fills.
        for i in 0..64u64 {
            buf = ch.write(id, i * 2, buf).await.unwrap();
            buf = ch.read(id, i * 2, buf).await.unwrap();
        }
        p3.store(true, Ordering::Release);
        let before = allocs();
        for i in 0..5_000u64 {
            let off = (i * 37) % 2000;
            buf[0] = i as u8;
            buf = ch.write(id, off, buf).await.unwrap();
            buf[0] = 0;
            buf = ch.read(id, off, buf).await.unwrap();
            assert_eq!(buf[0], i as u8);
        }
        let after = allocs();
        p3.store(false, Ordering::Release);
        drop(ch);
        h.close_blob(blob).await.unwrap();
        h.unload_in_place().await.unwrap();
        after - before
    });
    stop.store(true, Ordering::Release);
    md.join().unwrap();
    assert_eq!(n, 0, "10000 blob channel I/Os allocated {n} times");
}

#[test]
fn lvol_bdev_reads_and_writes_make_no_allocation_once_warm() {
    use spdk_io::blob::BlobClearMethod;
    use spdk_io::lvol::{vbdev, LvsOpts};
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::init().unwrap();
    vbdev::register();
    bdev::malloc::create(MallocOpts::new("AllocLvolMalloc", 8192, 4096)).unwrap();
    let n = run_task("lvol_io", async move {
        let mut o = LvsOpts::new("alloc_lvs");
        o.cluster_sz = 1 << 20;
        vbdev::create_lvstore("AllocLvolMalloc", &o).await.unwrap();
        let sel = vbdev::LvsSelector {
            uuid: None,
            lvs_name: Some("alloc_lvs".into()),
        };
        let name = vbdev::create(&sel, "thick", 8, false, BlobClearMethod::None)
            .await
            .unwrap();
        let d = bdev::open(&name, true).unwrap();
        let ch = d.get_io_channel().unwrap();
        let mut buf = IoBuf::new(4096);
        // Warm-up: the lvol channel makes its blob channel, the pools fill.
        for i in 0..64u64 {
            buf = d.write_blocks_async(&ch, buf, i, 1).await.unwrap();
            buf = d.read_blocks_async(&ch, buf, i, 1).await.unwrap();
        }
        let before = allocs();
        for i in 0..5_000u64 {
            let off = (i * 37) % 2048;
            buf[0] = i as u8;
            buf = d.write_blocks_async(&ch, buf, off, 1).await.unwrap();
            buf[0] = 0;
            buf = d.read_blocks_async(&ch, buf, off, 1).await.unwrap();
            assert_eq!(buf[0], i as u8, "block {off}");
        }
        let after = allocs();
        drop(ch);
        drop(d);
        vbdev::delete_lvstore(&sel).await.unwrap();
        after - before
    });
    assert_eq!(n, 0, "10000 lvol bdev I/Os allocated {n} times");
}
