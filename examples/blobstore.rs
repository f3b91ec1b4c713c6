//! A blobstore on a bdev: a malloc bdev, a store made on it, a thin blob
//! written, its xattr set, the store unloaded and loaded again, the data
//! read back. A bdev completes asynchronously, so everything runs as async
//! calls on a lightweight thread (whose poller completes the bdev's I/O).
//!
//! Run: `cargo run --example blobstore`

use spdk_io::bdev::malloc::{self, MallocOpts};
use spdk_io::bdev::IoBuf;
use spdk_io::blob::{BdevBsDev, BlobOpts, Blobstore, BsOpts, LoadOpts};
use spdk_io::env::{self, EnvOpts};
use spdk_io::thread::Thread;
use std::error::Error;

async fn demo() -> Result<bool, Box<dyn Error>> {
    let dev = BdevBsDev::open("Malloc0")?; // with a channel of this thread
    let mut bs = Blobstore::init_async(dev, &BsOpts::default()).await?;
    let id = bs
        .create_blob_async(&BlobOpts {
            num_clusters: 4,
            thin_provision: true,
            ..BlobOpts::default()
        })
        .await?;
    let blob = bs.open_blob(id)?;
    let unit = bs.io_unit_size() as u64;
    // Offsets in io units: the second cluster. The buffer goes to the bdev and comes back.
    let data = IoBuf::from_vec(vec![0x5a; 8192]);
    bs.write_async(id, (1 << 20) / unit, data).await?;
    bs.set_xattr(&blob, "name", b"example\0")?;
    bs.close_blob_async(blob).await?; // persists the metadata
    println!(
        "blob {id:#x}: 8 KiB written at 1 MiB, {} clusters free",
        bs.free_cluster_count()
    );
    let dev = bs.unload_async().await?;

    let mut bs = Blobstore::load_async(dev, &LoadOpts::default()).await?;
    let back = bs
        .read_async(id, (1 << 20) / unit, IoBuf::new(8192))
        .await?;
    let name = bs.blob_info(id)?.xattrs;
    drop(bs.unload_async().await?);
    let same = back[..] == [0x5a; 8192];
    println!(
        "reloaded: xattrs {name:?}, data {}",
        if same { "identical" } else { "DIFFERENT" }
    );
    Ok(same)
}

fn main() -> Result<(), Box<dyn Error>> {
    env::init(EnvOpts::no_huge())?;
    // 16 MiB: room for the metadata and a few 1 MiB clusters.
    malloc::create(MallocOpts::new("Malloc0", 32768, 512))?;
    let t = Thread::new("blob_md");
    let same = t.block_on(demo())?;
    t.shutdown()?;
    t.destroy()?;
    spdk_io::bdev::fini();
    env::fini();
    if same? {
        Ok(())
    } else {
        Err("data mismatch".into())
    }
}
