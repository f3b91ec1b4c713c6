//! The corruption suite: every corruption the generator (blob_common::corrupt)
//! makes of SPDK-made images — every super block field, md page header
//! field, descriptor byte and mask header, each with its crc fixed and torn —
//! run against read-only operations (load read-only, list, show, read every
//! blob, unload) and mutating ones (create and write, snapshot, clone and
//! copy-on-write, xattr, delete, unload, reload). Checked: no panic, no hang
//! (a watchdog aborts a case that stops progressing), no write at all to an
//! image opened read-only, a refused load writes nothing, and a mutating
//! operation writes only into the metadata area or into clusters that were
//! free when the store was loaded.

use crate::blob_common;

use blob_common::corrupt::{corruptions, Corruption, OverlayDev};
use blob_common::{image, manifest};
use spdk_io::blob::{BlobOpts, Blobstore, BsDev, LoadOpts};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const IMAGES: &[(&str, u32)] = &[
    ("blobs-4k", 4096),
    ("snapclone-4k", 4096),
    ("multipage-4k", 4096),
    ("dirty-4k", 4096),
    ("blobs-512", 512),
];

/// Aborts the process if `progress` stops moving for a minute: a hang in
/// the blobstore must fail the suite, not stall it.
fn watchdog(name: &'static str) -> Arc<AtomicU64> {
    let progress = Arc::new(AtomicU64::new(0));
    let p = progress.clone();
    std::thread::spawn(move || {
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_secs(60));
            let now = p.load(Ordering::Relaxed);
            if now == u64::MAX {
                return;
            }
            if now == last {
                eprintln!("{name}: case {now} made no progress for 60 s: hang");
                std::process::abort();
            }
            last = now;
        }
    });
    progress
}

fn cases() -> Vec<(&'static str, u32, Rc<Vec<u8>>, Corruption)> {
    let mut out = Vec::new();
    for &(name, bl) in IMAGES {
        let img = Rc::new(image(name));
        for c in corruptions(&img, &manifest(name)) {
            out.push((name, bl, img.clone(), c));
        }
    }
    out
}

/// Load read-only, look at everything, read every blob, unload.
fn read_only_ops(dev: OverlayDev) -> (OverlayDev, bool, usize) {
    let ro = LoadOpts {
        read_only: true,
        ..Default::default()
    };
    let mut bs = match Blobstore::load(dev, &ro) {
        Ok(bs) => bs,
        Err(e) => {
            let _ = e.to_string();
            // The device went into the failed load; a fresh one shows what it saw.
            return (OverlayDev::new(Rc::new(Vec::new()), 512, &[]), false, 0);
        }
    };
    let unusable: Vec<String> = bs.unusable_blobs().map(|(_, e)| e.to_string()).collect();
    let mut buf = vec![0u8; 64 << 10];
    for id in bs.blob_ids() {
        let _ = bs.blob_info(id);
        let Ok(h) = bs.open_blob(id) else { continue };
        let unit = bs.io_unit_size() as u64;
        let units = buf.len() as u64 / unit;
        let total = bs.num_io_units(&h);
        let mut off = 0;
        while off < total {
            let n = units.min(total - off);
            let _ = bs.read(&h, off, &mut buf[..(n * unit) as usize]);
            off += n.max(1) * 3; // a third of the blob, spread over it
        }
        let _ = bs.close_blob(h);
    }
    let dev = bs.unload().expect("unload of a read-only store");
    (dev, true, unusable.len())
}

#[test]
fn read_only_operations_on_corrupted_images_never_write_panic_or_hang() {
    let progress = watchdog("read-only corruption suite");
    let (mut loaded, mut refused, mut unusable) = (0, 0, 0);
    let mut failures = Vec::new();
    let all = cases();
    for (i, (name, bl, img, c)) in all.iter().enumerate() {
        progress.store(i as u64, Ordering::Relaxed);
        let dev = OverlayDev::new(img.clone(), *bl, &[c.page(img)]);
        match catch_unwind(AssertUnwindSafe(|| read_only_ops(dev))) {
            Err(_) => failures.push(format!("{name}: {}: panicked", c.what)),
            Ok((dev, ok, bad)) => {
                if !dev.writes.is_empty() {
                    failures.push(format!("{name}: {}: wrote {:?}", c.what, dev.writes));
                }
                if ok {
                    loaded += 1;
                    unusable += bad;
                } else {
                    refused += 1;
                }
            }
        }
    }
    progress.store(u64::MAX, Ordering::Relaxed);
    eprintln!(
        "read-only corruption suite: {} cases ({loaded} loaded, {refused} refused, {unusable} unusable blobs reported), {} failures",
        all.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        loaded > 100 && refused > 100,
        "the generator must reach both paths"
    );
}

