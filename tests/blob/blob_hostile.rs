//! Hostile stores: a super block whose regions overlap is refused before
//! anything is written; a clean, unchanged store unloads without a write; a
//! store opened read-only never writes; the metadata clusters are never
//! handed to a blob, whatever the used-cluster mask says.

use crate::blob_common;

use blob_common::*;
use spdk_io::blob::{BlobError, BlobOpts, Blobstore, BsDev, LoadOpts, PowerCutDev, RamDev};
use std::io;

/// Sets super block field at byte `off` (u32) and fixes the crc.
fn patch_super(img: &mut [u8], off: usize, value: u32) {
    img[off..off + 4].copy_from_slice(&value.to_le_bytes());
    let crc = crc32c::crc32c(&img[..4092]);
    img[4092..4096].copy_from_slice(&crc.to_le_bytes());
}

fn counting(img: Vec<u8>, bl: u32) -> PowerCutDev {
    PowerCutDev::new(RamDev::from_image(img, bl).unwrap(), None, false)
}

#[test]
fn a_store_whose_blobid_mask_overlaps_the_md_region_is_refused_naming_the_field() {
    let mut img = image("blobs-4k");
    patch_super(&mut img, 76, 2); // used_blobid_mask_len
    let before = img.clone();
    let dev = RamDev::from_image(img, 4096).unwrap();
    let e = Blobstore::load(dev, &LoadOpts::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("used_blobid_mask_len 2"), "{e}");
    assert!(e.contains("overlaps the md region"), "{e}");
    assert_eq!(image("blobs-4k").len(), before.len());
}

#[test]
fn stores_whose_masks_reach_into_other_regions_or_the_data_clusters_are_refused() {
    for (off, value, field) in [
        (36, 4000, "used_page_mask_len 4000"),
        (32, 257, "used_page_mask_start 257"),
        (40, 3, "used_cluster_mask_start 3"),
        (48, 2, "md_start 2"),
        (44, 30, "used_cluster_mask_len 30"),
    ] {
        let mut img = image("blobs-4k");
        patch_super(&mut img, off, value);
        let mut dev = counting(img, 4096);
        dev = match Blobstore::load(dev, &LoadOpts::default()) {
            Ok(_) => panic!("{field}: accepted"),
            Err(e) => {
                let e = e.to_string();
                assert!(e.contains(field), "{field}: {e}");
                counting(image("blobs-4k"), 4096)
            }
        };
        assert_eq!(dev.writes(), 0);
    }
}

#[test]
fn a_clean_store_loaded_and_unloaded_without_changes_is_not_written() {
    for name in ["blobs-4k", "snapclone-4k", "multipage-4k", "blobs-512"] {
        let bl = if name.ends_with("512") { 512 } else { 4096 };
        let bs = Blobstore::load(counting(image(name), bl), &LoadOpts::default()).unwrap();
        for id in bs.blob_ids() {
            bs.blob_info(id).unwrap();
        }
        let dev = bs.unload().unwrap();
        assert_eq!(
            dev.writes(),
            0,
            "{name}: unload of an unchanged store wrote"
        );
        assert_eq!(dev.into_inner().into_image(), image(name), "{name}");
    }
}

#[test]
fn a_store_opened_read_only_never_writes_and_refuses_changes() {
    let ro = LoadOpts {
        read_only: true,
        ..Default::default()
    };
    // A dirty store is recovered in memory only.
    let mut bs = Blobstore::load(counting(image("dirty-4k"), 4096), &ro).unwrap();
    let reference = Blobstore::load(
        RamDev::from_image(image("dirty-4k.recovered-by-spdk"), 4096).unwrap(),
        &LoadOpts::default(),
    )
    .unwrap();
    assert_eq!(bs.blob_ids(), reference.blob_ids());
    let id = bs.blob_ids()[0];
    let h = bs.open_blob(id).unwrap();
    let mut buf = vec![0u8; 4096];
    bs.read(&h, 0, &mut buf).unwrap();
    assert!(matches!(
        bs.write(&h, 0, &buf),
        Err(BlobError::StoreReadOnly)
    ));
    assert!(matches!(
        bs.set_xattr(&h, "x", b"y"),
        Err(BlobError::StoreReadOnly)
    ));
    bs.close_blob(h).unwrap();
    assert!(matches!(
        bs.create_blob(&BlobOpts::default()),
        Err(BlobError::StoreReadOnly)
    ));
    assert!(matches!(
        bs.create_snapshot(id, &[]),
        Err(BlobError::StoreReadOnly)
    ));
    assert!(matches!(bs.delete_blob(id), Err(BlobError::StoreReadOnly)));
    let dev = bs.unload().unwrap();
    assert_eq!(dev.writes(), 0);
    assert_eq!(dev.into_inner().into_image(), image("dirty-4k"));
}

/// Zeroes the bits of the used-cluster mask (page 2), keeping its header.
fn zero_cluster_mask(img: &mut [u8]) {
    img[2 * 4096 + 5..3 * 4096].fill(0);
}

#[test]
fn a_clean_load_keeps_the_metadata_clusters_used_whatever_the_cluster_mask_says() {
    let mut img = image("blobs-4k");
    zero_cluster_mask(&mut img);
    let dev = RamDev::from_image(img, 4096).unwrap();
    let mut bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
    assert!(bs.masks().1.get(0), "cluster 0 holds the metadata");
    bs.verify().unwrap();
    let md_page0 = bs.dev().image()[4 * 4096..5 * 4096].to_vec();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 2,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 0, &vec![0x5a; 1 << 20]).unwrap();
    bs.close_blob(h).unwrap();
    bs.verify().unwrap();
    // The old blobs' metadata is intact: the new cluster did not land on cluster 0.
    assert_eq!(&bs.dev().image()[4 * 4096..5 * 4096], &md_page0[..]);
    let dev = bs.unload().unwrap();
    let bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
    assert_eq!(bs.unusable_blobs().count(), 0);
    assert_eq!(bs.blob_ids().len(), 4);
}

