//! The blobstore on bdevs of the bdev layer, made from an SPDK JSON config:
//! a malloc bdev and a file (aio) bdev. Every operation runs through the
//! asynchronous path (a bdev completes later, so the synchronous calls are
//! refused); the store made on the file bdev is read back through a plain
//! file device, so both paths agree. And the check: 64 blob I/Os
//! and metadata operations in flight at once on one reactor, beside a
//! poller that runs on every poll.

use crate::blob_common;

use blob_common::pattern;
use spdk_io::bdev::{self, IoBuf};
use spdk_io::blob::{
    BdevBsDev, BlobError, BlobIoChannel, BlobOpts, Blobstore, BlobstoreHandle, BsOpts, FileDev,
    LoadOpts,
};
use spdk_io::thread::{spawn_local, PollerStatus, Thread};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

async fn exercise(dev: BdevBsDev) -> Res<(BdevBsDev, u64)> {
    let mut bs = Blobstore::init_async(dev, &BsOpts::default()).await?;
    let id = bs
        .create_blob_async(&BlobOpts {
            num_clusters: 3,
            thin_provision: true,
            ..Default::default()
        })
        .await?;
    let h = bs.open_blob(id)?;
    let unit = bs.io_unit_size() as u64;
    let at = (1 << 20) / unit + 1;
    bs.write_async(id, at, IoBuf::from_vec(pattern('B', 8192)))
        .await?;
    bs.set_xattr(&h, "name", b"on-bdev\0")?;
    bs.close_blob_async(h).await?;
    let snap = bs.create_snapshot_async(id, &[]).await?;
    let dev = bs.unload_async().await?;
    let bs = Blobstore::load_async(dev, &LoadOpts::default()).await?;
    assert_eq!(bs.blob_info(id)?.parent, Some(snap));
    let mut bs = bs;
    let buf = bs.read_async(id, at, IoBuf::new(8192)).await?;
    assert_eq!(&buf[..], &pattern('B', 8192)[..]);
    bs.verify()?;
    Ok((bs.unload_async().await?, id))
}

/// Loads bdev entries (the bdev layer is set up once per process).
fn config(entries: serde_json::Value) {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
        bdev::init().unwrap();
    });
    let cfg = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": entries}]});
    bdev::load_config(&cfg.to_string()).unwrap();
}

/// Opens bdev `name` as a blobstore device; a failure is the blobstore's
/// I/O error for the open.
fn open_dev(name: &str) -> Result<BdevBsDev, BlobError> {
    BdevBsDev::open(name).map_err(|source| BlobError::Io {
        op: "open",
        lba: 0,
        blocks: 0,
        source,
    })
}

