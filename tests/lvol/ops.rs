//! lvstores and lvols on the blobstore: create / snapshot / clone / resize
//! / rename / inflate / decouple / read-only / delete with the data checked
//! at every step, a restart that brings everything back, and SPDK's error
//! for each bad input with nothing changed on disk.

use crate::lvol_common::{pattern, run, sha256};
use spdk_io::blob::{BlobClearMethod, BlobError, Blobstore, FileDev, LoadOpts, RamDev};
use spdk_io::lvol::{LvolStore, LvsOpts};
use spdk_io::thread::Thread;
use std::sync::Arc;

const MIB: u64 = 1 << 20;

fn opts(name: &str) -> LvsOpts {
    let mut o = LvsOpts::new(name);
    o.cluster_sz = MIB as u32;
    o
}

async fn new_store(name: &str) -> Arc<LvolStore<RamDev>> {
    let md = Thread::current().unwrap().handle();
    let dev = RamDev::new(4096, 64 * MIB / 4096);
    LvolStore::create(&md, move || Ok(dev), &opts(name))
        .await
        .unwrap()
}

async fn reload(lvs: Arc<LvolStore<RamDev>>) -> Arc<LvolStore<RamDev>> {
    let dev = lvs.unload_dev().await.unwrap();
    let md = Thread::current().unwrap().handle();
    LvolStore::load(&md, move || Ok(dev)).await.unwrap()
}

async fn expect(lvs: &LvolStore<RamDev>, name: &str, off: u64, want: &[u8]) {
    let got = lvs.read_lvol(name, off, want.len()).await.unwrap();
    assert!(got == want, "{name} at {off}: data differs");
}

