//! Compatibility with SPDK: every fixture image made by SPDK v25.09 loads,
//! lists exactly the blobs, flags, parents and xattrs its manifest
//! describes, reads back exactly its data, and survives a load/unload
//! unchanged; a dirty image recovers to what SPDK recovered it to; and
//! stores made here are byte-identical to SPDK's for the same operations.

use crate::blob_common;

use blob_common::*;
use serde_json::Value;
use spdk_io::blob::{BlobOpts, Blobstore, BsOpts, LoadKind, LoadOpts, RamDev};
use std::collections::BTreeMap;

fn load(name: &str) -> (Blobstore<RamDev>, Value) {
    let m = manifest(name);
    let bl = m["bdev"]["block_size"].as_u64().unwrap() as u32;
    let dev = RamDev::from_image(image(name), bl).unwrap();
    (Blobstore::load(dev, &LoadOpts::default()).unwrap(), m)
}

fn check_image(name: &str) {
    let (mut bs, m) = load(name);
    let sb = &m["superblock"];
    let ours = bs.super_block();
    assert_eq!(
        ours.cluster_size as u64,
        sb["cluster_size"].as_u64().unwrap(),
        "{name}"
    );
    assert_eq!(ours.md_start as u64, sb["md_start"].as_u64().unwrap());
    assert_eq!(ours.md_len as u64, sb["md_len"].as_u64().unwrap());
    assert_eq!(
        ours.io_unit_size as u64,
        sb["io_unit_size"].as_u64().unwrap()
    );
    assert_eq!(
        bs.super_blob(),
        m["super_blob"].as_str().map(|_| parse_id(&m["super_blob"])),
        "{name}: super blob"
    );
    let dirty = sb["clean"].as_u64() == Some(0);
    assert_eq!(
        bs.load_kind(),
        if dirty {
            LoadKind::Recovered
        } else {
            LoadKind::Clean
        }
    );
    assert_eq!(
        bs.free_cluster_count(),
        m["free_clusters_reported_by_spdk"].as_u64().unwrap(),
        "{name}: free clusters"
    );
    if !dirty {
        let (pages, clusters, ids) = bs.masks();
        for (mask, key) in [
            (pages, "used_md_page_mask"),
            (clusters, "used_cluster_mask"),
            (ids, "used_blobid_mask"),
        ] {
            let want: Vec<u32> = m["masks"][key]["set_bits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            assert_eq!(mask.iter_set().collect::<Vec<_>>(), want, "{name}: {key}");
        }
    }
    let blobs = m["blobs"].as_array().unwrap();
    let want_ids: Vec<u64> = blobs.iter().map(|b| parse_id(&b["id"])).collect();
    let mut sorted = want_ids.clone();
    sorted.sort();
    assert_eq!(bs.blob_ids(), sorted, "{name}: blob ids");
    for b in blobs {
        let id = parse_id(&b["id"]);
        let info = bs.blob_info(id).unwrap();
        assert_eq!(
            info.num_clusters,
            b["num_clusters"].as_u64().unwrap(),
            "{name} {id:#x}"
        );
        assert_eq!(
            info.num_allocated_clusters,
            b["num_allocated_clusters"].as_u64().unwrap()
        );
        assert_eq!(
            info.thin_provisioned,
            b["thin_provisioned"].as_bool().unwrap()
        );
        assert_eq!(info.read_only, b["read_only"].as_bool().unwrap());
        assert_eq!(info.is_snapshot, b["is_snapshot"].as_bool().unwrap());
        assert_eq!(info.parent.is_some(), b["is_clone"].as_bool().unwrap());
        assert_eq!(
            info.parent,
            b["parent_snapshot"]
                .as_str()
                .map(|_| parse_id(&b["parent_snapshot"]))
        );
        let clones: Vec<u64> = b["clones"]
            .as_array()
            .unwrap()
            .iter()
            .map(parse_id)
            .collect();
        let mut got = info.clones.clone();
        got.sort();
        assert_eq!(got, clones);
        let f = &b["flags"];
        assert_eq!(
            info.flags,
            (
                f["invalid"].as_u64().unwrap(),
                f["data_ro"].as_u64().unwrap(),
                f["md_ro"].as_u64().unwrap()
            )
        );
        for (key, list) in [
            ("xattrs_hex", &info.xattrs),
            ("xattrs_internal_hex", &info.xattrs_internal),
        ] {
            let want: BTreeMap<String, Vec<u8>> = b[key]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), hex(v.as_str().unwrap())))
                .collect();
            let got: BTreeMap<String, Vec<u8>> = list.iter().cloned().collect();
            assert_eq!(got, want, "{name} {id:#x} {key}");
        }
        // Data, whole blob and cluster by cluster.
        let blob = bs.open_blob(id).unwrap();
        assert_eq!(
            bs.get_xattr(&blob, "SNAP"),
            None,
            "internal xattrs are hidden"
        );
        let size = b["size_bytes"].as_u64().unwrap() as usize;
        let mut data = vec![0u8; size];
        bs.read(&blob, 0, &mut data).unwrap();
        assert_eq!(
            sha256_hex(&data),
            b["logical_sha256_full_blob"].as_str().unwrap(),
            "{name} {id:#x} data"
        );
        let cs = bs.cluster_size() as usize;
        for c in b["clusters"].as_array().unwrap() {
            let i = c["index"].as_u64().unwrap() as usize;
            assert_eq!(
                sha256_hex(&data[i * cs..(i + 1) * cs]),
                c["logical_sha256"].as_str().unwrap()
            );
        }
        bs.close_blob(blob).unwrap();
    }
    // A load + unload leaves an SPDK image as SPDK would: clean images
    // unchanged, the dirty one exactly as SPDK recovered it.
    let after = bs.unload().unwrap().into_image();
    let want = if dirty {
        std::fs::read(fixture_dir().join("dirty-4k.recovered-by-spdk.img")).unwrap()
    } else {
        image(name)
    };
    assert!(
        after == want,
        "{name}: image after load+unload differs from SPDK's"
    );
}

