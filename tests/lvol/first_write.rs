//! A thin lvol's first writes: a queue of 128 writes over 64 clusters
//! nobody owns yet, all submitted at once, is served in allocation batches
//! of the channel (one metadata sync per batch that allocated), not one
//! metadata-thread round and one sync per write; every write lands. On a
//! store with too few free clusters the writes that cannot get one fail
//! with an error, the others land, and none hangs.

use crate::bdev::{by_name, opts, setup};
use crate::lvol_common::run;
use spdk_io::bdev::{self, malloc, IoBuf, IoCompletion, IoStatus};
use spdk_io::blob::{BlobClearMethod, ALLOC_BATCH_MAX};
use spdk_io::lvol::vbdev;
use std::cell::RefCell;
use std::rc::Rc;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 4096;
const PER_CLUSTER: u64 = MIB / BLOCK;

/// Waits (bounded) on this thread until `done` says so.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for _ in 0..10_000_000 {
        if done() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not after 60 s"
        );
        spdk_io::thread::yield_now().await;
    }
    panic!("{what}: not after 10000000 polls");
}

/// The 4 KiB block written by write `i`.
fn data(i: u64) -> Vec<u8> {
    let mut b = vec![(i % 251) as u8 + 1; BLOCK as usize];
    b[..8].copy_from_slice(&i.to_le_bytes());
    b
}

/// Submits a write of `data(i)` at block `lba(i)` for each `i` in `ids`
/// at once (a queue as deep as `ids`), and returns each one's status once
/// all completed.
async fn write_all(
    d: &bdev::Desc,
    ch: &bdev::Channel,
    ids: &[u64],
    lba: impl Fn(u64) -> u64,
) -> Vec<IoStatus> {
    let done: Rc<RefCell<Vec<Option<IoStatus>>>> = Rc::new(RefCell::new(vec![None; ids.len()]));
    for (k, &i) in ids.iter().enumerate() {
        let dn = done.clone();
        let cb = Box::new(move |c: IoCompletion| dn.borrow_mut()[k] = Some(c.status));
        if let Err(r) = d.write_blocks(ch, IoBuf::from_vec(data(i)), lba(i), 1, cb) {
            panic!("write {i} refused at submit: {}", r.error);
        }
    }
    until("every write completes", || {
        done.borrow().iter().all(Option::is_some)
    })
    .await;
    let v = done.borrow().iter().map(|s| s.unwrap()).collect();
    v
}

#[test]
fn thin_lvol_first_writes_at_depth_128_are_allocated_in_batches_with_one_sync_each() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "FirstWrite0",
        96 * MIB / BLOCK,
        BLOCK as u32,
    ))
    .unwrap();
    run(async {
        let s = vbdev::create_lvstore("FirstWrite0", &opts("lvs_fw"))
            .await
            .unwrap();
        let name = vbdev::create(
            &by_name("lvs_fw"),
            "thin",
            64,
            true,
            BlobClearMethod::Default,
        )
        .await
        .unwrap();
        let d = bdev::open(&name, true).unwrap();
        let ch = d.get_io_channel().unwrap();
        // The thread's first I/O makes its blob channel; a read of a
        // thin cluster never written allocates nothing.
        let z = d
            .read_blocks_async(&ch, IoBuf::new(BLOCK as usize), 0, 1)
            .await
            .unwrap();
        assert!(z.iter().all(|&b| b == 0));
        let bs = s.lvs.blobstore();
        let before = bs.stats();

        // Write i goes to cluster i % 64, at block i / 64 of it: 128
        // writes, two per cluster, none of them to a cluster owned yet.
        let lba = |i: u64| (i % 64) * PER_CLUSTER + i / 64;
        let ids: Vec<u64> = (0..128).collect();
        let st = write_all(&d, &ch, &ids, lba).await;
        assert!(st.iter().all(|s| *s == IoStatus::Success), "{st:?}");
        // Every write reads back, and the rest of each cluster is zeroes.
        for i in 0..128 {
            let b = d
                .read_blocks_async(&ch, IoBuf::new(BLOCK as usize), lba(i), 1)
                .await
                .unwrap();
            assert_eq!(&b[..], &data(i)[..], "write {i}");
        }
        let tail = d
            .read_blocks_async(&ch, IoBuf::new(BLOCK as usize), 5 * PER_CLUSTER + 7, 1)
            .await
            .unwrap();
        assert!(tail.iter().all(|&b| b == 0), "unwritten blocks read zeroes");

        let after = bs.stats();
        let batches = 128u64.div_ceil(ALLOC_BATCH_MAX as u64);
        // Writes 0..64 name clusters 0..64 in their batches; writes 64..128
        // name the same clusters again, allocated by the time their
        // batches run: those batches sync nothing.
        let allocating = 64u64.div_ceil(ALLOC_BATCH_MAX as u64);
        assert_eq!(
            after.alloc_waits - before.alloc_waits,
            128,
            "every write waited for a batch"
        );
        assert_eq!(
            after.alloc_batches - before.alloc_batches,
            batches,
            "{after:?}"
        );
        assert_eq!(
            after.clusters_allocated - before.clusters_allocated,
            64,
            "{after:?}"
        );
        assert_eq!(
            after.md_syncs - before.md_syncs,
            allocating,
            "one sync per batch that allocated: {after:?}"
        );

        // Writes to clusters owned now go straight to the base: no batch.
        let st = write_all(&d, &ch, &ids, |i| lba(i) + 2).await;
        assert!(st.iter().all(|s| *s == IoStatus::Success));
        assert_eq!(bs.stats(), after, "owned clusters need no metadata work");
        drop((d, ch));
        vbdev::delete_lvstore(&by_name("lvs_fw")).await.unwrap();
    });
}

#[test]
fn thin_lvol_first_writes_beyond_the_free_space_fail_and_the_rest_land() {
    setup();
    // 16 MiB: after the store's metadata, fewer free clusters than the
    // 32 the writes ask for.
    malloc::create(malloc::MallocOpts::new(
        "FirstWrite1",
        16 * MIB / BLOCK,
        BLOCK as u32,
    ))
    .unwrap();
    run(async {
        let s = vbdev::create_lvstore("FirstWrite1", &opts("lvs_fw1"))
            .await
            .unwrap();
        let free = s.lvs.space().await.unwrap().free_clusters;
        assert!(free < 32, "{free} free clusters");
        let name = vbdev::create(
            &by_name("lvs_fw1"),
            "thin",
            32,
            true,
            BlobClearMethod::Default,
        )
        .await
        .unwrap();
        let d = bdev::open(&name, true).unwrap();
        let ch = d.get_io_channel().unwrap();
        let lba = |i: u64| i * PER_CLUSTER;
        let ids: Vec<u64> = (0..32).collect();
        let st = write_all(&d, &ch, &ids, lba).await;
        let ok = st.iter().filter(|s| **s == IoStatus::Success).count() as u64;
        assert_eq!(
            ok, free,
            "as many writes land as there were free clusters: {st:?}"
        );
        for (k, &i) in ids.iter().enumerate() {
            let b = d
                .read_blocks_async(&ch, IoBuf::new(BLOCK as usize), lba(i), 1)
                .await
                .unwrap();
            if st[k] == IoStatus::Success {
                assert_eq!(&b[..], &data(i)[..], "write {i} landed");
            } else {
                assert!(b.iter().all(|&x| x == 0), "failed write {i} left nothing");
            }
        }
        drop((d, ch));
        vbdev::delete_lvstore(&by_name("lvs_fw1")).await.unwrap();
    });
}