/// What a mutating run did: writes outside what it owned, and whether the
/// store reloaded.
fn mutating_ops(dev: OverlayDev) -> Result<Vec<String>, String> {
    let mut bs = match Blobstore::load(dev, &LoadOpts::default()) {
        Ok(bs) => bs,
        Err(e) => return Err(e.to_string()),
    };
    let sb = bs.super_block().clone();
    let md_end_bytes = (sb.md_start as u64 + sb.md_len as u64) * 4096;
    let cs = sb.cluster_size as u64;
    let free_at_load: Vec<bool> = (0..bs.total_clusters() as u32)
        .map(|c| !bs.masks().1.get(c))
        .collect();
    let usable_before = bs.blob_ids();
    let unit = bs.io_unit_size() as usize;
    let data = vec![0xa5u8; unit];
    // A new thin blob, written (allocates a free cluster).
    let new = bs
        .create_blob(&BlobOpts {
            num_clusters: 2,
            thin_provision: true,
            ..Default::default()
        })
        .ok();
    if let Some(id) = new {
        if let Ok(h) = bs.open_blob(id) {
            let _ = bs.write(&h, 0, &data);
            let _ = bs.close_blob(h);
        }
    }
    // Snapshot, clone and copy-on-write on the first writable blob.
    if let Some(&first) = usable_before
        .iter()
        .find(|&&id| bs.blob_info(id).is_ok_and(|i| !i.read_only))
    {
        if let Ok(snap) = bs.create_snapshot(first, &[]) {
            if let Ok(clone) = bs.create_clone(snap, &[]) {
                if let Ok(h) = bs.open_blob(clone) {
                    if bs.num_io_units(&h) > 0 {
                        let _ = bs.write(&h, 0, &data);
                    }
                    let _ = bs.close_blob(h);
                }
            }
        }
        if let Ok(h) = bs.open_blob(first) {
            let _ = bs.set_xattr(&h, "hostile", b"yes\0");
            let _ = bs.close_blob(h);
        }
    }
    if let Some(id) = new {
        let _ = bs.delete_blob(id);
    }
    let dev = bs.unload().map_err(|e| format!("unload: {e}"))?;
    let bl = dev.block_len() as u64;
    let mut bad = Vec::new();
    for w in &dev.writes {
        let (start, end) = (w.lba * bl, (w.lba + w.blocks) * bl);
        if end <= md_end_bytes {
            if w.op != "write" {
                bad.push(format!("{} of metadata bytes {start}..{end}", w.op));
            }
            continue;
        }
        if start < md_end_bytes {
            bad.push(format!(
                "{} bytes {start}..{end} straddles the metadata end",
                w.op
            ));
            continue;
        }
        for c in start / cs..end.div_ceil(cs) {
            if !free_at_load.get(c as usize).copied().unwrap_or(false) {
                bad.push(format!(
                    "{} bytes {start}..{end} into cluster {c}, in use at load",
                    w.op
                ));
            }
        }
    }
    let writes = dev.writes.len();
    // What was written must load again, with every blob that was usable still there.
    let bs = Blobstore::load(dev, &LoadOpts::default())
        .map_err(|e| format!("reload after {writes} writes failed: {e}"))?;
    for id in usable_before {
        if bs.blob_info(id).is_err() {
            bad.push(format!("blob {id:#x} was usable and is not after reload"));
        }
    }
    Ok(bad)
}

#[test]
fn mutating_operations_on_corrupted_images_write_only_what_they_own() {
    let progress = watchdog("mutating corruption suite");
    let (mut loaded, mut refused) = (0, 0);
    let mut failures = Vec::new();
    let all = cases();
    for (i, (name, bl, img, c)) in all.iter().enumerate() {
        progress.store(i as u64, Ordering::Relaxed);
        // A refused load must not have written: check it on its own device.
        let dev = OverlayDev::new(img.clone(), *bl, &[c.page(img)]);
        match catch_unwind(AssertUnwindSafe(|| mutating_ops(dev))) {
            Err(_) => failures.push(format!("{name}: {}: panicked", c.what)),
            Ok(Err(e)) if e.starts_with("reload") || e.starts_with("unload") => {
                failures.push(format!("{name}: {}: {e}", c.what))
            }
            Ok(Err(_)) => refused += 1,
            Ok(Ok(bad)) => {
                loaded += 1;
                if !bad.is_empty() {
                    failures.push(format!("{name}: {}: {}", c.what, bad.join("; ")));
                }
            }
        }
    }
    progress.store(u64::MAX, Ordering::Relaxed);
    eprintln!(
        "mutating corruption suite: {} cases ({loaded} loaded and changed, {refused} refused), {} failures",
        all.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