#[test]
fn a_store_with_snapshots_and_clones_keeps_every_lvol_s_data_at_each_step_and_across_a_restart() {
    run(async {
        let lvs = new_store("lvs_ops").await;
        let sp = lvs.space().await.unwrap();
        assert_eq!((sp.total_data_clusters, sp.free_clusters), (63, 63));
        let thick = lvs
            .create_lvol("thick", 3 * MIB, false, BlobClearMethod::Default)
            .await
            .unwrap();
        assert_eq!(lvs.space().await.unwrap().free_clusters, 60);
        lvs.create_lvol("thin", 4 * MIB, true, BlobClearMethod::Default)
            .await
            .unwrap();
        assert_eq!(lvs.space().await.unwrap().free_clusters, 60);

        let a = pattern("thin#1", 0, 8192);
        lvs.write_lvol("thin", 0, a.clone()).await.unwrap();
        let b = pattern("thick#1", MIB - 4096, 8192);
        lvs.write_lvol("thick", MIB - 4096, b.clone())
            .await
            .unwrap();
        expect(&lvs, "thin", 0, &a).await;
        expect(&lvs, "thin", 8192, &[0u8; 4096]).await;
        expect(&lvs, "thick", MIB - 4096, &b).await;

        // Snapshot: the origin becomes a clone of it and reads the same.
        lvs.snapshot("thin", "snap").await.unwrap();
        let info = lvs.lvol_info("thin").await.unwrap();
        let snap = lvs.lvol("snap").unwrap();
        assert_eq!(info.parent, Some(snap.blob_id));
        expect(&lvs, "snap", 0, &a).await;
        expect(&lvs, "thin", 0, &a).await;
        // A write to the origin does not reach the snapshot.
        let c = pattern("thin#2", 4096, 4096);
        lvs.write_lvol("thin", 4096, c.clone()).await.unwrap();
        expect(&lvs, "thin", 4096, &c).await;
        expect(&lvs, "snap", 4096, &a[4096..]).await;

        // A clone of the snapshot sees it, and its own writes.
        lvs.clone_lvol("snap", "clone").await.unwrap();
        expect(&lvs, "clone", 0, &a).await;
        let d = pattern("clone#1", 2 * MIB, 4096);
        lvs.write_lvol("clone", 2 * MIB, d.clone()).await.unwrap();
        expect(&lvs, "clone", 2 * MIB, &d).await;
        expect(&lvs, "snap", 2 * MIB, &[0u8; 4096]).await;
        let si = lvs.lvol_info("snap").await.unwrap();
        assert!(si.is_snapshot && si.read_only);
        assert_eq!(si.clones.len(), 2);

        // Resize (grow thick and thin), rename, read-only.
        lvs.resize("thick", 5 * MIB).await.unwrap();
        assert_eq!(lvs.lvol_info("thick").await.unwrap().num_clusters, 5);
        // 63 - 3 (thick) - 1 (thin) - 1 (thin CoW) - 1 (clone) - 2 (grow).
        assert_eq!(lvs.space().await.unwrap().free_clusters, 55);
        lvs.resize("clone", 6 * MIB).await.unwrap();
        lvs.rename_lvol("thick", "thick_renamed").await.unwrap();
        assert!(lvs.lvol("thick").is_none());
        lvs.set_read_only("thick_renamed").await.unwrap();
        assert!(lvs.lvol_info("thick_renamed").await.unwrap().read_only);
        lvs.rename("lvs_ops2").await.unwrap();

        // Restart: every lvol back with name, UUID, size, parent, data.
        let before = lvs.lvol_infos().await.unwrap();
        let lvs = reload(lvs).await;
        assert_eq!(lvs.name(), "lvs_ops2");
        let after = lvs.lvol_infos().await.unwrap();
        assert_eq!(before.len(), after.len());
        for (l, i) in &before {
            let (l2, i2) = after.iter().find(|(x, _)| x.blob_id == l.blob_id).unwrap();
            assert_eq!(
                (&l.name, l.uuid, &l.unique_id),
                (&l2.name, l2.uuid, &l2.unique_id)
            );
            assert_eq!(
                (i.num_clusters, i.parent, i.read_only),
                (i2.num_clusters, i2.parent, i2.read_only)
            );
        }
        assert_eq!(lvs.lvol("thick_renamed").unwrap().uuid, thick.uuid);
        expect(&lvs, "thin", 0, &a[..4096]).await;
        expect(&lvs, "thin", 4096, &c).await;
        expect(&lvs, "clone", 2 * MIB, &d).await;
        expect(&lvs, "thick_renamed", MIB - 4096, &b).await;

        // Inflate the clone: it owns every cluster and has no parent.
        lvs.inflate("clone").await.unwrap();
        let ci = lvs.lvol_info("clone").await.unwrap();
        assert_eq!((ci.parent, ci.num_allocated_clusters), (None, 6));
        expect(&lvs, "clone", 0, &a).await;
        // Decouple the origin from the snapshot.
        lvs.decouple_parent("thin").await.unwrap();
        assert_eq!(lvs.lvol_info("thin").await.unwrap().parent, None);
        expect(&lvs, "thin", 0, &a[..4096]).await;
        expect(&lvs, "thin", 4096, &c).await;
        // Now the snapshot has no clones and can go.
        lvs.delete_lvol("snap").await.unwrap();
        lvs.delete_lvol("clone").await.unwrap();
        assert!(lvs.lvol("snap").is_none());
        let lvs = reload(lvs).await;
        let names: Vec<String> = lvs.lvols().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["thick_renamed", "thin"]);
        lvs.destroy().await.unwrap();
    });
}

#[test]
fn deleting_a_snapshot_with_one_clone_merges_it_into_the_clone() {
    run(async {
        let lvs = new_store("lvs_merge").await;
        lvs.create_lvol("v", 2 * MIB, true, BlobClearMethod::Default)
            .await
            .unwrap();
        let a = pattern("v#1", 0, 4096);
        lvs.write_lvol("v", 0, a.clone()).await.unwrap();
        lvs.snapshot("v", "s").await.unwrap();
        lvs.delete_lvol("s").await.unwrap();
        assert_eq!(lvs.lvol_info("v").await.unwrap().parent, None);
        expect(&lvs, "v", 0, &a).await;
        lvs.destroy().await.unwrap();
    });
}

