//! Blob I/O from several threads through per-thread channels while the
//! metadata thread snapshots the blobs under them: every write lands in the
//! blob (none in a snapshot that took its cluster), and snapshots never
//! change after they are made.

use spdk_io::blob::BsDev;
use spdk_io::blob::{
    Blob, BlobError, BlobIoChannel, BlobOpts, Blobstore, BlobstoreHandle, BsOpts, FileDev, LoadOpts,
};
use spdk_io::thread::{spawn_local, Thread, ThreadHandle};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

const CLUSTERS: u64 = 2;
const PAGES: u64 = CLUSTERS * 256;

/// Polls a new lightweight thread on its own OS thread until `stop`.
fn spawn_md(stop: Arc<AtomicBool>) -> (ThreadHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::spawn(move || {
        let t = Thread::new("blob_md");
        tx.send(t.handle()).unwrap();
        while !stop.load(Ordering::Acquire) {
            if !t.poll(0) {
                std::thread::yield_now();
            }
        }
        t.exit();
        while !t.is_exited() {
            t.poll(0);
        }
        t.destroy().unwrap();
    });
    (rx.recv().unwrap(), join)
}

/// Runs `fut` on a new lightweight thread polled by the calling OS thread.
fn block_on<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    let t = Thread::new("app");
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    let task = t
        .enter(|| spawn_local(async move { *o.borrow_mut() = Some(fut.await) }))
        .unwrap();
    while !task.is_finished() {
        if !t.poll(0) {
            std::thread::yield_now();
        }
    }
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    t.destroy().unwrap();
    let v = out.borrow_mut().take().unwrap();
    v
}

/// The channel's device: a file handle whose writes take a while, which
/// widens the window between mapping an I/O and doing it.
struct SlowFile(FileDev);

