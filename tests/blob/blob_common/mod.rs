//! Helpers shared by the blobstore integration tests: fixture images,
//! manifests and SPDK's test patterns.
#![allow(dead_code)]

pub mod corrupt;
pub mod powercut;
pub mod powercut_async;

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Every fixture image name.
pub const IMAGES: &[&str] = &[
    "empty-4k",
    "blobs-4k",
    "blobs-512",
    "snapclone-4k",
    "dirty-4k",
    "multipage-4k",
];

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/blobstore-images")
}

pub fn image(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(format!("{name}.img"))).expect("fixture image")
}

pub fn manifest(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture_dir().join(format!("{name}.manifest.json")))
        .expect("manifest");
    serde_json::from_str(&text).expect("manifest is JSON")
}

pub fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn parse_id(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().expect("id string").trim_start_matches("0x"), 16)
        .expect("hex id")
}

/// SPDK's fixture patterns; k counts from the first byte of the write.
pub fn pattern(kind: char, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| match kind {
            'A' => (k % 251) as u8,
            'B' => ((k % 241) as u8) ^ 0xA5,
            'C' => (k % 239) as u8 + 16,
            'D' => 0xFF - (k % 233) as u8,
            _ => panic!("unknown pattern {kind}"),
        })
        .collect()
}
