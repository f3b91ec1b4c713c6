//! `spdk-io blob` on corrupted stores: a sample of the corruption
//! generator's cases (tests/blob/blob_common/corrupt.rs) run through the
//! read-only `list` and the mutating `create`. Neither may crash (exit 101
//! or a signal); `list` must leave the image byte for byte as it was; and a
//! super block whose blob-id mask overlaps the md region is refused by name
//! with the image untouched.

#[path = "../../../tests/blob/blob_common/corrupt.rs"]
#[allow(dead_code)]
mod corrupt;

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/blobstore-images")
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn dir(tag: &str) -> Dir {
    let d = std::env::temp_dir().join(format!("spdk-io-blob-corrupt-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    Dir(d)
}

/// Runs `spdk-io blob <args>` on `img` (a 4 KiB-block file bdev).
fn blob(d: &Path, img: &Path, args: &[&str]) -> std::process::Output {
    let cfg = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
        {"method": "bdev_aio_create", "params": {"name": "Aio0", "filename": img, "block_size": 4096}}
    ]}]});
    std::fs::write(d.join("cfg.json"), cfg.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args([
            "blob",
            "--json",
            d.join("cfg.json").to_str().unwrap(),
            "-b",
            "Aio0",
        ])
        .args(args)
        .output()
        .unwrap()
}

fn crashed(out: &std::process::Output) -> bool {
    !matches!(out.status.code(), Some(0) | Some(1))
}

#[test]
fn a_super_block_whose_blobid_mask_overlaps_the_md_region_is_refused_and_the_image_kept() {
    let d = dir("overlap");
    let mut img = std::fs::read(fixtures().join("blobs-4k.img")).unwrap();
    img[76..80].copy_from_slice(&2u32.to_le_bytes()); // used_blobid_mask_len
    let crc = spdk_io::blob::format::page_crc(img[..4096].try_into().unwrap());
    img[4092..4096].copy_from_slice(&crc.to_le_bytes());
    let path = d.0.join("disk.img");
    std::fs::write(&path, &img).unwrap();
    for cmd in [&["list"][..], &["create"], &["stats"]] {
        let out = blob(&d.0, &path, cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
        assert!(err.contains("used_blobid_mask_len 2"), "{cmd:?}: {err}");
        assert!(
            std::fs::read(&path).unwrap() == img,
            "{cmd:?} wrote to the image"
        );
    }
}

#[test]
fn list_and_create_on_corrupted_images_never_crash_and_list_never_writes() {
    let d = dir("sample");
    let mut cases = 0;
    for name in ["blobs-4k", "snapclone-4k", "multipage-4k", "dirty-4k"] {
        let base = std::fs::read(fixtures().join(format!("{name}.img"))).unwrap();
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(format!("{name}.manifest.json"))).unwrap(),
        )
        .unwrap();
        let all = corrupt::corruptions(&base, &manifest);
        for c in all.iter().step_by(all.len() / 8 + 1) {
            let (page, bytes) = c.page(&base);
            let mut img = base.clone();
            img[page * 4096..(page + 1) * 4096].copy_from_slice(&bytes);
            let path = d.0.join("disk.img");
            std::fs::write(&path, &img).unwrap();
            let out = blob(&d.0, &path, &["list"]);
            assert!(
                !crashed(&out),
                "{name}: {}: list crashed: {:?}",
                c.what,
                out
            );
            assert!(
                std::fs::read(&path).unwrap() == img,
                "{name}: {}: list wrote to the image",
                c.what
            );
            let out = blob(&d.0, &path, &["create", "--clusters", "1"]);
            assert!(
                !crashed(&out),
                "{name}: {}: create crashed: {:?}",
                c.what,
                out
            );
            cases += 1;
        }
    }
    eprintln!("CLI corruption sample: {cases} corrupted images through list and create");
    assert!(cases >= 30);
}