#[test]
fn a_blobstore_lives_on_malloc_and_file_bdevs_from_an_spdk_config() {
    let path = std::env::temp_dir().join(format!("spdk-io-blob-bdev-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    config(serde_json::json!([
        {"method": "bdev_malloc_create", "params": {"name": "BlobMalloc0", "num_blocks": 8192, "block_size": 512}},
        {"method": "bdev_aio_create", "params": {"name": "BlobAio0", "filename": path, "block_size": 4096}}
    ]));

    let t = Thread::new("blob_md");
    // A synchronous call on a bdev is refused at once, never spun on.
    let e = t
        .block_on(async {
            Blobstore::init(BdevBsDev::open("BlobMalloc0").unwrap(), &BsOpts::default())
                .err()
                .unwrap()
        })
        .unwrap();
    assert!(matches!(e, BlobError::NotInline { op: "init" }), "{e}");

    t.block_on(async { exercise(BdevBsDev::open("BlobMalloc0")?).await })
        .unwrap()
        .unwrap();
    let id = t
        .block_on(async {
            let (dev, id) = exercise(BdevBsDev::open("BlobAio0")?).await?;
            drop(dev);
            Ok::<_, Box<dyn std::error::Error>>(id)
        })
        .unwrap()
        .unwrap();
    t.shutdown().unwrap();
    t.destroy().unwrap();
    assert!(BdevBsDev::open("NoSuchBdev").is_err());
    let e = FileDev::open(&path, 4096).unwrap_err().to_string();
    assert!(
        e.contains(path.to_str().unwrap()) && e.contains("in use"),
        "the file bdev holds the file: {e}"
    );
    bdev::get_by_name("BlobAio0").unwrap().unregister();

    let bs = Blobstore::load(FileDev::open(&path, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert_eq!(
        bs.blob_info(id).unwrap().xattrs,
        vec![("name".to_string(), b"on-bdev\0".to_vec())]
    );
    std::fs::remove_file(&path).unwrap();

    on_a_metadata_thread("BlobMalloc0");
}

/// Where an async task leaves its result.
type Slot<T> = Rc<RefCell<Option<Result<T, BlobError>>>>;

/// SPDK's arrangement: the blobstore is loaded on its metadata thread, on a
/// bdev channel of that thread; an application thread calls in by name and
/// does blob I/O on a bdev channel of its own.
fn on_a_metadata_thread(bdev_name: &'static str) {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let stop2 = stop.clone();
    let md = std::thread::spawn(move || {
        let t = Thread::new("blob_md");
        tx.send(t.handle()).unwrap();
        while !stop2.load(Ordering::Acquire) {
            t.poll(0);
        }
        t.exit();
        while !t.is_exited() {
            t.poll(0);
        }
        t.destroy().unwrap();
    });
    let md_handle = rx.recv().unwrap();
    let app = Thread::new("app");
    let out: Slot<Vec<u8>> = Rc::default();
    let out2 = out.clone();
    let task = app
        .enter(|| {
            spawn_local(async move {
                let r = async {
                    let h = BlobstoreHandle::start_with_async(&md_handle, move || async move {
                        let dev = open_dev(bdev_name)?;
                        Blobstore::load_async(dev, &LoadOpts::default()).await
                    })
                    .await?;
                    let id = h.blob_ids().await?[0];
                    let unit = h.io_unit_size().await? as u64;
                    let blob = h.open_blob(id).await?;
                    let dev = open_dev(bdev_name)?;
                    let ch = BlobIoChannel::new(&h, dev).await?;
                    let buf = ch.read(id, (1 << 20) / unit + 1, IoBuf::new(8192)).await;
                    drop(ch);
                    h.close_blob(blob).await?;
                    h.unload_in_place().await?;
                    buf.map(|b| b.to_vec())
                }
                .await;
                *out2.borrow_mut() = Some(r);
            })
        })
        .unwrap();
    while !task.is_finished() {
        app.poll(0);
    }
    let data = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(data, pattern('B', 8192));
    stop.store(true, Ordering::Release);
    md.join().unwrap();
    app.exit();
    while !app.is_exited() {
        app.poll(0);
    }
    app.destroy().unwrap();
}

/// What the one-reactor run saw.
#[derive(Default)]
struct Seen {
    poller_runs: Cell<u64>,
    io_inflight: Cell<u64>,
    max_io_inflight: Cell<u64>,
    md_inflight: Cell<u64>,
    /// Blob I/Os that completed while a metadata operation was under way.
    io_beside_md: Cell<u64>,
    errors: RefCell<Vec<String>>,
}

const TASKS: u64 = 64;
const ROUNDS: u64 = 6;

/// One of 64 I/O tasks: its own 4 KiB pages of the blob, written and read
/// back round after round through the shared channel.
async fn io_task(
    ch: Rc<BlobIoChannel<BdevBsDev, BdevBsDev>>,
    id: u64,
    task: u64,
    seen: Rc<Seen>,
) -> Result<(), BlobError> {
    for round in 0..ROUNDS {
        let page = task * ROUNDS + round;
        let data = vec![((task * 31 + round) % 250) as u8 + 1; 4096];
        seen.io_inflight.set(seen.io_inflight.get() + 1);
        seen.max_io_inflight
            .set(seen.max_io_inflight.get().max(seen.io_inflight.get()));
        let w = ch.write(id, page, IoBuf::from_vec(data.clone())).await;
        let r = match w {
            Ok(_) => ch.read(id, page, IoBuf::new(4096)).await,
            Err(e) => Err(e),
        };
        seen.io_inflight.set(seen.io_inflight.get() - 1);
        if seen.md_inflight.get() > 0 {
            seen.io_beside_md.set(seen.io_beside_md.get() + 1);
        }
        if r?[..] != data[..] {
            seen.errors
                .borrow_mut()
                .push(format!("task {task} page {page}: read back other data"));
        }
    }
    Ok(())
}

/// Metadata operations beside the I/O: xattrs, syncs, snapshots (which
/// freeze the blob's I/O), clones, a resize, queries.
async fn md_task(h: BlobstoreHandle<BdevBsDev>, id: u64, seen: Rc<Seen>) -> Result<(), BlobError> {
    for round in 0..ROUNDS {
        seen.md_inflight.set(seen.md_inflight.get() + 1);
        h.set_xattr(id, format!("round{round}"), vec![round as u8; 16])
            .await?;
        h.sync_md(id).await?;
        let snap = h.create_snapshot(id, Vec::new()).await?;
        let clone = h.create_clone(snap, Vec::new()).await?;
        h.delete_blob(clone).await?;
        h.free_cluster_count().await?;
        seen.md_inflight.set(seen.md_inflight.get() - 1);
    }
    h.resize_blob(id, 32).await
}

#[test]
fn sixty_four_blob_ios_and_metadata_operations_share_one_reactor_with_a_poller_running_every_poll()
{
    let path =
        std::env::temp_dir().join(format!("spdk-io-blob-reactor-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    config(serde_json::json!([
        {"method": "bdev_aio_create", "params": {"name": "BlobReactorAio", "filename": path, "block_size": 4096}}
    ]));
    let t = Thread::new("reactor");
    let seen = Rc::new(Seen::default());
    let s = seen.clone();
    let poller = t
        .poller_register("beside_the_blobstore", 0, move || {
            s.poller_runs.set(s.poller_runs.get() + 1);
            PollerStatus::Idle
        })
        .unwrap();
    let me = t.handle();
    let s = seen.clone();
    let main = t
        .enter(|| {
            spawn_local(async move {
                let open = || {
                    BdevBsDev::open("BlobReactorAio").map_err(|source| BlobError::Io {
                        op: "open",
                        lba: 0,
                        blocks: 0,
                        source,
                    })
                };
                let h = BlobstoreHandle::start_with_async(&me, move || async move {
                    Blobstore::init_async(open()?, &BsOpts::default()).await
                })
                .await?;
                let id = h
                    .create_blob(BlobOpts {
                        num_clusters: 8,
                        thin_provision: true,
                        ..Default::default()
                    })
                    .await?;
                let blob = h.open_blob(id).await?;
                let ch = Rc::new(BlobIoChannel::new(&h, open()?).await?);
                let mut tasks = Vec::new();
                for task in 0..TASKS {
                    tasks.push(spawn_local(io_task(ch.clone(), id, task, s.clone())).unwrap());
                }
                let md = spawn_local(md_task(h.clone(), id, s.clone())).unwrap();
                for task in tasks {
                    task.await.unwrap()?;
                }
                md.await.unwrap()?;
                // Every page as its task last wrote it, read through the blob.
                for task in 0..TASKS {
                    for round in 0..ROUNDS {
                        let page = task * ROUNDS + round;
                        let back = ch.read(id, page, IoBuf::new(4096)).await?;
                        assert_eq!(
                            back[0],
                            ((task * 31 + round) % 250) as u8 + 1,
                            "page {page}"
                        );
                    }
                }
                drop(ch);
                h.close_blob(blob).await?;
                h.unload_in_place().await
            })
        })
        .unwrap();
    let mut polls = 0u64;
    while !main.is_finished() {
        assert!(
            polls < 50_000_000,
            "the run did not finish in {polls} polls"
        );
        let before = seen.poller_runs.get();
        t.poll(0);
        polls += 1;
        assert_eq!(
            seen.poller_runs.get(),
            before + 1,
            "the poller beside the blobstore missed poll {polls}"
        );
    }
    main.try_take().unwrap().unwrap().unwrap();
    assert!(
        seen.errors.borrow().is_empty(),
        "{:?}",
        seen.errors.borrow()
    );
    assert_eq!(
        seen.max_io_inflight.get(),
        TASKS,
        "all 64 blob I/Os were in flight at once"
    );
    assert!(
        seen.io_beside_md.get() > 0,
        "blob I/O completed while metadata operations were under way"
    );
    poller.unregister();
    t.shutdown().unwrap();
    t.destroy().unwrap();
    bdev::get_by_name("BlobReactorAio").unwrap().unregister();
    let bs = Blobstore::load(FileDev::open(&path, 4096).unwrap(), &LoadOpts::default()).unwrap();
    bs.verify().unwrap();
    assert_eq!(
        bs.blob_ids().len(),
        1 + ROUNDS as usize,
        "the blob and its snapshots"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn channel_io_by_callback_completes_later_on_the_calling_thread() {
    config(serde_json::json!([
        {"method": "bdev_malloc_create", "params": {"name": "BlobCbMalloc", "num_blocks": 4096, "block_size": 4096}}
    ]));
    let t = Thread::new("blob_cb");
    let me = t.handle();
    let task = t
        .enter(|| {
            spawn_local(async move {
                let open = || BdevBsDev::open("BlobCbMalloc").unwrap();
                let h = BlobstoreHandle::start_with_async(&me, move || async move {
                    Blobstore::init_async(open(), &BsOpts::default()).await
                })
                .await
                .unwrap();
                let opts = BlobOpts {
                    num_clusters: 2,
                    thin_provision: true,
                    ..Default::default()
                };
                let id = h.create_blob(opts).await.unwrap();
                let blob = h.open_blob(id).await.unwrap();
                let ch = Rc::new(BlobIoChannel::new(&h, open()).await.unwrap());
                type Pages = Vec<(u64, Vec<u8>)>;
                let got: Rc<RefCell<Pages>> = Rc::default();
                let in_call = Rc::new(Cell::new(false));
                // A first write allocates (through the metadata thread), the
                // second goes straight to the bdev, then both read back.
                for (page, byte) in [(0u64, 0x11u8), (1, 0x22)] {
                    let (g, c) = (got.clone(), in_call.clone());
                    in_call.set(true);
                    ch.write_cb(
                        id,
                        page,
                        IoBuf::from_vec(vec![byte; 4096]),
                        Box::new(move |r: Result<IoBuf, BlobError>| {
                            assert!(!c.get(), "completed inside the call");
                            r.unwrap();
                            g.borrow_mut().push((page, Vec::new()));
                        }),
                    );
                    in_call.set(false);
                    while got.borrow().len() < page as usize + 1 {
                        spdk_io::thread::yield_now().await;
                    }
                }
                for page in [0u64, 1] {
                    let g = got.clone();
                    ch.read_cb(
                        id,
                        page,
                        IoBuf::new(4096),
                        Box::new(move |r: Result<IoBuf, BlobError>| {
                            g.borrow_mut().push((page, r.unwrap().to_vec()))
                        }),
                    );
                }
                while got.borrow().len() < 4 {
                    spdk_io::thread::yield_now().await;
                }
                let reads: Vec<_> = got.borrow()[2..].to_vec();
                drop(ch);
                h.close_blob(blob).await.unwrap();
                h.unload_in_place().await.unwrap();
                reads
            })
        })
        .unwrap();
    let mut polls = 0u64;
    while !task.is_finished() {
        assert!(polls < 10_000_000, "no end after {polls} polls");
        t.poll(0);
        polls += 1;
    }
    let mut reads = task.try_take().unwrap().unwrap();
    reads.sort();
    assert_eq!(reads, vec![(0, vec![0x11; 4096]), (1, vec![0x22; 4096])]);
    t.shutdown().unwrap();
    t.destroy().unwrap();
}