#[test]
fn bad_input_gets_spdk_s_error_and_changes_nothing_on_disk() {
    run(async {
        let lvs = new_store("lvs_bad").await;
        let md = Thread::current().unwrap().handle();
        // A second store of the same name.
        let e = LvolStore::create(&md, || Ok(RamDev::new(4096, 4096)), &opts("lvs_bad"))
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST);
        let e = LvolStore::create(&md, || Ok(RamDev::new(4096, 4096)), &opts(""))
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        let mut bad = opts("lvs_bad_cluster");
        bad.cluster_sz = 6000;
        let e = LvolStore::create(&md, || Ok(RamDev::new(4096, 4096)), &bad)
            .await
            .unwrap_err();
        assert_eq!(
            e.errno(),
            libc::EINVAL,
            "cluster size not a multiple of the block size"
        );

        lvs.create_lvol("v", MIB, false, BlobClearMethod::Default)
            .await
            .unwrap();
        let w = pattern("v#1", 0, 4096);
        lvs.write_lvol("v", 0, w.clone()).await.unwrap();
        let free = lvs.space().await.unwrap().free_clusters;
        let dev_before = lvs.lvol_infos().await.unwrap();
        // An lvol name in use.
        let e = lvs
            .create_lvol("v", MIB, true, BlobClearMethod::Default)
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST);
        let e = lvs.snapshot("v", "v").await.unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST);
        // A thick lvol larger than the free space; a thick grow past it.
        let e = lvs
            .create_lvol("big", (free + 1) * MIB, false, BlobClearMethod::Default)
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENOSPC, "{e}");
        let e = lvs.resize("v", (free + 2) * MIB).await.unwrap_err();
        assert_eq!(e.errno(), libc::ENOSPC, "{e}");
        assert_eq!(lvs.space().await.unwrap().free_clusters, free);
        assert_eq!(lvs.lvol_infos().await.unwrap(), dev_before);
        expect(&lvs, "v", 0, &w).await;
        // A thin lvol larger than the store is fine.
        lvs.create_lvol("huge", 1024 * MIB, true, BlobClearMethod::Default)
            .await
            .unwrap();
        // A snapshot with two clones cannot be deleted (-EPERM).
        lvs.snapshot("v", "s").await.unwrap();
        lvs.clone_lvol("s", "c").await.unwrap();
        let e = lvs.delete_lvol("s").await.unwrap_err();
        assert_eq!(e.errno(), libc::EPERM, "{e}");
        assert!(lvs.lvol("s").is_some());
        expect(&lvs, "c", 0, &w).await;
        // Only a read-only lvol can be cloned.
        let e = lvs.clone_lvol("v", "c2").await.unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "{e}");
        assert!(lvs.lvol("c2").is_none());
        // Unknown lvols.
        let e = lvs.resize("nope", MIB).await.unwrap_err();
        assert_eq!(e.errno(), libc::ENODEV);
        lvs.destroy().await.unwrap();
    });
}

#[test]
fn a_store_whose_uuid_xattr_is_corrupt_is_refused_and_left_as_it_was() {
    let img = run(async {
        let lvs = new_store("lvs_corrupt").await;
        lvs.create_lvol("v", MIB, true, BlobClearMethod::Default)
            .await
            .unwrap();
        lvs.unload_dev().await.unwrap()
    });
    // Damage the super blob's uuid xattr through the blobstore (a valid
    // metadata page with a bad value).
    let mut bs = Blobstore::load(img, &LoadOpts::default()).unwrap();
    let sb = bs.super_blob().unwrap();
    let h = bs.open_blob(sb).unwrap();
    bs.set_xattr(&h, "uuid", b"not-a-uuid\0").unwrap();
    bs.close_blob(h).unwrap();
    let img = bs.unload().unwrap().into_image();
    let before = sha256(&img);
    let path =
        std::env::temp_dir().join(format!("spdk-io-lvol-corrupt-{}.img", std::process::id()));
    std::fs::write(&path, &img).unwrap();
    let p2 = path.clone();
    run(async move {
        let md = Thread::current().unwrap().handle();
        let e = LvolStore::load(&md, move || {
            FileDev::open(&p2, 4096).map_err(|source| BlobError::Io {
                op: "open",
                lba: 0,
                blocks: 0,
                source,
            })
        })
        .await
        .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "{e}");
        assert!(e.to_string().contains("uuid"), "{e}");
        // The name is free again: a store by that name can be made.
        let lvs = new_store("lvs_corrupt").await;
        lvs.destroy().await.unwrap();
    });
    let after = sha256(&std::fs::read(&path).unwrap());
    std::fs::remove_file(&path).unwrap();
    assert_eq!(before, after, "a refused load wrote to the device");
}
