//! lvstores made by SPDK v25.09 (tests/fixtures/lvol: 4 KiB and 512 B
//! blocks, thick and thin lvols, a renamed lvol and store, snapshot and
//! clones, a dirty store and what SPDK recovered it to) load here with
//! exactly what their manifests say, and a store made here keeps SPDK's
//! conventions.

use crate::lvol_common::{image, manifest, run, sha256};
use serde_json::Value;
use spdk_io::blob::{LoadKind, RamDev};
use spdk_io::lvol::LvolStore;
use std::collections::BTreeSet;

/// Checks a loaded store against manifest `m` and returns it.
async fn check_against(lvs: &LvolStore<RamDev>, m: &Value) {
    let ms = &m["lvstore"];
    assert_eq!(lvs.name(), ms["name"].as_str().unwrap());
    assert_eq!(lvs.uuid().to_string(), ms["uuid"].as_str().unwrap());
    let sp = lvs.space().await.unwrap();
    assert_eq!(sp.block_size as u64, ms["block_size"].as_u64().unwrap());
    assert_eq!(sp.cluster_size as u64, ms["cluster_size"].as_u64().unwrap());
    assert_eq!(
        sp.total_data_clusters,
        ms["total_data_clusters"].as_u64().unwrap()
    );
    assert_eq!(sp.free_clusters, ms["free_clusters"].as_u64().unwrap());

    let infos = lvs.lvol_infos().await.unwrap();
    let mlvols = m["lvols"].as_array().unwrap();
    assert_eq!(infos.len(), mlvols.len(), "lvol count");
    let name_of = |id: u64| {
        infos
            .iter()
            .find(|(l, _)| l.blob_id == id)
            .map(|(l, _)| l.name.clone())
            .unwrap()
    };
    for ml in mlvols {
        let name = ml["name"].as_str().unwrap();
        let (l, info) = infos
            .iter()
            .find(|(l, _)| l.name == name)
            .unwrap_or_else(|| panic!("lvol {name} missing"));
        let what = format!("{}: lvol {name}", m["name"]);
        assert_eq!(
            l.uuid.unwrap().to_string(),
            ml["uuid"].as_str().unwrap(),
            "{what}"
        );
        assert_eq!(l.unique_id, ml["uuid"].as_str().unwrap(), "{what}");
        assert_eq!(
            format!("{:#x}", l.blob_id),
            ml["blob_id"].as_str().unwrap(),
            "{what}"
        );
        let size = info.num_clusters * sp.cluster_size as u64;
        assert_eq!(size, ml["size_bytes"].as_u64().unwrap(), "{what} size");
        assert_eq!(
            info.thin_provisioned,
            ml["thin_provisioned"].as_bool().unwrap(),
            "{what}"
        );
        assert_eq!(info.read_only, ml["read_only"].as_bool().unwrap(), "{what}");
        assert_eq!(
            info.is_snapshot,
            ml["is_snapshot"].as_bool().unwrap(),
            "{what}"
        );
        assert_eq!(
            info.parent.is_some(),
            ml["is_clone"].as_bool().unwrap(),
            "{what}"
        );
        assert_eq!(
            info.num_allocated_clusters,
            ml["num_allocated_clusters"].as_u64().unwrap(),
            "{what}"
        );
        assert_eq!(
            info.parent.map(name_of),
            ml["base_snapshot"].as_str().map(String::from),
            "{what} parent"
        );
        let clones: BTreeSet<String> = info.clones.iter().map(|&c| name_of(c)).collect();
        let mclones: BTreeSet<String> = ml["clones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(clones, mclones, "{what} clones");
        let data = lvs.read_lvol(name, 0, size as usize).await.unwrap();
        assert_eq!(
            sha256(&data),
            ml["content_sha256"].as_str().unwrap(),
            "{what}: content differs from what SPDK read"
        );
    }
}

fn clean_image_loads_as_its_manifest_says_and_unloads_unchanged(name: &str) {
    let m = manifest(name);
    let img = image(name);
    assert_eq!(
        sha256(&img),
        m["image_sha256"].as_str().unwrap(),
        "fixture {name}"
    );
    let bl = m["lvstore"]["block_size"].as_u64().unwrap() as u32;
    let after = run(async {
        let md = spdk_io::thread::Thread::current().unwrap().handle();
        let dev = RamDev::from_image(img, bl).unwrap();
        let lvs = LvolStore::load(&md, move || Ok(dev)).await.unwrap();
        assert_eq!(lvs.load_kind(), LoadKind::Clean);
        check_against(&lvs, &m).await;
        lvs.unload_dev().await.unwrap().into_image()
    });
    assert_eq!(
        sha256(&after),
        m["image_sha256"].as_str().unwrap(),
        "{name}: a load and a clean unload changed the image (SPDK leaves it byte for byte)"
    );
}

#[test]
fn spdk_s_4k_lvstore_loads_with_every_lvol_as_its_manifest_says() {
    clean_image_loads_as_its_manifest_says_and_unloads_unchanged("lvs-4k");
}

#[test]
fn spdk_s_512_byte_block_lvstore_loads_with_every_lvol_as_its_manifest_says() {
    clean_image_loads_as_its_manifest_says_and_unloads_unchanged("lvs-512");
}

#[test]
fn spdk_s_renamed_lvstore_loads_under_its_new_name() {
    clean_image_loads_as_its_manifest_says_and_unloads_unchanged("lvs-renamed-store");
}

#[test]
fn spdk_s_recovered_image_loads_as_its_manifest_says() {
    clean_image_loads_as_its_manifest_says_and_unloads_unchanged("lvs-dirty-4k.recovered-by-spdk");
}

#[test]
fn a_dirty_spdk_lvstore_recovers_to_what_spdk_recovered_it_to() {
    let m = manifest("lvs-dirty-4k");
    let want = manifest("lvs-dirty-4k.recovered-by-spdk");
    let img = image("lvs-dirty-4k");
    assert_eq!(sha256(&img), m["image_sha256"].as_str().unwrap());
    let after = run(async {
        let md = spdk_io::thread::Thread::current().unwrap().handle();
        let dev = RamDev::from_image(img, 4096).unwrap();
        let lvs = LvolStore::load(&md, move || Ok(dev)).await.unwrap();
        assert_eq!(lvs.load_kind(), LoadKind::Recovered);
        check_against(&lvs, &m).await;
        lvs.unload_dev().await.unwrap().into_image()
    });
    assert_eq!(
        sha256(&after),
        want["image_sha256"].as_str().unwrap(),
        "the recovered image differs from SPDK's recovered image"
    );
}

#[test]
fn a_store_made_here_keeps_spdk_s_conventions() {
    use spdk_io::blob::{BlobClearMethod, Blobstore, LoadOpts};
    use spdk_io::lvol::LvsOpts;
    let (img, lvs_uuid, thick_uuid) = run(async {
        let md = spdk_io::thread::Thread::current().unwrap().handle();
        let mut o = LvsOpts::new("lvs_here");
        o.cluster_sz = 1 << 20;
        let lvs = LvolStore::create(&md, || Ok(RamDev::new(4096, 16384)), &o)
            .await
            .unwrap();
        let thick = lvs
            .create_lvol("thick0", 2 << 20, false, BlobClearMethod::Default)
            .await
            .unwrap();
        lvs.create_lvol("old", 1 << 20, true, BlobClearMethod::Default)
            .await
            .unwrap();
        lvs.rename_lvol("old", "renamed0").await.unwrap();
        let u = lvs.uuid();
        (lvs.unload_dev().await.unwrap(), u, thick.uuid.unwrap())
    });
    let bs = Blobstore::load(img, &LoadOpts::default()).unwrap();
    assert_eq!(&bs.bstype(), b"LVOLSTORE\0\0\0\0\0\0\0");
    // The super blob: "uuid" (36 characters and a NUL), then "name" and a NUL.
    let sb = bs.blob_info(bs.super_blob().unwrap()).unwrap();
    let mut uuid = lvs_uuid.to_string().into_bytes();
    uuid.push(0);
    assert_eq!(
        sb.xattrs,
        vec![
            ("uuid".to_string(), uuid),
            ("name".to_string(), b"lvs_here\0".to_vec())
        ]
    );
    // An lvol: "name" (SPDK's whole 64-byte buffer at create), then "uuid";
    // a renamed one's name is the name and one NUL.
    let mut ids = bs.blob_ids();
    ids.sort_unstable();
    let thick = bs.blob_info(ids[1]).unwrap();
    let mut name = b"thick0".to_vec();
    name.resize(64, 0);
    let mut tu = thick_uuid.to_string().into_bytes();
    tu.push(0);
    assert_eq!(
        thick.xattrs,
        vec![("name".to_string(), name), ("uuid".to_string(), tu)]
    );
    assert!(!thick.thin_provisioned);
    let renamed = bs.blob_info(ids[2]).unwrap();
    assert_eq!(
        renamed.xattrs[0],
        ("name".to_string(), b"renamed0\0".to_vec())
    );
    assert!(renamed.thin_provisioned);
}
