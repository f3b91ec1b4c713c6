//! The bdev I/O path without a reactor: one channel polled in a loop,
//! owned tasks resubmitting themselves at queue depth 128, on a null and a
//! malloc bdev. Prints ns per I/O (wall and this thread's CPU time) as JSON.
//! Then blob I/O through a blob channel against raw bdev I/O, both async at
//! QD128 on a malloc bdev (`blob_qd`).
//!
//! `cargo bench --bench bdev_io_path` (`-- blob`: the blob comparison only;
//! `-- IOS`: one round of IOS I/Os on each bdev and no blob comparison, a
//! run short enough for an instruction-counting profiler)

#[path = "common/blob_qd.rs"]
mod blob_qd;
#[path = "common/resubmit.rs"]
mod resubmit;

use resubmit::{cpu_ns, Ctx, Task};
use spdk_io::bdev::{self, malloc::MallocOpts, null::NullOpts, IoBuf};
use std::time::Instant;

fn run(name: &str, ios: u64) -> serde_json::Value {
    let desc = bdev::open(name, false).unwrap();
    let ch = desc.get_io_channel().unwrap();
    let blocks = desc.bdev().num_blocks();
    let ctx = Ctx::new(desc, ch, blocks, ios + 128, 128);
    let (t0, c0) = (Instant::now(), cpu_ns());
    for i in 0..128 {
        let t = Box::new(Task { ctx: ctx.clone() });
        ctx.desc
            .read_blocks(&ctx.ch, IoBuf::new(4096), i, 1, t)
            .unwrap();
    }
    while ctx.ch.outstanding() > 0 {
        ctx.ch.poll();
    }
    let (wall, cpu) = (t0.elapsed().as_nanos() as f64, (cpu_ns() - c0) as f64);
    let n = (ios + 128) as f64;
    serde_json::json!({"bdev": name, "ios": n, "wall_ns_per_io": wall / n, "cpu_ns_per_io": cpu / n,
        "iops_per_cpu_second": 1e9 * n / cpu.max(1.0)})
}

fn main() {
    bdev::null::create(NullOpts::new("BenchNull", 1 << 20, 4096)).unwrap();
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::malloc::create(MallocOpts::new("BenchMalloc", 32768, 4096)).unwrap();
    let only_blob = std::env::args().any(|a| a == "blob");
    let ios: Option<u64> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    let rounds = match (only_blob, ios) {
        (true, _) => 0,
        (false, Some(_)) => 1,
        (false, None) => 3,
    };
    let out: Vec<_> = (0..rounds)
        .flat_map(|_| {
            [
                run("BenchNull", ios.unwrap_or(20_000_000)),
                run("BenchMalloc", ios.unwrap_or(2_000_000)),
            ]
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    if ios.is_some() {
        return;
    }
    bdev::malloc::create(MallocOpts::new("BenchBlobMalloc", 65536, 4096)).unwrap();
    let blob: Vec<_> = (0..3)
        .map(|_| blob_qd::run("BenchBlobMalloc", 1_000_000))
        .collect();
    println!(
        "{}",
        serde_json::to_string_pretty(&blob).unwrap_or_default()
    );
}
