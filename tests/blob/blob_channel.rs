//! Blob I/O from several threads through per-thread channels while the
//! metadata thread snapshots the blobs under them: every write lands in the
//! blob (none in a snapshot that took its cluster), and snapshots never
//! change after they are made.

use spdk_io::bdev::IoBuf;
use spdk_io::blob::BsDev;
use spdk_io::blob::{
    Blob, BlobError, BlobIoChannel, BlobOpts, Blobstore, BlobstoreHandle, BsOpts, FileDev, LoadOpts,
};
use spdk_io::thread::{spawn_local, Thread, ThreadHandle};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

const CLUSTERS: u64 = 2;
const PAGES: u64 = CLUSTERS * 256;

/// Exits `t`, polls it until it has (10 s at most) and destroys it.
fn finish(t: Thread) {
    t.exit();
    let start = std::time::Instant::now();
    while !t.is_exited() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "thread {} did not exit",
            t.name()
        );
        t.poll(0);
    }
    t.destroy().unwrap();
}

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
        finish(t);
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
    finish(t);
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
        ch.write(id, page, IoBuf::from_vec(data.clone())).await?;
        model[page as usize] = data;
        if v % 25 == 0 {
            let back = ch.read(id, page, IoBuf::new(4096)).await?;
            assert_eq!(&back[..], &model[page as usize][..], "read after write");
        }
    }
    Ok(model)
}

/// A new image file of `len` bytes in the temp dir, named after `tag` and
/// the process; the test removes it.
fn image(tag: &str, len: u64) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("spdk-io-blob-{tag}-{}.img", std::process::id()));
    std::fs::File::create(&path).unwrap().set_len(len).unwrap();
    path
}

