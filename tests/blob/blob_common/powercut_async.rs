//! The power-cut sweep over the asynchronous paths: the store's device
//! completes later (each operation yields to the executor first, as a bdev
//! does), and blob channel I/O from 8 tasks and a stream of metadata
//! operations (xattrs, sync, snapshots, resize, clone, delete, decouple)
//! are in flight at once on one reactor. After a cut at every write the
//! store must load with agreeing maps, and every 4 KiB page of every blob
//! must hold zeroes or one of the values the workload wrote to that page
//! (never a mix, never another page's), also after a clean unload and load.

use spdk_io::bdev::IoBuf;
use spdk_io::blob::{
    BlobIoChannel, BlobOpts, Blobstore, BlobstoreHandle, BsDev, BsOpts, DevIo, LoadOpts,
    PowerCutDev, RamDev,
};
use spdk_io::thread::{spawn_local, yield_now, Thread};
use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

type Shared = Arc<Mutex<PowerCutDev>>;

fn dev(d: &Shared) -> std::sync::MutexGuard<'_, PowerCutDev> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// The store's handle on the device: completes after a trip through the executor.
struct Later(Shared);

/// A channel's handle on the same device: completes inline.
struct Now(Shared);

fn refused() -> io::Error {
    io::Error::new(io::ErrorKind::WouldBlock, "completes later")
}

impl BsDev for Later {
    fn block_len(&self) -> u32 {
        dev(&self.0).block_len()
    }
    fn block_count(&self) -> u64 {
        dev(&self.0).block_count()
    }
    fn read(&mut self, _: u64, _: &mut [u8]) -> io::Result<()> {
        Err(refused())
    }
    fn write(&mut self, _: u64, _: &[u8]) -> io::Result<()> {
        Err(refused())
    }
    fn unmap(&mut self, _: u64, _: u64) -> io::Result<()> {
        Err(refused())
    }
    fn write_zeroes(&mut self, _: u64, _: u64) -> io::Result<()> {
        Err(refused())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(refused())
    }
    fn completes_inline(&self) -> bool {
        false
    }
    fn read_buf(&mut self, lba: u64, mut buf: IoBuf) -> DevIo<'_, IoBuf> {
        Box::pin(async move {
            yield_now().await;
            dev(&self.0).read(lba, &mut buf).map(|()| buf)
        })
    }
    fn write_buf(&mut self, lba: u64, buf: IoBuf) -> DevIo<'_, IoBuf> {
        Box::pin(async move {
            yield_now().await;
            dev(&self.0).write(lba, &buf).map(|()| buf)
        })
    }
    fn unmap_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        Box::pin(async move {
            yield_now().await;
            dev(&self.0).unmap(lba, blocks)
        })
    }
    fn write_zeroes_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        Box::pin(async move {
            yield_now().await;
            dev(&self.0).write_zeroes(lba, blocks)
        })
    }
    fn flush_async(&mut self) -> DevIo<'_, ()> {
        Box::pin(async move {
            yield_now().await;
            dev(&self.0).flush()
        })
    }
}

