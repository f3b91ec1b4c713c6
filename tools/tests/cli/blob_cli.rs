//! `spdk-io blob` end to end on a file bdev from an SPDK JSON config:
//! init, create, import/export round trip, snapshot, clone, xattrs, list
//! in JSON, delete, stats, and clear errors for bad ids and bdev names;
//! one process per image, read-only commands on read-only media, bounded
//! memory for huge blobs, unusable blobs listed with the reason.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Fixture {
    dir: PathBuf,
}

/// A finished command's success, stdout and stderr.
fn outcome(out: std::process::Output) -> (bool, String, String) {
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

impl Fixture {
    fn new(tag: &str, block_size: u32) -> Fixture {
        Self::with_image(tag, block_size, None, false)
    }

    /// A fixture on a copy of `image` (or a blank 16 MiB file), its bdev
    /// read-only when `readonly`.
    fn with_image(tag: &str, block_size: u32, image: Option<&str>, readonly: bool) -> Fixture {
        let dir =
            std::env::temp_dir().join(format!("spdk-io-blob-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        match image {
            Some(name) => {
                let src = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../tests/fixtures/blobstore-images")
                    .join(format!("{name}.img"));
                std::fs::copy(src, dir.join("disk.img")).unwrap();
            }
            None => std::fs::File::create(dir.join("disk.img"))
                .unwrap()
                .set_len(16 << 20)
                .unwrap(),
        }
        let cfg = serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
            {"method": "bdev_aio_create", "params": {"name": "Aio0", "filename": dir.join("disk.img"),
                "block_size": block_size, "readonly": readonly}}
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
        outcome(out)
    }

    fn run_text(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
            .args(["blob", "--json", &self.path("cfg.json"), "-b", "Aio0"])
            .args(args)
            .output()
            .unwrap();
        outcome(out)
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
    let xattrs = f.json(&["list"])["blobs"][0]["xattrs"].clone();
    assert_eq!(
        xattrs.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["name"],
        "import adds no user-visible xattr"
    );
    assert_eq!(f.json(&["export", &id, &f.path("out")])["bytes"], 3 << 20);
    let out = std::fs::read(f.path("out")).unwrap();
    assert!(
        out[..data.len()] == data[..] && out[data.len()..].iter().all(|&b| b == 0),
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

fn id_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_string()
}

#[test]
fn an_image_held_by_another_process_is_refused_naming_it_and_left_intact() {
    let f = Fixture::new("lock", 4096);
    f.json(&["init"]);
    let id = id_of(&f.json(&["create", "--clusters", "1"]), "id");
    std::fs::write(f.path("in"), vec![7u8; 300_000]).unwrap();
    let before = std::fs::read(f.path("disk.img")).unwrap();
    let held = spdk_io::blob::FileDev::open(Path::new(&f.path("disk.img")), 4096).unwrap();
    let (ok, _, err) = f.run(&["import", &id, &f.path("in")]);
    assert!(!ok, "a second writer was let in");
    assert!(
        err.contains(&f.path("disk.img"))
            && err.contains(&format!("process {}", std::process::id())),
        "{err}"
    );
    assert!(std::fs::read(f.path("disk.img")).unwrap() == before);
    drop(held);
    f.json(&["import", &id, &f.path("in")]);
}

#[test]
fn concurrent_imports_on_one_image_never_both_write_it() {
    let f = Fixture::new("race", 4096);
    f.json(&["init"]);
    let ids: Vec<String> = (0..2)
        .map(|_| id_of(&f.json(&["create", "--clusters", "4", "--thin"]), "id"))
        .collect();
    std::fs::write(f.path("in"), vec![0x3cu8; 3 << 20]).unwrap();
    let runs: Vec<_> = ids
        .iter()
        .map(|id| {
            let f = &f;
            let id = id.clone();
            std::process::Command::new(env!("CARGO_BIN_EXE_spdk-io"))
                .args(["blob", "--json", &f.path("cfg.json"), "-b", "Aio0"])
                .args(["import", &id, &f.path("in")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut imported = Vec::new();
    for (child, id) in runs.into_iter().zip(&ids) {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            imported.push(id.clone());
        } else {
            assert!(err.contains("in use"), "failed for another reason: {err}");
        }
    }
    assert!(!imported.is_empty(), "one of the imports must succeed");
    let list = f.json(&["list"]);
    assert_eq!(list["unusable"], serde_json::json!([]), "{list}");
    for id in &imported {
        f.json(&["export", id, &f.path("out")]);
        assert!(std::fs::read(f.path("out")).unwrap()[..3 << 20] == vec![0x3cu8; 3 << 20][..]);
    }
}

#[test]
fn read_only_commands_succeed_on_a_read_only_bdev_and_write_nothing() {
    let f = Fixture::with_image("ro", 4096, Some("snapclone-4k"), true);
    let before = std::fs::read(f.path("disk.img")).unwrap();
    let list = f.json(&["list"]);
    let ids: Vec<String> = list["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| id_of(b, "id"))
        .collect();
    assert_eq!(ids.len(), 3);
    f.json(&["stats"]);
    for id in &ids {
        f.json(&["show", id]);
        f.json(&["export", id, &f.path("out")]);
    }
    let (ok, _, err) = f.run(&["create"]);
    assert!(!ok && err.contains("read-only"), "{err}");
    assert!(std::fs::read(f.path("disk.img")).unwrap() == before);
}

#[test]
fn a_clone_exports_its_snapshot_data_below_it() {
    let f = Fixture::with_image("clone", 4096, Some("snapclone-4k"), false);
    let list = f.json(&["list"]);
    let blobs = list["blobs"].as_array().unwrap();
    let clone = blobs
        .iter()
        .find(|b| {
            b["is_clone"] == true && b["is_snapshot"] == false && b["num_allocated_clusters"] == 1
        })
        .expect("the clone of snapclone-4k");
    let snap = blobs
        .iter()
        .find(|b| b["is_snapshot"] == true)
        .expect("the snapshot");
    // An import into the clone changes its first 4 KiB only.
    std::fs::write(f.path("in"), vec![0xeeu8; 4096]).unwrap();
    f.json(&["import", &id_of(clone, "id"), &f.path("in")]);
    f.json(&["export", &id_of(clone, "id"), &f.path("clone")]);
    f.json(&["export", &id_of(snap, "id"), &f.path("snap")]);
    let (c, s) = (
        std::fs::read(f.path("clone")).unwrap(),
        std::fs::read(f.path("snap")).unwrap(),
    );
    assert_eq!(c.len(), 4 << 20);
    assert_eq!(c.len(), s.len());
    // The clone's first 4 KiB are its own; the rest is the snapshot's.
    assert!(c[..4096] == [0xeeu8; 4096][..]);
    assert!(
        c[4096..] == s[4096..],
        "snapshot data below the clone is exported"
    );
    assert!(s[1 << 20..(1 << 20) + 4096].iter().any(|&b| b != 0));
}

#[test]
fn a_huge_thin_blob_exports_in_bounded_memory() {
    let f = Fixture::new("huge", 4096);
    f.json(&["init"]);
    let id = id_of(&f.json(&["create", "--clusters", "100000", "--thin"]), "id");
    // Under a 1 GiB address-space limit: holding the blob (100 GB) is impossible.
    let cmd = format!(
        "ulimit -v 1000000 && exec '{}' blob --json '{}' -b Aio0 export {id} '{}'",
        env!("CARGO_BIN_EXE_spdk-io"),
        f.path("cfg.json"),
        f.path("out")
    );
    let out = Command::new("sh").args(["-c", &cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(f.path("out")).unwrap();
    assert_eq!(meta.len(), 100_000 << 20);
    use std::os::unix::fs::MetadataExt;
    assert!(meta.blocks() < 1024, "a thin blob exports as holes");
}

#[test]
fn list_and_stats_show_blobs_with_corrupt_metadata_as_unusable_with_the_reason() {
    let f = Fixture::with_image("corrupt", 4096, Some("blobs-4k"), false);
    // Flip a byte of blob 0x100000002's root page (md page 2, device page 6).
    let mut img = std::fs::read(f.path("disk.img")).unwrap();
    img[6 * 4096 + 100] ^= 0x55;
    std::fs::write(f.path("disk.img"), &img).unwrap();
    let list = f.json(&["list"]);
    assert_eq!(list["blobs"].as_array().unwrap().len(), 2);
    let bad = &list["unusable"][0];
    assert_eq!(bad["id"], "0x100000002");
    assert!(bad["reason"].as_str().unwrap().contains("crc"), "{bad}");
    let stats = f.json(&["stats"]);
    assert_eq!(stats["unusable_blobs"][0]["id"], "0x100000002");
    let (ok, _, err) = f.run(&["show", "0x100000002"]);
    assert!(!ok && err.contains("crc"), "{err}");
    assert_eq!(err.matches("metadata is corrupt").count(), 1, "{err}");
    let (ok, text, _) = Fixture::run_text(&f, &["list"]);
    assert!(
        ok && text.contains("0x100000002") && text.contains("UNUSABLE"),
        "{text}"
    );
}
