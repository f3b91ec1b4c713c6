//! Shared by the lvol tests: the SPDK-made fixture images (expanded from
//! their zstd files), their manifests, the fixtures' data pattern, and a
//! thread to run the async lvol calls on.

#![allow(dead_code)]

use serde_json::Value;
use sha2::{Digest, Sha256};
use spdk_io::thread::Thread;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;

/// The fixture folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lvol")
}

/// Expands fixture image `name` (`NAME.img.zst`) into memory.
pub fn image(name: &str) -> Vec<u8> {
    let f = std::fs::File::open(fixtures().join(format!("{name}.img.zst"))).unwrap();
    let mut d = ruzstd::decoding::StreamingDecoder::new(std::io::BufReader::new(f)).unwrap();
    let mut out = Vec::with_capacity(64 << 20);
    d.read_to_end(&mut out).unwrap();
    out
}

/// Fixture manifest `name`.
pub fn manifest(name: &str) -> Value {
    let t = std::fs::read_to_string(fixtures().join(format!("{name}.manifest.json"))).unwrap();
    serde_json::from_str(&t).unwrap()
}

/// Lowercase hex sha256.
pub fn sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The fixtures' self-describing data: each 512-byte sector at lvol byte
/// offset `o` is `[TAG +0x%010x]` repeated and cut at 512 bytes.
pub fn pattern(tag: &str, offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut o = offset;
    while out.len() < len {
        let label = format!("[{tag} +0x{o:010x}]");
        let sector: Vec<u8> = label.bytes().cycle().take(512).collect();
        out.extend_from_slice(&sector);
        o += 512;
    }
    out.truncate(len);
    out
}

/// Lvstore names are unique in a process (as in SPDK): tests that load
/// stores of the same name take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` to completion on a fresh lightweight thread of this OS thread,
/// one test at a time.
pub fn run<F: Future>(f: F) -> F::Output {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let t = Thread::new("lvol-test");
    let r = t.block_on(f).expect("block_on");
    t.exit();
    while !t.is_exited() {
        t.poll(0);
    }
    t.destroy().unwrap();
    r
}
