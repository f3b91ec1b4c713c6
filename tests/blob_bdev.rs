//! The blobstore on bdevs of the bdev layer, made from an SPDK JSON config:
//! a malloc bdev and a file (aio) bdev. The store made on the file bdev is
//! then read back through a plain file device, so both paths agree.

mod blob_common;

use blob_common::pattern;
use spdk_io::bdev;
use spdk_io::blob::{BdevBsDev, BlobOpts, Blobstore, BsOpts, FileDev, LoadOpts};

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
    bdev::init().unwrap();
    bdev::load_config(&cfg.to_string()).unwrap();

    exercise(BdevBsDev::open("BlobMalloc0").unwrap());
    let (dev, id) = exercise(BdevBsDev::open("BlobAio0").unwrap());
    drop(dev);
    assert!(BdevBsDev::open("NoSuchBdev").is_err());

    let bs = Blobstore::load(FileDev::open(&path, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert_eq!(
        bs.blob_info(id).unwrap().xattrs,
        vec![("name".to_string(), b"on-bdev\0".to_vec())]
    );
    std::fs::remove_file(&path).unwrap();
}
