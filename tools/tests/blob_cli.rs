//! `spdk-io blob` end to end on a file bdev from an SPDK JSON config:
//! init, create, import/export round trip, snapshot, clone, xattrs, list
//! in JSON, delete, stats, and clear errors for bad ids and bdev names.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(tag: &str, block_size: u32) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("spdk-io-blob-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::File::create(dir.join("disk.img"))
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        let cfg = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
            {"method": "bdev_aio_create", "params": {"name": "Aio0", "filename": dir.join("disk.img"), "block_size": block_size}}
        ]}]});
        std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
        Fixture { dir }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
            .args([
                "blob",
                "--json",
                self.dir.join("cfg.json").to_str().unwrap(),
                "-b",
                "Aio0",
                "--output-format",
                "json",
            ])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (ok, out, err) = self.run(args);
        assert!(ok, "spdk-io blob {args:?} failed: {err}");
        serde_json::from_str(&out).unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn round_trip(block_size: u32) {
    let f = Fixture::new(&block_size.to_string(), block_size);
    assert_eq!(f.json(&["init"])["free_clusters"], 15);
    let id = f.json(&[
        "create",
        "--thin",
        "--clusters",
        "1",
        "--xattr",
        "name=data",
    ])["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(id, "0x100000000");
    let data: Vec<u8> = (0..2_500_001u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(f.path("in"), &data).unwrap();
    assert_eq!(f.json(&["import", &id, &f.path("in")])["bytes"], 2_500_001);
    f.json(&["export", &id, &f.path("out")]);
    assert!(
        std::fs::read(f.path("out")).unwrap() == data,
        "file changed on its way through the blob"
    );
    let snap = f.json(&["snapshot", &id])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let clone = f.json(&["clone", &snap])["clone"]
        .as_str()
        .unwrap()
        .to_string();
    f.json(&["export", &clone, &f.path("out2")]);
    assert_eq!(
        std::fs::read(f.path("out2")).unwrap().len(),
        3 << 20,
        "a clone exports its whole size"
    );
    assert!(std::fs::read(f.path("out2")).unwrap()[..data.len()] == data[..]);
    f.json(&["xattr", "set", &id, "color", "blue"]);
    let list = f.json(&["list"]);
    let blobs = list["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 3);
    let orig = blobs.iter().find(|b| b["id"] == id.as_str()).unwrap();
    assert_eq!(orig["xattrs"]["color"]["text"], "blue");
    assert_eq!(orig["parent"], snap.as_str());
    let s = blobs.iter().find(|b| b["id"] == snap.as_str()).unwrap();
    assert_eq!(
        (s["is_snapshot"].as_bool(), s["read_only"].as_bool()),
        (Some(true), Some(true))
    );
    f.json(&["xattr", "remove", &id, "color"]);
    f.json(&["delete", &clone]);
    assert_eq!(f.json(&["stats"])["num_blobs"], 2);
    let (ok, out, err) = f.run(&["show", "0x100000099"]);
    assert!(!ok && err.contains("no blob 0x100000099"), "{err}");
    let e: Value = serde_json::from_str(&out).unwrap();
    assert!(e["error"].as_str().unwrap().contains("no blob 0x100000099"));
    f.json(&["set-super", &id]);
    assert_eq!(f.json(&["stats"])["super_blob"], id.as_str());
}

#[test]
fn a_file_round_trips_through_a_blob_on_a_4k_aio_bdev() {
    round_trip(4096);
}

#[test]
fn a_file_round_trips_through_a_blob_on_a_512_aio_bdev() {
    round_trip(512);
}

#[test]
fn unknown_bdevs_and_non_blobstores_are_clear_errors() {
    let f = Fixture::new("errors", 4096);
    let (ok, _, err) = f.run(&["list"]);
    assert!(!ok && err.contains("SPDKBLOB"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args([
            "blob",
            "--json",
            &f.path("cfg.json"),
            "-b",
            "Missing0",
            "list",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no bdev named \"Missing0\"") && err.contains("Aio0"),
        "{err}"
    );
    assert!(Path::new(&f.path("disk.img")).exists());
}
