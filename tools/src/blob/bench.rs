//! `spdk-io blob bench`: metadata operations per second and blob I/O
//! against raw device I/O on the same bdev. Destroys what the bdev holds
//! (it makes a fresh blobstore), like bdevperf on a malloc bdev.

use serde_json::{json, Value};
use spdk_io::blob::{BlobOpts, Blobstore, BsDev, BsOpts};
use std::time::Instant;

fn rate(n: u64, secs: f64) -> Value {
    json!({ "ops": n, "seconds": secs, "ops_per_sec": n as f64 / secs, "avg_latency_us": secs * 1e6 / n as f64 })
}

/// 4 KiB random-offset I/O `n` times through `op(offset_in_blocks_of_4k, buf)`.
fn io_loop(
    n: u64,
    span: u64,
    mut op: impl FnMut(u64, &mut [u8]) -> Result<(), String>,
) -> Result<Value, String> {
    let mut buf = vec![0xa5u8; 4096];
    let mut x = 0x9e3779b97f4a7c15u64;
    let t = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        op(x % span, &mut buf)?;
    }
    let s = t.elapsed().as_secs_f64();
    let mut v = rate(n, s);
    v["mib_per_sec"] = json!(n as f64 * 4096.0 / s / (1 << 20) as f64);
    Ok(v)
}

/// Runs the benchmark on `dev` with `n` operations per measurement.
pub fn run(mut dev: Box<dyn BsDev>, n: u64) -> Result<Value, String> {
    let e = |e: spdk_io::blob::BlobError| e.to_string();
    let bpp = 4096 / dev.block_len() as u64;
    let dev_span = dev.block_count() / bpp;
    // Warm up: touch every page so neither side pays first-touch faults.
    let page = vec![0x5au8; 4096];
    for p in 0..dev_span {
        dev.write(p * bpp, &page).map_err(|e| e.to_string())?;
    }
    let raw_write = io_loop(n, dev_span, |p, b| {
        dev.write(p * bpp, b).map_err(|e| e.to_string())
    })?;
    let raw_read = io_loop(n, dev_span, |p, b| {
        dev.read(p * bpp, b).map_err(|e| e.to_string())
    })?;
    let md_pages = u32::try_from(n + 64).map_err(|_| format!("--ops {n} is too many"))?;
    let opts = BsOpts {
        num_md_pages: Some(md_pages),
        ..Default::default()
    };
    let mut bs = Blobstore::init(dev, &opts).map_err(e)?;

    let t = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = bs.create_blob(&BlobOpts::default()).map_err(e)?;
        let h = bs.open_blob(id).map_err(e)?;
        bs.close_blob(h).map_err(e)?;
        ids.push(id);
    }
    let create = rate(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for id in ids.drain(..) {
        bs.delete_blob(id).map_err(e)?;
    }
    let delete = rate(n, t.elapsed().as_secs_f64());

    let id = bs.create_blob(&BlobOpts::default()).map_err(e)?;
    let h = bs.open_blob(id).map_err(e)?;
    let t = Instant::now();
    for i in 0..n {
        bs.resize_blob(&h, 1 + i % 4).map_err(e)?;
        bs.sync_md(&h).map_err(e)?;
    }
    let resize = rate(n, t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..n {
        bs.set_xattr(&h, "bench", &i.to_le_bytes()).map_err(e)?;
        bs.sync_md(&h).map_err(e)?;
    }
    let xattr = rate(n, t.elapsed().as_secs_f64());
    let size = (bs.free_cluster_count() / 2).clamp(1, 256);
    bs.resize_blob(&h, size).map_err(e)?;
    bs.sync_md(&h).map_err(e)?;
    let units = bs.num_io_units(&h);
    let upp = 4096 / bs.io_unit_size() as u64;
    let span = units / upp;
    let blob_write = io_loop(n, span, |p, b| {
        bs.write(&h, p * upp, b).map_err(|e| e.to_string())
    })?;
    let blob_read = io_loop(n, span, |p, b| {
        bs.read(&h, p * upp, b).map_err(|e| e.to_string())
    })?;
    bs.close_blob(h).map_err(e)?;
    bs.unload().map_err(e)?;
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