impl BsDev for SlowFile {
    fn block_len(&self) -> u32 {
        self.0.block_len()
    }
    fn block_count(&self) -> u64 {
        self.0.block_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.0.read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> std::io::Result<()> {
        std::thread::sleep(std::time::Duration::from_micros(300));
        self.0.write(lba, buf)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> std::io::Result<()> {
        self.0.unmap(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> std::io::Result<()> {
        self.0.write_zeroes(lba, blocks)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// A blob's whole content, read on the metadata thread.
fn read_blob(s: &mut Blobstore<FileDev>, id: u64) -> Result<Vec<u8>, BlobError> {
    let h = s.open_blob(id)?;
    let mut data = vec![0u8; (PAGES * 4096) as usize];
    let r = s.read(&h, 0, &mut data);
    s.close_blob(h)?;
    r.map(|_| data)
}

fn fill(version: u64, page: u64) -> Vec<u8> {
    vec![((version * 7 + page) % 251) as u8 + 1; 4096]
}

/// One writer: random 4 KiB writes into its blob through its own channel;
/// returns the model of what the blob must hold.
async fn writer(
    bs: BlobstoreHandle<FileDev>,
    dev: FileDev,
    id: u64,
    seed: u64,
) -> Result<Vec<Vec<u8>>, BlobError> {
    let ch = BlobIoChannel::new(&bs, SlowFile(dev)).await?;
    let mut model = vec![vec![0u8; 4096]; PAGES as usize];
    let mut x = seed;
    for v in 1..=300u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let page = x % PAGES;
        let data = fill(v, page);
        ch.write(id, page, &data).await?;
        model[page as usize] = data;
        if v % 25 == 0 {
            let mut back = vec![0u8; 4096];
            ch.read(id, page, &mut back).await?;
            assert_eq!(back, model[page as usize], "read after write");
        }
    }
    Ok(model)
}

#[test]
fn channel_writes_from_two_threads_survive_concurrent_snapshots() {
    let path =
        std::env::temp_dir().join(format!("spdk-io-blob-channel-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (md, md_join) = spawn_md(stop.clone());
    let dev = FileDev::open(&path, 4096).unwrap();
    assert!(
        FileDev::open(&path, 4096).is_err(),
        "one writer per file: a second open is refused"
    );
    let channel_devs: Vec<FileDev> = (0..2).map(|_| dev.try_clone().unwrap()).collect();
    let store = Blobstore::init(dev, &BsOpts::default()).unwrap();
    let bs = BlobstoreHandle::start(&md, store).unwrap();

    // Two blobs, opened for the writers.
    let b2 = bs.clone();
    let handles: Vec<Blob> = block_on(async move {
        let mut hs = Vec::new();
        for _ in 0..2 {
            let id = b2
                .run(|s| {
                    s.create_blob(&BlobOpts {
                        num_clusters: CLUSTERS,
                        ..Default::default()
                    })
                })
                .await?;
            hs.push(b2.run(move |s| s.open_blob(id)).await?);
        }
        Ok::<_, BlobError>(hs)
    })
    .unwrap();
    let ids: Vec<u64> = handles.iter().map(|h| h.id()).collect();

    let writers_running = Arc::new(std::sync::atomic::AtomicUsize::new(ids.len()));
    let writers: Vec<_> = ids
        .iter()
        .zip(channel_devs)
        .enumerate()
        .map(|(i, (&id, dev))| {
            let bs = bs.clone();
            std::thread::spawn(move || {
                block_on(writer(bs, dev, id, 0x9e3779b97f4a7c15 ^ (i as u64 + 1)))
            })
        })
        .collect();

    // Meanwhile, while the writers run: snapshot both blobs round after
    // round, recording each snapshot's content as made, and fold the oldest
    // snapshots away (delete of a snapshot with one clone), checking first
    // that they did not change.
    let b3 = bs.clone();
    let ids2 = ids.clone();
    let running = writers_running.clone();
    let (snaps, taken) = block_on(async move {
        let mut snaps: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut taken = 0;
        for _round in 0..10 {
            if running.load(Ordering::Acquire) == 0 {
                break;
            }
            for &id in &ids2 {
                let s = b3
                    .run(move |s| {
                        let snap = s.create_snapshot(id, &[])?;
                        let data = read_blob(s, snap)?;
                        Ok((snap, data))
                    })
                    .await?;
                snaps.push(s);
                taken += 1;
            }
            while snaps.len() > 4 {
                let (old, made) = snaps.remove(0);
                let now = b3
                    .run(move |s| {
                        let data = read_blob(s, old)?;
                        s.delete_blob(old)?;
                        Ok(data)
                    })
                    .await?;
                assert!(now == made, "snapshot {old:#x} changed after it was made");
            }
            // Let the writers own their clusters again before the next round.
            spdk_io::thread::sleep(std::time::Duration::from_millis(30))
                .await
                .unwrap();
        }
        Ok::<_, BlobError>((snaps, taken))
    })
    .unwrap();
    assert!(taken >= 4, "only {taken} snapshots overlapped the writers");

    let models: Vec<Vec<Vec<u8>>> = writers
        .into_iter()
        .map(|w| w.join().unwrap().unwrap())
        .collect();

    // Every write is in its blob; every snapshot is as it was made.
    let b4 = bs.clone();
    block_on(async move {
        for (i, h) in handles.into_iter().enumerate() {
            let id = h.id();
            let data = b4
                .run(move |s| {
                    let mut data = vec![0u8; (PAGES * 4096) as usize];
                    let r = s.read(&h, 0, &mut data);
                    s.close_blob(h)?;
                    r.map(|_| data)
                })
                .await
                .unwrap();
            for (p, want) in models[i].iter().enumerate() {
                assert!(
                    data[p * 4096..(p + 1) * 4096] == want[..],
                    "blob {id:#x} page {p} lost a write"
                );
            }
        }
        for (snap, made) in snaps {
            let now = b4
                .run(move |s| {
                    let h = s.open_blob(snap)?;
                    let mut data = vec![0u8; (PAGES * 4096) as usize];
                    let r = s.read(&h, 0, &mut data);
                    s.close_blob(h)?;
                    r.map(|_| data)
                })
                .await
                .unwrap();
            assert!(now == made, "snapshot {snap:#x} changed after it was made");
        }
        let dev = b4.unload().await.unwrap();
        let bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
        bs.verify().unwrap();
    });
    stop.store(true, Ordering::Release);
    md_join.join().unwrap();
    std::fs::remove_file(&path).unwrap();
}
