//! A blobstore on a bdev: a malloc bdev, a store made on it, a thin blob
//! written, its xattr set, the store unloaded and loaded again, the data
//! read back.
//!
//! Run: `cargo run --example blobstore`

use spdk_io::bdev::malloc::{self, MallocOpts};
use spdk_io::blob::{BdevBsDev, BlobOpts, Blobstore, BsOpts, LoadOpts};
use spdk_io::env::{self, EnvOpts};
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    env::init(EnvOpts::no_huge())?;
    // 16 MiB: room for the metadata and a few 1 MiB clusters.
    malloc::create(MallocOpts::new("Malloc0", 32768, 512))?;

    let mut bs = Blobstore::init(BdevBsDev::open("Malloc0")?, &BsOpts::default())?;
    let id = bs.create_blob(&BlobOpts {
        num_clusters: 4,
        thin_provision: true,
        ..BlobOpts::default()
    })?;
    let blob = bs.open_blob(id)?;
    let unit = bs.io_unit_size() as u64;
    bs.write(&blob, (1 << 20) / unit, &[0x5a; 8192])?; // offsets in io units: the second cluster
    bs.set_xattr(&blob, "name", b"example\0")?;
    bs.close_blob(blob)?; // persists the metadata
    println!(
        "blob {id:#x}: 8 KiB written at 1 MiB, {} clusters free",
        bs.free_cluster_count()
    );
    let dev = bs.unload()?;

    let mut bs = Blobstore::load(dev, &LoadOpts::default())?;
    let blob = bs.open_blob(id)?;
    let mut back = vec![0u8; 8192];
    bs.read(&blob, (1 << 20) / unit, &mut back)?;
    let name = bs.blob_info(id)?.xattrs;
    bs.close_blob(blob)?;
    drop(bs.unload()?);
    println!(
        "reloaded: xattrs {name:?}, data {}",
        if back == [0x5a; 8192] {
            "identical"
        } else {
            "DIFFERENT"
        }
    );
    spdk_io::bdev::fini();
    env::fini();
    if back == [0x5a; 8192] {
        Ok(())
    } else {
        Err("data mismatch".into())
    }
}