#[test]
fn channel_writes_from_two_threads_survive_concurrent_snapshots() {
    let path = image("channel", 64 << 20);
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

/// The store's device: a file whose writes wait while `hold` is set
/// (`held` counts writes waiting), so a metadata operation can be caught
/// half-way.
struct HeldFile {
    file: FileDev,
    hold: Arc<AtomicBool>,
    held: Arc<std::sync::atomic::AtomicUsize>,
}

impl BsDev for HeldFile {
    fn block_len(&self) -> u32 {
        self.file.block_len()
    }
    fn block_count(&self) -> u64 {
        self.file.block_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.file.read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> std::io::Result<()> {
        if self.hold.load(Ordering::Acquire) {
            self.held.fetch_add(1, Ordering::AcqRel);
            for _ in 0..20_000 {
                if !self.hold.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        self.file.write(lba, buf)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> std::io::Result<()> {
        self.file.unmap(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> std::io::Result<()> {
        self.file.write_zeroes(lba, blocks)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[test]
fn a_write_arriving_while_its_blob_is_frozen_for_a_snapshot_waits_then_lands_in_the_blob() {
    let path = image("freeze", 16 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let (md, md_join) = spawn_md(stop.clone());
    let file = FileDev::open(&path, 4096).unwrap();
    let channel_dev = file.try_clone().unwrap();
    let hold = Arc::new(AtomicBool::new(false));
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dev = HeldFile {
        file,
        hold: hold.clone(),
        held: held.clone(),
    };
    let bs =
        BlobstoreHandle::start(&md, Blobstore::init(dev, &BsOpts::default()).unwrap()).unwrap();

    let app = Thread::new("app");
    let poll_until = |done: &dyn Fn() -> bool| {
        for _ in 0..2_000_000 {
            if done() {
                return;
            }
            if !app.poll(0) {
                std::thread::yield_now();
            }
        }
        panic!("no progress");
    };
    let (a, b) = (vec![0xaa; 4096], vec![0xbb; 4096]);
    type Out = Rc<RefCell<Option<Result<IoBuf, BlobError>>>>;
    let ch: Rc<RefCell<Option<BlobIoChannel<HeldFile, FileDev>>>> = Rc::default();
    let id_cell = Rc::new(Cell::new(0u64));
    let blob_slot: Rc<RefCell<Option<Blob>>> = Rc::default();
    // A thick blob, written once through the channel.
    let setup: Out = Rc::default();
    let (bs2, ch2, id2, out2, a2) = (
        bs.clone(),
        ch.clone(),
        id_cell.clone(),
        setup.clone(),
        a.clone(),
    );
    let blob2 = blob_slot.clone();
    app.enter(|| {
        spawn_local(async move {
            let r = async {
                let opts = BlobOpts {
                    num_clusters: 2,
                    ..Default::default()
                };
                let id = bs2.create_blob(opts).await?;
                *blob2.borrow_mut() = Some(bs2.open_blob(id).await?);
                id2.set(id);
                let c = BlobIoChannel::new(&bs2, channel_dev).await?;
                let r = c.write(id, 0, IoBuf::from_vec(a2)).await;
                *ch2.borrow_mut() = Some(c);
                r
            }
            .await;
            *out2.borrow_mut() = Some(r);
        })
    })
    .unwrap();
    poll_until(&|| setup.borrow().is_some());
    setup.borrow_mut().take().unwrap().unwrap();
    let id = id_cell.get();

    // The snapshot freezes the blob, then its metadata write is held.
    hold.store(true, Ordering::Release);
    let snap: Rc<RefCell<Option<Result<u64, BlobError>>>> = Rc::default();
    let (bs3, snap2) = (bs.clone(), snap.clone());
    app.enter(|| {
        spawn_local(async move {
            *snap2.borrow_mut() = Some(bs3.create_snapshot(id, Vec::new()).await);
        })
    })
    .unwrap();
    for _ in 0..20_000 {
        if held.load(Ordering::Acquire) > 0 {
            break;
        }
        app.poll(0);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        held.load(Ordering::Acquire) > 0,
        "the snapshot reached the device"
    );

    // A write to the blob now waits on its channel...
    let wrote: Out = Rc::default();
    let (ch3, wrote2, b2) = (ch.clone(), wrote.clone(), b.clone());
    app.enter(|| {
        spawn_local(async move {
            let c = ch3.borrow_mut().take().unwrap();
            let r = c.write(id, 0, IoBuf::from_vec(b2)).await;
            *ch3.borrow_mut() = Some(c);
            *wrote2.borrow_mut() = Some(r);
        })
    })
    .unwrap();
    for _ in 0..2_000 {
        app.poll(0);
    }
    assert!(
        wrote.borrow().is_none(),
        "a write went through a frozen blob"
    );
    assert!(snap.borrow().is_none());
    // ... and goes on after the thaw, into the blob, not the snapshot.
    hold.store(false, Ordering::Release);
    poll_until(&|| wrote.borrow().is_some() && snap.borrow().is_some());
    wrote.borrow_mut().take().unwrap().unwrap();
    let snap_id = snap.borrow_mut().take().unwrap().unwrap();
    drop(ch.borrow_mut().take());
    type Pair = Result<(Vec<u8>, Vec<u8>), BlobError>;
    let got: Rc<RefCell<Option<Pair>>> = Rc::default();
    let got2 = got.clone();
    let blob = blob_slot.borrow_mut().take().unwrap();
    app.enter(|| {
        spawn_local(async move {
            let r = bs
                .run(move |s| {
                    let mut mine = vec![0u8; 4096];
                    let mut old = vec![0u8; 4096];
                    s.read(&blob, 0, &mut mine)?;
                    s.close_blob(blob)?;
                    let h = s.open_blob(snap_id)?;
                    let r = s.read(&h, 0, &mut old);
                    s.close_blob(h)?;
                    r.map(|()| (mine, old))
                })
                .await;
            *got2.borrow_mut() = Some(r);
        })
    })
    .unwrap();
    poll_until(&|| got.borrow().is_some());
    let (mine, old) = got.borrow_mut().take().unwrap().unwrap();
    assert_eq!(mine, b, "the write landed in the blob");
    assert_eq!(
        old, a,
        "the snapshot kept what the blob held when it was made"
    );
    stop.store(true, Ordering::Release);
    md_join.join().unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_query_runs_beside_blob_io_in_flight_while_a_run_waits_for_it_to_drain() {
    let path = image("query", 16 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let (md, md_join) = spawn_md(stop.clone());
    let file = FileDev::open(&path, 4096).unwrap();
    let writer_file = file.try_clone().unwrap();
    let bs =
        BlobstoreHandle::start(&md, Blobstore::init(file, &BsOpts::default()).unwrap()).unwrap();
    let b2 = bs.clone();
    let (id, blob) = block_on(async move {
        let opts = BlobOpts {
            num_clusters: 1,
            ..Default::default()
        };
        let id = b2.create_blob(opts).await?;
        Ok::<_, BlobError>((id, b2.open_blob(id).await?))
    })
    .unwrap();

    // A writer thread whose channel write is held inside its device.
    let hold = Arc::new(AtomicBool::new(true));
    let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let dev = HeldFile {
        file: writer_file,
        hold: hold.clone(),
        held: held.clone(),
    };
    let b3 = bs.clone();
    let writer = std::thread::spawn(move || {
        block_on(async move {
            let ch = BlobIoChannel::new(&b3, dev).await?;
            ch.write(id, 0, IoBuf::from_vec(vec![9; 4096]))
                .await
                .map(drop)
        })
    });
    for _ in 0..20_000 {
        if held.load(Ordering::Acquire) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(
        held.load(Ordering::Acquire) > 0,
        "the write reached its device"
    );

    // A query answers now; a run waits until the write is done.
    let b4 = bs.clone();
    let free = block_on(async move { b4.query(|s| s.free_cluster_count()).await }).unwrap();
    assert!(free > 0);
    let app = Thread::new("app");
    let ran = Rc::new(Cell::new(false));
    let (b5, r2) = (bs.clone(), ran.clone());
    let task = app
        .enter(|| {
            spawn_local(async move {
                b5.run(|s| Ok(s.free_cluster_count())).await.unwrap();
                r2.set(true);
            })
        })
        .unwrap();
    for _ in 0..200 {
        app.poll(0);
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    assert!(!ran.get(), "a run went ahead of blob I/O in flight");
    hold.store(false, Ordering::Release);
    writer.join().unwrap().unwrap();
    for _ in 0..2_000_000 {
        if task.is_finished() {
            break;
        }
        app.poll(0);
    }
    assert!(ran.get(), "the run went on once the write was done");
    app.exit();
    while !app.is_exited() {
        app.poll(0);
    }
    app.destroy().unwrap();
    let b6 = bs.clone();
    block_on(async move {
        b6.close_blob(blob).await.unwrap();
        b6.unload().await.unwrap();
    });
    stop.store(true, Ordering::Release);
    md_join.join().unwrap();
    std::fs::remove_file(&path).unwrap();
}

/// Waits (bounded) until `slot` is filled, yielding to the thread between looks.
async fn filled<T>(slot: &RefCell<Option<T>>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(v) = slot.borrow_mut().take() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no completion in 60 s"
        );
        spdk_io::thread::yield_now().await;
    }
}

#[test]
fn a_read_right_after_an_allocating_channel_write_finds_the_data() {
    // A thin blob of many small clusters: bringing its shared map up to date
    // after each allocation walks every cluster, so a completion delivered
    // before that walk ends would let the read below see the old map.
    const CLUSTER: u64 = 16 << 10;
    const THIN_CLUSTERS: u64 = 200_000;
    const WRITES: u64 = 32;
    let path = image("alloc-read", 16 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let (md, md_join) = spawn_md(stop.clone());
    let file = FileDev::open(&path, 4096).unwrap();
    let channel_dev = file.try_clone().unwrap();
    let opts = BsOpts {
        cluster_size: CLUSTER as u32,
        ..Default::default()
    };
    let bs = BlobstoreHandle::start(&md, Blobstore::init(file, &opts).unwrap()).unwrap();
    let b2 = bs.clone();
    let stale: Vec<u64> = block_on(async move {
        let id = b2
            .create_blob(BlobOpts {
                num_clusters: THIN_CLUSTERS,
                thin_provision: true,
                ..Default::default()
            })
            .await?;
        let blob = b2.open_blob(id).await?;
        let ch = Rc::new(BlobIoChannel::new(&b2, channel_dev).await?);
        let units_per_cluster = CLUSTER / 4096;
        let mut stale = Vec::new();
        for i in 0..WRITES {
            let cluster = (i * 6_151 + 17) % THIN_CLUSTERS;
            let offset = cluster * units_per_cluster + i % units_per_cluster;
            let data = vec![(i % 250) as u8 + 1; 4096];
            type Slot = Rc<RefCell<Option<Result<IoBuf, BlobError>>>>;
            let out: Slot = Rc::default();
            let (ch2, out2) = (ch.clone(), out.clone());
            // In the write's completion, at once: a read of the same blocks.
            ch.write_cb(
                id,
                offset,
                IoBuf::from_vec(data.clone()),
                Box::new(move |r: Result<IoBuf, BlobError>| match r {
                    Ok(_) => {
                        let out3 = out2.clone();
                        ch2.read_cb(
                            id,
                            offset,
                            IoBuf::new(4096),
                            Box::new(move |r| *out3.borrow_mut() = Some(r)),
                        )
                    }
                    Err(e) => *out2.borrow_mut() = Some(Err(e)),
                }),
            );
            let back = filled(&out).await?;
            if back[..] != data[..] {
                stale.push(cluster);
            }
        }
        drop(ch);
        b2.close_blob(blob).await?;
        b2.unload().await?;
        Ok::<_, BlobError>(stale)
    })
    .unwrap();
    assert!(
        stale.is_empty(),
        "{} of {WRITES} reads right after their write read the old data (clusters {stale:?})",
        stale.len()
    );
    stop.store(true, Ordering::Release);
    md_join.join().unwrap();
    std::fs::remove_file(&path).unwrap();
}
