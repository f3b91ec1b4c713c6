//! `spdk-io blob bench`: metadata operations per second and blob I/O
//! against raw device I/O on the same bdev, all through the asynchronous
//! path (one I/O in flight at a time: these are latencies). Destroys what
//! the bdev holds (it makes a fresh blobstore), like bdevperf on a malloc
//! bdev.

use serde_json::{json, Value};
use spdk_io::bdev::IoBuf;
use spdk_io::blob::{BlobOpts, Blobstore, BsDev, BsOpts};
use std::time::Instant;

fn rate(n: u64, secs: f64) -> Value {
    json!({ "ops": n, "seconds": secs, "ops_per_sec": n as f64 / secs, "avg_latency_us": secs * 1e6 / n as f64 })
}

fn io_rate(n: u64, secs: f64) -> Value {
    let mut v = rate(n, secs);
    v["mib_per_sec"] = json!(n as f64 * 4096.0 / secs / (1 << 20) as f64);
    v
}

/// The 4 KiB page of each of `n` random I/Os over `span` pages.
fn pages(n: u64, span: u64) -> impl Iterator<Item = u64> {
    let mut x = 0x9e3779b97f4a7c15u64;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % span
    })
}

/// Runs the benchmark on `dev` with `n` operations per measurement.
pub async fn run(mut dev: Box<dyn BsDev>, n: u64) -> Result<Value, String> {
    let e = |e: spdk_io::blob::BlobError| e.to_string();
    let s = |e: std::io::Error| e.to_string();
    let bpp = 4096 / dev.block_len() as u64;
    let dev_span = dev.block_count() / bpp;
    // Warm up: touch every page so neither side pays first-touch faults.
    let mut buf = IoBuf::from_vec(vec![0x5au8; 4096]);
    for p in 0..dev_span {
        buf = dev.write_buf(p * bpp, buf).await.map_err(s)?;
    }
    let t = Instant::now();
    for p in pages(n, dev_span) {
        buf = dev.write_buf(p * bpp, buf).await.map_err(s)?;
    }
    let raw_write = io_rate(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for p in pages(n, dev_span) {
        buf = dev.read_buf(p * bpp, buf).await.map_err(s)?;
    }
    let raw_read = io_rate(n, t.elapsed().as_secs_f64());
    let md_pages = u32::try_from(n + 64).map_err(|_| format!("--ops {n} is too many"))?;
    let opts = BsOpts {
        num_md_pages: Some(md_pages),
        ..Default::default()
    };
    let mut bs = Blobstore::init_async(dev, &opts).await.map_err(e)?;

    let t = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = bs
            .create_blob_async(&BlobOpts::default())
            .await
            .map_err(e)?;
        let h = bs.open_blob(id).map_err(e)?;
        bs.close_blob_async(h).await.map_err(e)?;
        ids.push(id);
    }
    let create = rate(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for id in ids.drain(..) {
        bs.delete_blob_async(id).await.map_err(e)?;
    }
    let delete = rate(n, t.elapsed().as_secs_f64());

    let id = bs
        .create_blob_async(&BlobOpts::default())
        .await
        .map_err(e)?;
    let h = bs.open_blob(id).map_err(e)?;
    let t = Instant::now();
    for i in 0..n {
        bs.resize_blob(&h, 1 + i % 4).map_err(e)?;
        bs.sync_md_async(&h).await.map_err(e)?;
    }
    let resize = rate(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..n {
        bs.set_xattr(&h, "bench", &i.to_le_bytes()).map_err(e)?;
        bs.sync_md_async(&h).await.map_err(e)?;
    }
    let xattr = rate(n, t.elapsed().as_secs_f64());
    let size = (bs.free_cluster_count() / 2).clamp(1, 256);
    bs.resize_blob(&h, size).map_err(e)?;
    bs.sync_md_async(&h).await.map_err(e)?;
    let units = bs.num_io_units(&h);
    let upp = 4096 / bs.io_unit_size() as u64;
    let span = units / upp;
    let t = Instant::now();
    for p in pages(n, span) {
        buf = bs.write_async(id, p * upp, buf).await.map_err(e)?;
    }
    let blob_write = io_rate(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for p in pages(n, span) {
        buf = bs.read_async(id, p * upp, buf).await.map_err(e)?;
    }
    let blob_read = io_rate(n, t.elapsed().as_secs_f64());
    bs.close_blob_async(h).await.map_err(e)?;
    bs.unload_async().await.map_err(e)?;
    Ok(json!({
        "metadata": {
            "create_sync_close": create,
            "delete": delete,
            "resize_sync": resize,
            "xattr_set_sync": xattr,
        },
        "io_4k_random": {
            "blob_write": blob_write,
            "raw_write": raw_write,
            "blob_read": blob_read,
            "raw_read": raw_read,
        },
    }))
}
