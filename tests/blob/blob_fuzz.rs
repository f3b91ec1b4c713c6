//! Fuzzing the metadata parsers and the loader with a deterministic
//! generator: random and mutated super blocks, mask pages, md pages and
//! descriptors (crc fixed up so the parsers go past the checksum) must give
//! errors, never panics, and a store loaded from a corrupted image must never
//! write outside the device or into its metadata clusters through blob I/O.

use crate::blob_common;

use blob_common::image;
use spdk_io::blob::format::{
    page_crc, Descriptor, MaskKind, MaskPage, MdPage, SuperBlock, PAGE_SIZE,
};
use spdk_io::blob::{BlobOpts, Blobstore, BsDev, LoadOpts, RamDev};
use std::io;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn fix_crc(p: &mut [u8]) {
    let page: &mut [u8; PAGE_SIZE] = p.try_into().unwrap();
    let crc = page_crc(page);
    page[PAGE_SIZE - 4..].copy_from_slice(&crc.to_le_bytes());
}

/// Mutates a few bytes, biased towards descriptor headers and lengths.
fn mutate(rng: &mut Rng, p: &mut [u8]) {
    for _ in 0..1 + rng.below(6) {
        let at = if rng.below(2) == 0 {
            16 + rng.below(128)
        } else {
            rng.below(p.len())
        };
        p[at] = match rng.below(4) {
            0 => 0xff,
            1 => 0,
            _ => rng.next() as u8,
        };
    }
}

#[test]
fn random_and_mutated_pages_never_panic_the_parsers() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let img = image("multipage-4k");
    let seeds: Vec<&[u8]> = (0..8)
        .map(|i| &img[i * PAGE_SIZE..(i + 1) * PAGE_SIZE])
        .collect();
    for round in 0..20_000 {
        let mut p = seeds[round % seeds.len()].to_vec();
        if round % 5 == 0 {
            p.iter_mut().for_each(|b| *b = rng.next() as u8);
        }
        mutate(&mut rng, &mut p);
        fix_crc(&mut p);
        let _ = SuperBlock::decode(&p).map(|sb| sb.validate_layout(16 << 20, 4096));
        let _ = MdPage::decode(&p);
        let _ = Descriptor::decode_region(&p[16..4088]);
        for kind in [
            MaskKind::UsedPages,
            MaskKind::UsedClusters,
            MaskKind::UsedBlobIds,
        ] {
            let _ = MaskPage::decode(&p, kind, 1 << 20);
        }
        let cut = rng.below(p.len());
        let _ = MdPage::decode(&p[..cut]);
        let _ = Descriptor::decode_region(&p[..cut]);
    }
}

/// A RAM device that records any write outside the device or into the
/// first `protected` blocks that is not a whole metadata page write.
struct GuardDev {
    inner: RamDev,
    bad_writes: Vec<String>,
}

