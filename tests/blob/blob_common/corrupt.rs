//! A corruption generator for blobstore images and a device that records
//! every write, for the corruption suite (tests/blob/blob_corrupt.rs).
//!
//! The generator walks the structures an SPDK-made image's manifest
//! describes — every super block field, every md page header field, every
//! byte of every descriptor, the mask headers — and yields, per place, a
//! handful of hostile values, each with the page's crc fixed (the parsers
//! must judge the content) and torn (the crc left stale, as a half-written
//! page leaves it).

use serde_json::Value;
use spdk_io::blob::format::{page_crc, PAGE_SIZE};
use spdk_io::blob::BsDev;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;

/// One corruption: bytes to put at a device byte offset.
#[derive(Debug, Clone)]
pub struct Corruption {
    /// What is corrupted, for failure messages.
    pub what: String,
    /// Device byte offset.
    pub at: usize,
    /// The bytes written there.
    pub bytes: Vec<u8>,
    /// Whether the page's crc is recomputed (false: torn).
    pub fix_crc: bool,
    /// Whether the page carries a crc at its end (not mask pages).
    pub has_crc: bool,
}

impl Corruption {
    /// Applies to a copy of the pages it touches; returns (page index, page).
    pub fn page(&self, image: &[u8]) -> (usize, Vec<u8>) {
        let page = self.at / PAGE_SIZE;
        let mut p = image[page * PAGE_SIZE..(page + 1) * PAGE_SIZE].to_vec();
        let off = self.at % PAGE_SIZE;
        let end = (off + self.bytes.len()).min(PAGE_SIZE);
        p[off..end].copy_from_slice(&self.bytes[..end - off]);
        if self.has_crc && self.fix_crc {
            let arr: &mut [u8; PAGE_SIZE] = (&mut p[..]).try_into().expect("a page");
            let crc = page_crc(arr);
            p[PAGE_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
        }
        (page, p)
    }
}

fn le(image: &[u8], at: usize, width: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(&image[at..at + width]);
    u64::from_le_bytes(b)
}

/// Hostile values for an integer field holding `orig`.
fn values(orig: u64, width: usize) -> Vec<u64> {
    let max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    };
    let mut v = vec![
        0,
        1,
        orig.wrapping_sub(1) & max,
        orig.wrapping_add(1) & max,
        orig.wrapping_mul(2) & max,
        max,
        (max >> 1) + 1,
    ];
    if width >= 2 {
        v.push(257);
    }
    v.sort_unstable();
    v.dedup();
    v.retain(|&x| x != orig);
    v
}

fn push_int(out: &mut Vec<Corruption>, image: &[u8], what: &str, at: usize, width: usize) {
    let orig = le(image, at, width);
    for (i, v) in values(orig, width).into_iter().enumerate() {
        for fix_crc in [true, false] {
            // Torn variants for a few values only: the crc check refuses them all alike.
            if !fix_crc && i % 4 != 0 {
                continue;
            }
            out.push(Corruption {
                what: format!(
                    "{what} = {v:#x} (was {orig:#x}), crc {}",
                    if fix_crc { "fixed" } else { "torn" }
                ),
                at,
                bytes: v.to_le_bytes()[..width].to_vec(),
                fix_crc,
                has_crc: true,
            });
        }
    }
}

