//! Blob I/O through a [`BlobIoChannel`] against raw bdev I/O on the same
//! bdev, both at queue depth 128 on one lightweight thread polled in a
//! loop: 128 async tasks, each awaiting one 4 KiB I/O after another with
//! its own buffer. The blob covers the store; offsets are random.
//! Included with `#[path]`.

use spdk_io::bdev::{self, IoBuf};
use spdk_io::blob::{BdevBsDev, BlobIoChannel, BlobOpts, Blobstore, BlobstoreHandle, BsOpts};
use spdk_io::thread::{spawn_local, Thread};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

const QD: u64 = 128;

fn next(x: &Cell<u64>) -> u64 {
    let mut v = x.get();
    v ^= v << 13;
    v ^= v >> 7;
    v ^= v << 17;
    x.set(v);
    v
}

/// Runs `ios` I/Os of each kind (raw read, blob read, raw write, blob
/// write) on bdev `name`; returns the figures.
pub fn run(name: &'static str, ios: u64) -> serde_json::Value {
    let t = Thread::new("blob_bench");
    let me = t.handle();
    let task = t
        .enter(|| {
            spawn_local(async move {
                let open = move || BdevBsDev::open(name).expect("bench bdev");
                let h = BlobstoreHandle::start_with_async(&me, move || async move {
                    Blobstore::init_async(open(), &BsOpts::default()).await
                })
                .await
                .expect("blobstore");
                let clusters = h.free_cluster_count().await.expect("free");
                let opts = BlobOpts {
                    num_clusters: clusters,
                    ..Default::default()
                };
                let id = h.create_blob(opts).await.expect("blob");
                let blob = h.open_blob(id).await.expect("open");
                let upc = (h.cluster_size().await.unwrap() / 4096) as u64;
                let span = clusters * upc;
                let ch = Rc::new(BlobIoChannel::new(&h, open()).await.expect("channel"));
                let raw = bdev::open(name, true).expect("raw desc");
                let raw_ch = Rc::new(raw.get_io_channel().expect("raw channel"));
                let raw = Rc::new(raw);
                let mut out = Vec::new();
                for write in [false, true] {
                    for blob_side in [false, true] {
                        let left = Rc::new(Cell::new(ios));
                        let rng = Rc::new(Cell::new(0x9e37_79b9_7f4a_7c15u64));
                        let (t0, c0) = (Instant::now(), super::resubmit::cpu_ns());
                        let mut tasks = Vec::new();
                        for _ in 0..QD {
                            let (ch, raw, raw_ch) = (ch.clone(), raw.clone(), raw_ch.clone());
                            let (left, rng) = (left.clone(), rng.clone());
                            tasks.push(
                                spawn_local(async move {
                                    let mut buf = IoBuf::new(4096);
                                    while left.get() > 0 {
                                        left.set(left.get() - 1);
                                        let p = next(&rng) % span;
                                        buf = match (blob_side, write) {
                                            (true, false) => ch.read(id, p, buf).await.unwrap(),
                                            (true, true) => ch.write(id, p, buf).await.unwrap(),
                                            (false, false) => raw
                                                .read_blocks_async(&raw_ch, buf, p, 1)
                                                .await
                                                .unwrap(),
                                            (false, true) => raw
                                                .write_blocks_async(&raw_ch, buf, p, 1)
                                                .await
                                                .unwrap(),
                                        };
                                    }
                                })
                                .unwrap(),
                            );
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                        let wall = t0.elapsed().as_nanos() as f64;
                        let cpu = (super::resubmit::cpu_ns() - c0) as f64;
                        out.push(serde_json::json!({
                            "path": if blob_side { "blob" } else { "raw bdev" },
                            "rw": if write { "randwrite" } else { "randread" },
                            "bdev": name, "qd": QD, "ios": ios,
                            "iops": 1e9 * ios as f64 / wall,
                            "wall_ns_per_io": wall / ios as f64,
                            "cpu_ns_per_io": cpu / ios as f64,
                        }));
                    }
                }
                drop((ch, raw_ch));
                h.close_blob(blob).await.unwrap();
                h.unload_in_place().await.unwrap();
                out
            })
        })
        .unwrap();
    while !task.is_finished() {
        t.poll(0);
    }
    let out = task.try_take().unwrap().unwrap();
    t.shutdown().unwrap();
    t.destroy().unwrap();
    serde_json::Value::Array(out)
}