impl BsDev for GuardDev {
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
        let end = lba + (buf.len() / 4096) as u64;
        if end > self.block_count() {
            self.bad_writes
                .push(format!("write {lba}+{} past the end", buf.len()));
        }
        // Cluster 0 holds the super block, masks and md pages: only page writes belong there.
        if lba < 256 && buf.len() > PAGE_SIZE * 3 {
            self.bad_writes.push(format!(
                "data write of {} bytes at block {lba} into metadata",
                buf.len()
            ));
        }
        self.inner.write(lba, buf)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        if lba < 256 {
            self.bad_writes
                .push(format!("unmap at block {lba} in metadata"));
        }
        self.inner.unmap(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        if lba < 256 {
            self.bad_writes
                .push(format!("write_zeroes at block {lba} in metadata"));
        }
        self.inner.write_zeroes(lba, blocks)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn corrupted_images_load_or_fail_cleanly_and_never_write_out_of_place() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let bases = [
        image("snapclone-4k"),
        image("blobs-4k"),
        image("multipage-4k"),
        image("dirty-4k"),
    ];
    let mut loaded = 0;
    for round in 0..600 {
        let mut img = bases[round % bases.len()].clone();
        let page = 4 + rng.below(6);
        let p = &mut img[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
        mutate(&mut rng, p);
        if rng.below(4) != 0 {
            fix_crc(p);
        }
        let dev = GuardDev {
            inner: RamDev::from_image(img, 4096).unwrap(),
            bad_writes: Vec::new(),
        };
        let Ok(mut bs) = Blobstore::load(dev, &LoadOpts::default()) else {
            continue;
        };
        loaded += 1;
        for id in bs.blob_ids() {
            if let Ok(h) = bs.open_blob(id) {
                let n = bs.num_io_units(&h).min(600);
                let mut buf = vec![0u8; 4096];
                for u in (0..n).step_by(97) {
                    let _ = bs.read(&h, u, &mut buf);
                    let _ = bs.write(&h, u, &buf);
                }
                let _ = bs.resize_blob(&h, 1);
                let _ = bs.close_blob(h);
            }
            let _ = bs.delete_blob(id);
        }
        let _ = bs.create_blob(&BlobOpts {
            num_clusters: 2,
            ..Default::default()
        });
        if let Ok(dev) = bs.unload() {
            assert!(
                dev.bad_writes.is_empty(),
                "round {round}: {:?}",
                dev.bad_writes
            );
        }
    }
    assert!(
        loaded > 100,
        "only {loaded} corrupted images loaded: the fuzzer is not reaching the blob code"
    );
}

#[test]
fn a_parent_cycle_sets_the_blobs_aside_instead_of_looping() {
    use spdk_io::blob::format::Descriptor as D;
    // In snapclone-4k the snapshot (page 2) has no parent; point it at its own clone.
    let mut img = image("snapclone-4k");
    let off = 6 * PAGE_SIZE;
    let mut p = MdPage::decode(&img[off..off + PAGE_SIZE]).unwrap();
    p.descriptors.insert(
        2,
        D::XattrInternal {
            name: "SNAP".into(),
            value: 0x1_0000_0003u64.to_le_bytes().to_vec(),
        },
    );
    if let D::Flags { invalid_flags, .. } = &mut p.descriptors[0] {
        *invalid_flags |= 2;
    }
    img[off..off + PAGE_SIZE].copy_from_slice(&p.encode().unwrap());
    let mut bs =
        Blobstore::load(RamDev::from_image(img, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert!(bs.open_blob(0x1_0000_0002).is_err());
    assert!(bs.open_blob(0x1_0000_0003).is_err());
    assert_eq!(
        bs.unusable_blobs().count(),
        3,
        "the snapshot and both clones"
    );
}

#[test]
fn blobs_sharing_a_cluster_are_set_aside() {
    use spdk_io::blob::format::Descriptor as D;
    // In blobs-4k blob b's extent page (md page 3) maps logical cluster 3 to
    // physical cluster 3; point it at cluster 1, which blob a owns.
    let mut img = image("blobs-4k");
    let off = (4 + 3) * PAGE_SIZE;
    let mut p = MdPage::decode(&img[off..off + PAGE_SIZE]).unwrap();
    if let D::ExtentPage { cluster_idx, .. } = &mut p.descriptors[0] {
        cluster_idx[3] = 1;
    }
    img[off..off + PAGE_SIZE].copy_from_slice(&p.encode().unwrap());
    let mut bs =
        Blobstore::load(RamDev::from_image(img, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert!(bs.open_blob(0x1_0000_0000).is_err());
    assert!(bs.open_blob(0x1_0000_0002).is_err());
    let c = bs.open_blob(0x1_0000_0004).unwrap();
    bs.close_blob(c).unwrap();
    // Their clusters stay claimed: a new blob does not get cluster 1, 2 or 3.
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 1,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    bs.close_blob(h).unwrap();
    assert_eq!(bs.free_cluster_count(), 11);
}