/// Every corruption of `image` the generator knows, from its manifest.
pub fn corruptions(image: &[u8], manifest: &Value) -> Vec<Corruption> {
    let mut out = Vec::new();
    let sb = &manifest["superblock"];
    for (field, off) in sb["field_byte_offsets"].as_object().expect("offsets") {
        let off = off.as_u64().expect("offset") as usize;
        let width = match field.as_str() {
            "super_blob" | "size" => 8,
            "signature" => 8,
            "bstype" => 16,
            _ => 4,
        };
        if width == 16 {
            out.push(Corruption {
                what: "bstype = \"hostile\"".into(),
                at: off,
                bytes: b"hostile-bstype!!".to_vec(),
                fix_crc: true,
                has_crc: true,
            });
            continue;
        }
        push_int(&mut out, image, &format!("super block {field}"), off, width);
    }
    let md_start = sb["md_start"].as_u64().expect("md_start") as usize;
    for page in manifest["md_pages_decoded"].as_array().expect("md pages") {
        let base = page["byte_offset"].as_u64().expect("byte_offset") as usize;
        let idx = page["md_page_index"].as_u64().unwrap_or(0);
        assert_eq!(base / PAGE_SIZE, md_start + idx as usize);
        for (name, off, width) in [
            ("id", 0, 8),
            ("sequence_num", 8, 4),
            ("reserved", 12, 4),
            ("next", 4088, 4),
        ] {
            push_int(
                &mut out,
                image,
                &format!("md page {idx} {name}"),
                base + off,
                width,
            );
        }
        for (d, desc) in page["descriptors"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let off = base + desc["offset_in_page"].as_u64().expect("offset") as usize;
            let len = desc["length"].as_u64().expect("length") as usize;
            let what = format!("md page {idx} descriptor {d} ({})", desc["kind"]);
            push_int(&mut out, image, &format!("{what} type"), off, 1);
            push_int(&mut out, image, &format!("{what} length"), off + 1, 4);
            // Every byte of a short body (a long xattr value: its head and
            // tail), one hostile value each, and a u32 at every 4th byte.
            let body = (0..len).filter(|&b| b < 40 || b + 8 >= len);
            for b in body {
                let at = off + 5 + b;
                let orig = image[at];
                let v = [0u8, 0xff, orig ^ 0x80][b % 3];
                if v != orig {
                    out.push(Corruption {
                        what: format!("{what} body byte {b} = {v:#x} (was {orig:#x})"),
                        at,
                        bytes: vec![v],
                        fix_crc: true,
                        has_crc: true,
                    });
                }
                if b % 4 == 0 && b + 4 <= len {
                    let v = [1u32, 0xffff_ffff, le(image, at, 4) as u32 + 1][(b / 4) % 3];
                    out.push(Corruption {
                        what: format!("{what} body u32 at {b} = {v:#x}"),
                        at,
                        bytes: v.to_le_bytes().to_vec(),
                        fix_crc: true,
                        has_crc: true,
                    });
                }
            }
        }
    }
    for (name, start) in [
        ("used_page_mask", "used_page_mask_start"),
        ("used_cluster_mask", "used_cluster_mask_start"),
        ("used_blobid_mask", "used_blobid_mask_start"),
    ] {
        let at = sb[start].as_u64().expect("mask start") as usize * PAGE_SIZE;
        for (what, off, bytes) in [
            ("type", 0, vec![7u8]),
            ("length", 1, 0u32.to_le_bytes().to_vec()),
            ("length", 1, 0xffff_ffffu32.to_le_bytes().to_vec()),
            ("length", 1, 3u32.to_le_bytes().to_vec()),
            ("bits", 5, vec![0u8; 4]),
            ("bits", 5, vec![0xffu8; 4]),
        ] {
            out.push(Corruption {
                what: format!("{name} {what} = {bytes:02x?}"),
                at: at + off,
                bytes,
                fix_crc: false,
                has_crc: false,
            });
        }
    }
    out
}

/// One recorded device write (write, unmap or write_zeroes).
#[derive(Debug, Clone)]
pub struct Write {
    /// read / write / unmap / write_zeroes.
    pub op: &'static str,
    /// First block.
    pub lba: u64,
    /// Blocks.
    pub blocks: u64,
}

/// A device over a shared base image with a private overlay of changed
/// blocks (no copy of the image per case), recording every write.
pub struct OverlayDev {
    base: Rc<Vec<u8>>,
    block_len: u32,
    overlay: HashMap<u64, Vec<u8>>,
    /// Every write, unmap and write_zeroes, in order.
    pub writes: Vec<Write>,
}

impl OverlayDev {
    /// A device showing `base` with `pages` (page index, bytes) on top.
    pub fn new(base: Rc<Vec<u8>>, block_len: u32, pages: &[(usize, Vec<u8>)]) -> OverlayDev {
        let mut d = OverlayDev {
            base,
            block_len,
            overlay: HashMap::new(),
            writes: Vec::new(),
        };
        for (page, bytes) in pages {
            let lba = (page * PAGE_SIZE) as u64 / block_len as u64;
            d.put(lba, bytes);
        }
        d
    }

    fn put(&mut self, lba: u64, buf: &[u8]) {
        for (i, b) in buf.chunks(self.block_len as usize).enumerate() {
            self.overlay.insert(lba + i as u64, b.to_vec());
        }
    }

    fn check(&self, lba: u64, bytes: u64) -> io::Result<()> {
        let bl = self.block_len as u64;
        if bytes % bl != 0
            || lba
                .checked_add(bytes / bl)
                .map_or(true, |e| e > self.block_count())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad I/O {lba}+{bytes}"),
            ));
        }
        Ok(())
    }

    fn record(&mut self, op: &'static str, lba: u64, blocks: u64) -> io::Result<()> {
        self.check(lba, blocks * self.block_len as u64)?;
        self.writes.push(Write { op, lba, blocks });
        Ok(())
    }
}

impl BsDev for OverlayDev {
    fn block_len(&self) -> u32 {
        self.block_len
    }
    fn block_count(&self) -> u64 {
        self.base.len() as u64 / self.block_len as u64
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        self.check(lba, buf.len() as u64)?;
        let bl = self.block_len as usize;
        for (i, b) in buf.chunks_mut(bl).enumerate() {
            let n = lba + i as u64;
            match self.overlay.get(&n) {
                Some(o) => b.copy_from_slice(o),
                None => b.copy_from_slice(&self.base[n as usize * bl..(n as usize + 1) * bl]),
            }
        }
        Ok(())
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        self.record("write", lba, buf.len() as u64 / self.block_len as u64)?;
        self.put(lba, buf);
        Ok(())
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        self.write_zeroes(lba, blocks)?;
        self.writes.last_mut().expect("recorded").op = "unmap";
        Ok(())
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        self.record("write_zeroes", lba, blocks)?;
        let zero = vec![0u8; self.block_len as usize];
        for n in lba..lba + blocks {
            self.overlay.insert(n, zero.clone());
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
