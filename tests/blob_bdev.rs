//! The blobstore on bdevs of the bdev layer, made from an SPDK JSON config:
//! a malloc bdev and a file (aio) bdev. The store made on the file bdev is
//! then read back through a plain file device, so both paths agree.

mod blob_common;

use blob_common::pattern;
use spdk_io::bdev;
use spdk_io::blob::{
    BdevBsDev, BlobError, BlobOpts, Blobstore, BlobstoreHandle, BsOpts, FileDev, LoadOpts,
};
use spdk_io::thread::{spawn_local, Thread};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

fn exercise(dev: BdevBsDev) -> (BdevBsDev, u64) {
    let mut bs = Blobstore::init(dev, &BsOpts::default()).unwrap();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 3,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    let unit = bs.io_unit_size() as u64;
    bs.write(&h, (1 << 20) / unit + 1, &pattern('B', 8192))
        .unwrap();
    bs.set_xattr(&h, "name", b"on-bdev\0").unwrap();
    bs.close_blob(h).unwrap();
    let snap = bs.create_snapshot(id, &[]).unwrap();
    let dev = bs.unload().unwrap();
    let mut bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
    assert_eq!(bs.blob_info(id).unwrap().parent, Some(snap));
    let h = bs.open_blob(id).unwrap();
    let mut buf = vec![0u8; 8192];
    bs.read(&h, (1 << 20) / unit + 1, &mut buf).unwrap();
    assert_eq!(buf, pattern('B', 8192));
    bs.close_blob(h).unwrap();
    bs.verify().unwrap();
    (bs.unload().unwrap(), id)
}

#[test]
fn a_blobstore_lives_on_malloc_and_file_bdevs_from_an_spdk_config() {
    let path = std::env::temp_dir().join(format!("spdk-io-blob-bdev-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    let cfg = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_malloc_create", "params": {"name": "BlobMalloc0", "num_blocks": 8192, "block_size": 512}},
        {"method": "bdev_aio_create", "params": {"name": "BlobAio0", "filename": path, "block_size": 4096}}
    ]}]});
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::init().unwrap();
    bdev::load_config(&cfg.to_string()).unwrap();

    exercise(BdevBsDev::open("BlobMalloc0").unwrap());
    let (dev, id) = exercise(BdevBsDev::open("BlobAio0").unwrap());
    drop(dev);
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
/// bdev channel of that thread; an application thread calls in by message.
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
                    let h = BlobstoreHandle::start_with(&md_handle, move || {
                        let dev = BdevBsDev::open(bdev_name).map_err(|source| BlobError::Io {
                            op: "open",
                            lba: 0,
                            blocks: 0,
                            source,
                        })?;
                        Blobstore::load(dev, &LoadOpts::default())
                    })
                    .await?;
                    let data = h
                        .run(|bs| {
                            let id = bs.blob_ids()[0];
                            let b = bs.open_blob(id)?;
                            let mut buf = vec![0u8; 8192];
                            let unit = bs.io_unit_size() as u64;
                            let r = bs.read(&b, (1 << 20) / unit + 1, &mut buf);
                            bs.close_blob(b)?;
                            r.map(|_| buf)
                        })
                        .await?;
                    h.unload_in_place().await?;
                    Ok(data)
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