impl BsDev for Now {
    fn block_len(&self) -> u32 {
        dev(&self.0).block_len()
    }
    fn block_count(&self) -> u64 {
        dev(&self.0).block_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        dev(&self.0).read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        dev(&self.0).write(lba, buf)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        dev(&self.0).unmap(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        dev(&self.0).write_zeroes(lba, blocks)
    }
    fn flush(&mut self) -> io::Result<()> {
        dev(&self.0).flush()
    }
}

const WRITERS: u64 = 8;
const ROUNDS: u64 = 6;

/// Writer `k`'s round `r`: its page and the byte filling it.
fn write_of(k: u64, r: u64) -> (u64, u8) {
    (k * 2 + r % 2, (1 + k * ROUNDS + r) as u8)
}

/// What the run saw: device writes when setup ended, at the end, and the
/// most channel writes in flight while a metadata operation was.
pub struct Run {
    pub setup_writes: u64,
    pub total_writes: u64,
    pub overlap: u64,
}

type Res<T> = Result<T, spdk_io::blob::BlobError>;

async fn md_ops(h: BlobstoreHandle<Later>, x: u64, busy: Rc<Cell<bool>>) -> Res<()> {
    busy.set(true);
    h.set_xattr(x, "v".into(), vec![1; 8]).await?;
    h.sync_md(x).await?;
    let s1 = h.create_snapshot(x, Vec::new()).await?;
    h.resize_blob(x, 6).await?;
    h.sync_md(x).await?;
    let c = h.create_clone(s1, Vec::new()).await?;
    h.set_xattr(c, "c".into(), vec![2; 8]).await?;
    h.sync_md(c).await?;
    h.delete_blob(c).await?;
    let y = h
        .create_blob(BlobOpts {
            num_clusters: 2,
            ..Default::default()
        })
        .await?;
    h.delete_blob(y).await?;
    let _s2 = h.create_snapshot(x, Vec::new()).await?;
    h.delete_blob(s1).await?; // merges into its one clone, the second snapshot
    h.decouple_parent(x).await?;
    busy.set(false);
    Ok(())
}

/// Runs the workload on `image` with writes after the `cut`-th dropped
/// (counting from the load; with `tear`, the first half of the cut-th lands);
/// returns the device as the cut left it and what the run saw.
pub fn run(image: &[u8], cut: Option<u64>, tear: bool) -> (RamDev, Run) {
    let shared: Shared = Arc::new(Mutex::new(PowerCutDev::new(
        RamDev::from_image(image.to_vec(), 4096).unwrap(),
        cut,
        tear,
    )));
    let t = Thread::new("powercut");
    let me = t.handle();
    let s = shared.clone();
    let task = t
        .enter(|| {
            spawn_local(async move {
                let s2 = s.clone();
                let h = BlobstoreHandle::start_with_async(&me, move || async move {
                    Blobstore::load_async(Later(s2), &LoadOpts::default()).await
                })
                .await?;
                let opts = BlobOpts {
                    num_clusters: 4,
                    thin_provision: true,
                    ..Default::default()
                };
                let x = h.create_blob(opts).await?;
                let blob = h.open_blob(x).await?;
                let ch = Rc::new(BlobIoChannel::new(&h, Now(s.clone())).await?);
                let setup_writes = dev(&s).writes();
                let busy = Rc::new(Cell::new(false));
                let (inflight, overlap) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(0u64)));
                let mut tasks = Vec::new();
                for k in 0..WRITERS {
                    let (ch, busy, inflight, overlap) =
                        (ch.clone(), busy.clone(), inflight.clone(), overlap.clone());
                    tasks.push(
                        spawn_local(async move {
                            for r in 0..ROUNDS {
                                let (page, tag) = write_of(k, r);
                                inflight.set(inflight.get() + 1);
                                if busy.get() {
                                    overlap.set(overlap.get().max(inflight.get()));
                                }
                                let w = ch.write(x, page, IoBuf::from_vec(vec![tag; 4096])).await;
                                inflight.set(inflight.get() - 1);
                                w?;
                            }
                            Ok::<_, spdk_io::blob::BlobError>(())
                        })
                        .unwrap(),
                    );
                }
                let md = spawn_local(md_ops(h.clone(), x, busy)).unwrap();
                for t in tasks {
                    t.await.unwrap()?;
                }
                md.await.unwrap()?;
                drop(ch);
                h.close_blob(blob).await?;
                // The device as a crash now would leave it; then the store ends.
                let crashed = dev(&s).clone();
                h.unload_in_place().await?;
                Ok::<_, spdk_io::blob::BlobError>((setup_writes, overlap.get(), crashed))
            })
        })
        .unwrap();
    let mut polls = 0u64;
    while !task.is_finished() {
        assert!(polls < 10_000_000, "the workload did not finish");
        t.poll(0);
        polls += 1;
    }
    let (setup_writes, overlap, d) = task.try_take().unwrap().unwrap().unwrap();
    t.shutdown().unwrap();
    t.destroy().unwrap();
    let total_writes = d.writes();
    (
        d.into_inner(),
        Run {
            setup_writes,
            total_writes,
            overlap,
        },
    )
}

/// A fresh store image (16 KiB clusters, 2 MiB of 4 KiB blocks).
pub fn image() -> Vec<u8> {
    let opts = BsOpts {
        cluster_size: 16 * 1024,
        ..Default::default()
    };
    Blobstore::init(RamDev::new(4096, 512), &opts)
        .unwrap()
        .unload()
        .unwrap()
        .into_image()
}

/// Whether `dev` holds a consistent store whose pages hold only written values.
pub fn check(dev: RamDev, x_made: bool) -> Result<(), String> {
    let mut bs = Blobstore::load(dev, &LoadOpts::default()).map_err(|e| format!("load: {e}"))?;
    if let Some((id, e)) = bs.unusable_blobs().next() {
        return Err(format!("blob {id:#x} unusable: {e}"));
    }
    bs.verify()?;
    let x = spdk_io::blob::store::page_to_blobid(0);
    if x_made && !bs.blob_ids().contains(&x) {
        return Err("the blob made before the cut is gone".into());
    }
    let pages = |bs: &mut Blobstore<RamDev>| -> Result<Vec<(u64, usize, Vec<u8>)>, String> {
        let mut out = Vec::new();
        for id in bs.blob_ids() {
            let h = bs.open_blob(id).map_err(|e| e.to_string())?;
            let mut data = vec![0u8; bs.num_io_units(&h) as usize * 4096];
            let r = bs.read(&h, 0, &mut data).map_err(|e| e.to_string());
            bs.close_blob(h).map_err(|e| e.to_string())?;
            r?;
            for (p, page) in data.chunks(4096).enumerate() {
                out.push((id, p, page.to_vec()));
            }
        }
        Ok(out)
    };
    let got = pages(&mut bs)?;
    for (id, p, page) in &got {
        let tag = page[0];
        let written = (0..WRITERS)
            .flat_map(|k| (0..ROUNDS).map(move |r| write_of(k, r)))
            .any(|(wp, wt)| wp == *p as u64 && wt == tag);
        if page.iter().any(|&b| b != tag) || (tag != 0 && !written) {
            return Err(format!(
                "blob {id:#x} page {p} holds data the workload never wrote there"
            ));
        }
    }
    let mut bs = Blobstore::load(
        bs.unload().map_err(|e| e.to_string())?,
        &LoadOpts::default(),
    )
    .map_err(|e| e.to_string())?;
    bs.verify()?;
    if pages(&mut bs)? != got {
        return Err("the store changed across a clean unload and load".into());
    }
    Ok(())
}