#[test]
fn a_snapshot_on_a_store_with_a_corrupt_blobid_mask_changes_nothing_or_succeeds() {
    // Blob-id bits set for pages that root nothing (5.., or 13..).
    for bits in [[0xffu8, 0xff], [0x35, 0x00], [0x15, 0xf0]] {
        let mut img = image("blobs-4k");
        img[3 * 4096 + 5..3 * 4096 + 7].copy_from_slice(&bits);
        let dev = RamDev::from_image(img.clone(), 4096).unwrap();
        let mut bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
        let before = bs.blob_info(0x1_0000_0000).unwrap();
        match bs.create_snapshot(0x1_0000_0000, &[]) {
            Ok(snap) => {
                // Reported as done: it is, and the snapshot is usable.
                assert_eq!(bs.blob_info(0x1_0000_0000).unwrap().parent, Some(snap));
                bs.blob_info(snap).unwrap();
                let bs = Blobstore::load(bs.unload().unwrap(), &LoadOpts::default()).unwrap();
                assert_eq!(bs.blob_info(0x1_0000_0000).unwrap().parent, Some(snap));
            }
            Err(e) => {
                // Reported as failed: nothing changed.
                assert_eq!(bs.blob_info(0x1_0000_0000).unwrap(), before, "{e}");
                assert!(bs.unload().unwrap().into_image() == img, "{e}");
            }
        }
    }
}

#[test]
fn a_metadata_sync_that_fails_leaves_the_blob_as_on_disk_and_the_store_unloadable() {
    // Every md page marked used: a chain that needs a second page cannot be written.
    let mut img = image("multipage-4k");
    img[4096 + 5..4096 + 9].fill(0xff);
    let mut bs =
        Blobstore::load(RamDev::from_image(img, 4096).unwrap(), &LoadOpts::default()).unwrap();
    let id = bs.blob_ids()[0];
    let before = bs.blob_info(id).unwrap();
    let h = bs.open_blob(id).unwrap();
    bs.set_xattr(&h, "more", &[9; 3000]).unwrap();
    let e = bs.sync_md(&h).unwrap_err();
    assert!(matches!(e, BlobError::NoSpace(_)), "{e}");
    assert_eq!(
        bs.blob_info(id).unwrap(),
        before,
        "the failed change is not kept"
    );
    bs.close_blob(h).unwrap();
    let bs = Blobstore::load(bs.unload().unwrap(), &LoadOpts::default()).unwrap();
    assert_eq!(bs.blob_info(id).unwrap(), before);
}

/// A RAM device whose writes of block `fail_write_at` and whose unmaps fail
/// while armed.
struct FailDev {
    inner: RamDev,
    armed: bool,
    fail_write_at: Option<u64>,
    fail_unmap: bool,
}

impl BsDev for FailDev {
    fn block_len(&self) -> u32 {
        self.inner.block_len()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        if self.armed && self.fail_write_at == Some(lba) {
            return Err(io::Error::other("injected write failure"));
        }
        self.inner.write(lba, buf)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        if self.armed && self.fail_unmap {
            return Err(io::Error::other("injected unmap failure"));
        }
        self.inner.unmap(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        self.unmap(lba, blocks)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn fail_dev(fail_write_at: Option<u64>, fail_unmap: bool) -> FailDev {
    FailDev {
        inner: RamDev::from_image(image("blobs-4k"), 4096).unwrap(),
        armed: false,
        fail_write_at,
        fail_unmap,
    }
}

#[test]
fn a_delete_that_cannot_commit_fails_and_keeps_the_blob() {
    // Blob 0x100000000's root is md page 0, device page 4.
    let mut bs = Blobstore::load(fail_dev(Some(4), false), &LoadOpts::default()).unwrap();
    let ids = bs.blob_ids();
    // A change first, so the store is dirty and the delete's first write is the root.
    bs.set_super_blob(Some(0x1_0000_0002)).unwrap();
    let mut bs = rearm(bs);
    assert!(bs.delete_blob(0x1_0000_0000).is_err());
    assert_eq!(bs.blob_ids(), ids, "reported failed: nothing changed");
    bs.blob_info(0x1_0000_0000).unwrap();
}

#[test]
fn a_delete_that_committed_succeeds_even_if_releasing_its_clusters_fails() {
    let bs = Blobstore::load(fail_dev(None, true), &LoadOpts::default()).unwrap();
    let mut bs = rearm(bs);
    bs.delete_blob(0x1_0000_0000).unwrap();
    assert!(bs.blob_info(0x1_0000_0000).is_err());
    assert_eq!(bs.super_blob(), None, "the super blob was deleted");
    let mut dev = bs.unload().unwrap();
    dev.armed = false;
    let bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
    assert_eq!(bs.blob_ids(), vec![0x1_0000_0002, 0x1_0000_0004]);
    assert_eq!(bs.unusable_blobs().count(), 0);
}

/// Unloads the store and loads it again with the device's failures armed.
fn rearm(bs: Blobstore<FailDev>) -> Blobstore<FailDev> {
    let mut dev = bs.unload().unwrap();
    dev.armed = true;
    Blobstore::load(dev, &LoadOpts::default()).unwrap()
}