#[test]
fn empty_4k_loads_with_no_blobs() {
    check_image("empty-4k");
}

#[test]
fn blobs_4k_lists_xattrs_thin_blob_and_data() {
    check_image("blobs-4k");
}

#[test]
fn blobs_512_uses_512_byte_io_units() {
    check_image("blobs-512");
}

#[test]
fn snapclone_4k_reads_through_snapshot_and_copy_on_write() {
    check_image("snapclone-4k");
}

#[test]
fn dirty_4k_recovers_to_spdk_recovered_image() {
    check_image("dirty-4k");
}

#[test]
fn multipage_4k_follows_the_md_page_chain() {
    check_image("multipage-4k");
}

#[test]
fn every_fixture_image_is_covered() {
    let mut found: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".manifest.json").map(str::to_string))
        .collect();
    found.sort();
    let mut known: Vec<&str> = IMAGES.to_vec();
    known.sort();
    assert_eq!(found, known);
}

fn xattr(name: &str, v: &[u8]) -> (String, Vec<u8>) {
    (name.to_string(), v.to_vec())
}

#[test]
fn fresh_init_is_byte_identical_to_spdk_empty_image() {
    let bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let img = bs.unload().unwrap().into_image();
    assert!(
        img == image("empty-4k"),
        "init + unload differs from SPDK's empty-4k.img"
    );
}

fn reproduce_blobs(block_len: u32) -> Vec<u8> {
    let mut bs = Blobstore::init(
        RamDev::new(block_len, (16 << 20) / block_len as u64),
        &BsOpts::default(),
    )
    .unwrap();
    let unit = block_len as u64;
    let a = bs
        .create_blob(&BlobOpts {
            num_clusters: 2,
            xattrs: vec![
                xattr("name", b"alpha\0"),
                xattr("bin", &hex("000102fffe807f0a00deadbeef")),
            ],
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(a).unwrap();
    bs.write(&h, 0, &pattern('A', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let b = bs
        .create_blob(&BlobOpts {
            num_clusters: 8,
            thin_provision: true,
            xattrs: vec![xattr("name", b"beta\0")],
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(b).unwrap();
    bs.write(&h, (3 << 20) / unit, &pattern('B', 1 << 20))
        .unwrap();
    bs.close_blob(h).unwrap();
    bs.create_blob(&BlobOpts {
        xattrs: vec![xattr("name", b"gamma\0")],
        ..Default::default()
    })
    .unwrap();
    bs.set_super_blob(Some(a)).unwrap();
    bs.unload().unwrap().into_image()
}

#[test]
fn blobs_scenario_made_here_is_byte_identical_to_spdk_4k_and_512() {
    assert!(
        reproduce_blobs(4096) == image("blobs-4k"),
        "differs from blobs-4k.img"
    );
    assert!(
        reproduce_blobs(512) == image("blobs-512"),
        "differs from blobs-512.img"
    );
}

#[test]
fn snapclone_scenario_made_here_is_byte_identical_to_spdk() {
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let orig = bs
        .create_blob(&BlobOpts {
            num_clusters: 4,
            xattrs: vec![xattr("name", b"orig\0")],
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(orig).unwrap();
    bs.write(&h, 0, &pattern('A', 1 << 20)).unwrap();
    bs.write(&h, 256, &pattern('C', 1 << 20)).unwrap();
    bs.close_blob(h).unwrap();
    let snap = bs
        .create_snapshot(orig, &[xattr("name", b"snap\0")])
        .unwrap();
    let clone = bs.create_clone(snap, &[xattr("name", b"clone\0")]).unwrap();
    let h = bs.open_blob(clone).unwrap();
    bs.write(&h, 0, &pattern('D', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let img = bs.unload().unwrap().into_image();
    assert!(
        img == image("snapclone-4k"),
        "differs from snapclone-4k.img"
    );
}

#[test]
fn multipage_scenario_made_here_is_byte_identical_to_spdk() {
    let m = manifest("multipage-4k");
    let x = &m["blobs"][0]["xattrs_hex"];
    let xs = ["name", "big1", "big2", "big3"]
        .map(|n| xattr(n, &hex(x[n].as_str().unwrap())))
        .to_vec();
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 1,
            xattrs: xs,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 0, &pattern('D', 1 << 20)).unwrap();
    bs.close_blob(h).unwrap();
    let img = bs.unload().unwrap().into_image();
    assert!(
        img == image("multipage-4k"),
        "differs from multipage-4k.img"
    );
}
