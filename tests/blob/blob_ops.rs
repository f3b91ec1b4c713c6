//! Blob operations over RAM and file devices: lifecycle, I/O, xattrs,
//! thin provisioning, snapshots, clones, inflate/decouple, flags from newer
//! writers, bad input, grow and dirty recovery of stores made here.

use crate::blob_common;

use blob_common::pattern;
use spdk_io::blob::format::{MdPage, PAGE_SIZE};
use spdk_io::blob::{
    BlobError, BlobOpts, Blobstore, BsDev, BsOpts, FileDev, LoadKind, LoadOpts, RamDev,
};

const MIB: usize = 1 << 20;

fn new_store() -> Blobstore<RamDev> {
    Blobstore::init(RamDev::new(4096, 8192), &BsOpts::default()).unwrap()
}

/// A new blob of `clusters` clusters, allocated up front.
fn thick<D: BsDev>(bs: &mut Blobstore<D>, clusters: u64) -> u64 {
    bs.create_blob(&BlobOpts {
        num_clusters: clusters,
        ..Default::default()
    })
    .unwrap()
}

fn reload(bs: Blobstore<RamDev>) -> Blobstore<RamDev> {
    Blobstore::load(bs.unload().unwrap(), &LoadOpts::default()).unwrap()
}

fn read_all(bs: &mut Blobstore<RamDev>, id: u64) -> Vec<u8> {
    let h = bs.open_blob(id).unwrap();
    let mut v = vec![0u8; bs.num_io_units(&h) as usize * bs.io_unit_size() as usize];
    bs.read(&h, 0, &mut v).unwrap();
    bs.close_blob(h).unwrap();
    v
}

#[test]
fn blob_ids_are_high_bit_plus_md_page_and_survive_reload() {
    let mut bs = new_store();
    let a = thick(&mut bs, 3);
    let b = bs.create_blob(&BlobOpts::default()).unwrap();
    assert_eq!(a, 0x1_0000_0000);
    assert_eq!(b, 0x1_0000_0002, "md page 1 holds a's extent page");
    let bs = reload(bs);
    assert_eq!(bs.blob_ids(), vec![a, b]);
    assert_eq!(bs.blob_info(a).unwrap().num_clusters, 3);
}

#[test]
fn thin_blob_allocates_only_written_clusters() {
    let mut bs = new_store();
    let free = bs.free_cluster_count();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 10,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(bs.free_cluster_count(), free);
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 256 * 4 + 10, &pattern('A', 8192)).unwrap();
    assert_eq!(bs.free_cluster_count(), free - 1);
    bs.close_blob(h).unwrap();
    let mut bs = reload(bs);
    assert_eq!(bs.free_cluster_count(), free - 1);
    let data = read_all(&mut bs, id);
    assert_eq!(
        &data[4 * MIB + 10 * 4096..4 * MIB + 12 * 4096],
        &pattern('A', 8192)[..]
    );
    assert!(data[..4 * MIB + 10 * 4096].iter().all(|&b| b == 0));
    assert!(data[4 * MIB + 12 * 4096..].iter().all(|&b| b == 0));
}

#[test]
fn io_beyond_the_blob_and_to_read_only_blobs_is_refused() {
    let mut bs = new_store();
    let id = thick(&mut bs, 1);
    let h = bs.open_blob(id).unwrap();
    assert!(matches!(
        bs.write(&h, 255, &[0u8; 8192]),
        Err(BlobError::OutOfRange { .. })
    ));
    assert!(matches!(
        bs.read(&h, 0, &mut [0u8; 100]),
        Err(BlobError::InvalidArgument(_))
    ));
    bs.set_read_only(&h).unwrap();
    assert!(matches!(
        bs.write(&h, 0, &[0u8; 4096]),
        Err(BlobError::ReadOnly(_))
    ));
    assert!(matches!(bs.resize_blob(&h, 2), Err(BlobError::ReadOnly(_))));
    bs.close_blob(h).unwrap();
    assert!(bs.blob_info(id).unwrap().read_only);
    assert!(matches!(
        bs.open_blob(0x1_0000_0777),
        Err(BlobError::NoSuchBlob(_))
    ));
}

#[test]
fn open_is_reference_counted_and_open_blobs_cannot_be_deleted() {
    let mut bs = new_store();
    let id = thick(&mut bs, 2);
    let h1 = bs.open_blob(id).unwrap();
    let h2 = bs.open_blob(id).unwrap();
    bs.close_blob(h1).unwrap();
    assert!(matches!(bs.delete_blob(id), Err(BlobError::Busy { .. })));
    bs.close_blob(h2).unwrap();
    let free = bs.free_cluster_count();
    bs.delete_blob(id).unwrap();
    assert_eq!(bs.free_cluster_count(), free + 2);
    assert!(bs.blob_ids().is_empty());
    let bs = reload(bs);
    assert!(bs.blob_ids().is_empty());
    assert!(matches!(bs.blob_info(id), Err(BlobError::NoSuchBlob(_))));
}

#[test]
fn resize_takes_effect_at_sync_and_shrink_frees_clusters_after_commit() {
    let mut bs = new_store();
    let id = thick(&mut bs, 2);
    let free = bs.free_cluster_count();
    let h = bs.open_blob(id).unwrap();
    bs.resize_blob(&h, 20).unwrap();
    assert!(bs.is_dirty(&h));
    assert_eq!(bs.free_cluster_count(), free - 18);
    bs.sync_md(&h).unwrap();
    bs.write(&h, 19 * 256, &pattern('C', 4096)).unwrap();
    bs.resize_blob(&h, 1).unwrap();
    assert_eq!(bs.free_cluster_count(), free - 18, "freed only after sync");
    bs.sync_md(&h).unwrap();
    assert_eq!(bs.free_cluster_count(), free + 1);
    assert!(bs.resize_blob(&h, 1000).is_err(), "not enough clusters");
    bs.resize_blob(&h, 25).unwrap();
    bs.write(&h, 24 * 256, &pattern('B', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let mut bs = reload(bs);
    let data = read_all(&mut bs, id);
    assert_eq!(data.len(), 25 * MIB);
    assert_eq!(&data[24 * MIB..24 * MIB + 4096], &pattern('B', 4096)[..]);
    assert!(
        data[19 * MIB..19 * MIB + 4096].iter().all(|&b| b == 0),
        "released clusters come back cleared"
    );
}

#[test]
fn xattrs_set_replace_remove_and_persist_with_internal_ones_hidden() {
    let mut bs = new_store();
    let id = bs
        .create_blob(&BlobOpts {
            xattrs: vec![("k1".into(), b"v1".to_vec())],
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    bs.set_xattr(&h, "k2", &[7u8; 3000]).unwrap();
    bs.set_xattr(&h, "k3", &[9u8; 3000]).unwrap();
    bs.set_xattr(&h, "k1", b"new").unwrap();
    bs.remove_xattr(&h, "k2").unwrap();
    assert!(bs.remove_xattr(&h, "missing").is_err());
    assert!(bs.set_xattr(&h, "huge", &[0u8; 5000]).is_err());
    bs.close_blob(h).unwrap();
    let mut bs = reload(bs);
    let h = bs.open_blob(id).unwrap();
    assert_eq!(bs.xattr_names(&h), vec!["k1".to_string(), "k3".to_string()]);
    assert_eq!(bs.get_xattr(&h, "k1").unwrap(), b"new");
    assert_eq!(bs.get_xattr(&h, "k3").unwrap(), vec![9u8; 3000]);
    bs.close_blob(h).unwrap();
}

#[test]
fn snapshot_clone_copy_on_write_and_delete_snapshot_into_its_clone() {
    let mut bs = new_store();
    let orig = thick(&mut bs, 3);
    let h = bs.open_blob(orig).unwrap();
    bs.write(&h, 0, &pattern('A', 3 * MIB)).unwrap();
    let snap = bs.create_snapshot(orig, &[]).unwrap();
    let free = bs.free_cluster_count();
    bs.write(&h, 256 + 1, &pattern('B', 4096)).unwrap();
    assert_eq!(
        bs.free_cluster_count(),
        free - 1,
        "copy-on-write allocates one cluster"
    );
    bs.close_blob(h).unwrap();
    let mut expect = pattern('A', 3 * MIB);
    assert_eq!(
        read_all(&mut bs, snap),
        expect,
        "snapshot keeps the old data"
    );
    expect[MIB + 4096..MIB + 8192].copy_from_slice(&pattern('B', 4096));
    assert_eq!(read_all(&mut bs, orig), expect);
    let clone = bs.create_clone(snap, &[]).unwrap();
    assert!(
        bs.create_clone(orig, &[]).is_err(),
        "only read-only blobs are cloned"
    );
    assert!(
        matches!(bs.delete_blob(snap), Err(BlobError::Busy { .. })),
        "two clones"
    );
    let mut bs = reload(bs);
    assert_eq!(bs.blob_info(snap).unwrap().clones, vec![orig, clone]);
    assert_eq!(read_all(&mut bs, clone), pattern('A', 3 * MIB));
    bs.delete_blob(clone).unwrap();
    bs.delete_blob(snap).unwrap();
    assert_eq!(bs.blob_info(orig).unwrap().parent, None);
    let mut bs = reload(bs);
    assert_eq!(read_all(&mut bs, orig), expect);
    assert_eq!(bs.blob_ids(), vec![orig]);
    assert_eq!(bs.free_cluster_count(), bs.total_clusters() - 1 - 3);
}

#[test]
fn inflate_and_decouple_make_clones_independent() {
    let mut bs = new_store();
    let base = bs
        .create_blob(&BlobOpts {
            num_clusters: 4,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(base).unwrap();
    bs.write(&h, 0, &pattern('A', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let s1 = bs.create_snapshot(base, &[]).unwrap();
    let h = bs.open_blob(base).unwrap();
    bs.write(&h, 512, &pattern('B', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let s2 = bs.create_snapshot(base, &[]).unwrap();
    assert_eq!(bs.blob_info(s2).unwrap().parent, Some(s1));
    let c1 = bs.create_clone(s2, &[]).unwrap();
    let c2 = bs.create_clone(s2, &[]).unwrap();
    let before = read_all(&mut bs, c1);
    let h = bs.open_blob(c1).unwrap();
    bs.decouple_parent(&h).unwrap();
    assert_eq!(bs.blob_info(c1).unwrap().parent, Some(s1));
    assert_eq!(
        bs.blob_info(c1).unwrap().num_allocated_clusters,
        1,
        "only s2's own cluster is copied"
    );
    bs.close_blob(h).unwrap();
    let h = bs.open_blob(c2).unwrap();
    bs.inflate_blob(&h).unwrap();
    bs.close_blob(h).unwrap();
    let info = bs.blob_info(c2).unwrap();
    assert_eq!(
        (
            info.parent,
            info.thin_provisioned,
            info.num_allocated_clusters
        ),
        (None, false, 4)
    );
    let mut bs = reload(bs);
    assert_eq!(read_all(&mut bs, c1), before);
    assert_eq!(read_all(&mut bs, c2), before);
}

#[test]
fn readv_writev_unmap_and_write_zeroes() {
    let mut bs = new_store();
    let id = thick(&mut bs, 2);
    let h = bs.open_blob(id).unwrap();
    let (a, b) = (pattern('A', 8192), pattern('B', 4096));
    bs.writev(&h, 254, &[&a, &b]).unwrap();
    let (mut x, mut y) = (vec![0u8; 4096], vec![0u8; 8192]);
    bs.readv(&h, 254, &mut [&mut x, &mut y]).unwrap();
    assert_eq!(x, a[..4096]);
    assert_eq!(&y[..4096], &a[4096..]);
    assert_eq!(&y[4096..], &b[..]);
    bs.write_zeroes(&h, 255, 1).unwrap();
    bs.unmap(&h, 256, 1).unwrap();
    let mut z = vec![1u8; 8192];
    bs.read(&h, 255, &mut z).unwrap();
    assert!(z.iter().all(|&v| v == 0));
    bs.close_blob(h).unwrap();
}

/// Rewrites the flags descriptor of a blob's root page on a device image.
fn patch_flags(img: &mut [u8], page: usize, f: impl Fn(&mut u64, &mut u64, &mut u64)) {
    use spdk_io::blob::format::Descriptor;
    let off = (4 + page) * PAGE_SIZE;
    let mut p = MdPage::decode(&img[off..off + PAGE_SIZE]).unwrap();
    for d in &mut p.descriptors {
        if let Descriptor::Flags {
            invalid_flags,
            data_ro_flags,
            md_ro_flags,
        } = d
        {
            f(invalid_flags, data_ro_flags, md_ro_flags);
        }
    }
    img[off..off + PAGE_SIZE].copy_from_slice(&p.encode().unwrap());
}

#[test]
fn flags_from_a_newer_writer_refuse_or_restrict_as_spdk() {
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|_| bs.create_blob(&BlobOpts::default()).unwrap())
        .collect();
    let mut img = bs.unload().unwrap().into_image();
    patch_flags(&mut img, 0, |i, _, _| *i |= 1 << 40);
    patch_flags(&mut img, 1, |_, d, _| *d |= 1 << 40);
    patch_flags(&mut img, 2, |_, _, m| *m |= 1 << 40);
    let mut bs =
        Blobstore::load(RamDev::from_image(img, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert!(matches!(
        bs.open_blob(ids[0]),
        Err(BlobError::UnknownInvalidFlags { .. })
    ));
    assert!(bs
        .unusable_blobs()
        .any(|(id, e)| id == ids[0] && matches!(e, BlobError::UnknownInvalidFlags { .. })));
    let h = bs.open_blob(ids[1]).unwrap();
    assert!(matches!(
        bs.write(&h, 0, &[0u8; 4096]),
        Err(BlobError::OutOfRange { .. }) | Err(BlobError::ReadOnly(_))
    ));
    assert!(matches!(
        bs.set_xattr(&h, "x", b"y"),
        Err(BlobError::MdReadOnly(_))
    ));
    bs.close_blob(h).unwrap();
    let h = bs.open_blob(ids[2]).unwrap();
    assert!(matches!(
        bs.resize_blob(&h, 1),
        Err(BlobError::MdReadOnly(_))
    ));
    bs.close_blob(h).unwrap();
    bs.verify().unwrap();
}

#[test]
fn a_blob_from_a_newer_writer_keeps_its_space_through_dirty_recovery() {
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let id = thick(&mut bs, 2);
    let mut img = bs.abandon().into_image();
    patch_flags(&mut img, 0, |i, _, _| *i |= 1 << 40);
    let mut bs =
        Blobstore::load(RamDev::from_image(img, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert_eq!(bs.load_kind(), LoadKind::Recovered);
    assert!(bs.open_blob(id).is_err());
    assert_eq!(bs.free_cluster_count(), 13, "its 2 clusters stay claimed");
    bs.verify().unwrap();
    let other = thick(&mut bs, 1);
    assert_ne!(other, id, "its root page is not reused");
}

#[test]
fn bad_devices_are_clear_errors() {
    let not_bs = RamDev::new(4096, 4096);
    assert!(matches!(
        Blobstore::load(not_bs, &LoadOpts::default()),
        Err(BlobError::SuperBlock(_))
    ));
    let bs = Blobstore::init(
        RamDev::new(4096, 4096),
        &BsOpts {
            bstype: *b"lvs-type-0000000",
            ..Default::default()
        },
    )
    .unwrap();
    let img = bs.unload().unwrap().into_image();
    let wrong = LoadOpts {
        bstype: *b"something-else00",
        ..Default::default()
    };
    assert!(matches!(
        Blobstore::load(RamDev::from_image(img.clone(), 4096).unwrap(), &wrong),
        Err(BlobError::BstypeMismatch { .. })
    ));
    let mut crc = img.clone();
    crc[200] = 1;
    let e = Blobstore::load(RamDev::from_image(crc, 4096).unwrap(), &LoadOpts::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("crc"), "{e}");
    let truncated = img[..8 << 20].to_vec();
    let e = Blobstore::load(
        RamDev::from_image(truncated, 4096).unwrap(),
        &LoadOpts::default(),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn grow_adds_the_new_clusters_of_a_larger_device() {
    let bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let mut img = bs.unload().unwrap().into_image();
    img.resize(32 << 20, 0);
    let mut bs =
        Blobstore::load(RamDev::from_image(img, 4096).unwrap(), &LoadOpts::default()).unwrap();
    assert_eq!(bs.free_cluster_count(), 15);
    bs.grow().unwrap();
    assert_eq!(bs.free_cluster_count(), 31);
    let bs = reload(bs);
    assert_eq!((bs.total_clusters(), bs.free_cluster_count()), (32, 31));
}

#[test]
fn a_store_abandoned_without_unload_recovers_every_synced_blob() {
    let mut bs = new_store();
    let a = bs
        .create_blob(&BlobOpts {
            num_clusters: 2,
            xattrs: vec![("n".into(), b"a".to_vec())],
            ..Default::default()
        })
        .unwrap();
    let t = bs
        .create_blob(&BlobOpts {
            num_clusters: 5,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(t).unwrap();
    bs.write(&h, 3 * 256, &pattern('C', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let s = bs.create_snapshot(t, &[]).unwrap();
    let (masks, free) = (bs.masks().0.clone(), bs.free_cluster_count());
    let mut bs = Blobstore::load(bs.abandon(), &LoadOpts::default()).unwrap();
    assert_eq!(bs.load_kind(), LoadKind::Recovered);
    assert_eq!(bs.blob_ids(), vec![a, t, s]);
    assert_eq!((bs.masks().0, bs.free_cluster_count()), (&masks, free));
    assert_eq!(
        &read_all(&mut bs, t)[3 * MIB..3 * MIB + 4096],
        &pattern('C', 4096)[..]
    );
}

#[test]
fn a_file_device_round_trips_a_store() {
    let path = std::env::temp_dir().join(format!("spdk-io-blob-ops-{}.img", std::process::id()));
    std::fs::write(&path, vec![0u8; 16 << 20]).unwrap();
    let dev = FileDev::open(&path, 512).unwrap();
    let mut bs = Blobstore::init(dev, &BsOpts::default()).unwrap();
    let id = thick(&mut bs, 1);
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 8, &pattern('D', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    bs.unload().unwrap();
    let mut bs = Blobstore::load(FileDev::open(&path, 512).unwrap(), &LoadOpts::default()).unwrap();
    let h = bs.open_blob(id).unwrap();
    let mut buf = vec![0u8; 4096];
    bs.read(&h, 8, &mut buf).unwrap();
    assert_eq!(buf, pattern('D', 4096));
    bs.close_blob(h).unwrap();
    bs.unload().unwrap();
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn an_extent_table_spanning_several_md_pages_round_trips() {
    // 4 KiB clusters: a thin blob of 600 extent pages with one cluster
    // written in each needs 600 extent table entries, more than one page holds.
    let opts = BsOpts {
        cluster_size: 4096,
        num_md_pages: Some(1024),
        ..Default::default()
    };
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &opts).unwrap();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 512 * 600,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    for k in 0..600u64 {
        bs.write(&h, k * 512 + (k % 7), &pattern('A', 4096)[..4096])
            .unwrap();
    }
    bs.close_blob(h).unwrap();
    let mut bs = reload(bs);
    assert_eq!(bs.blob_info(id).unwrap().num_allocated_clusters, 600);
    let h = bs.open_blob(id).unwrap();
    let mut buf = vec![0u8; 4096];
    for k in [0u64, 1, 299, 599] {
        bs.read(&h, k * 512 + (k % 7), &mut buf).unwrap();
        assert_eq!(buf, pattern('A', 4096));
        bs.read(&h, k * 512 + (k % 7) + 1, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0));
    }
    bs.close_blob(h).unwrap();
    bs.verify().unwrap();
}

#[test]
fn blobs_without_an_extent_table_use_rle_extents_and_round_trip() {
    let mut bs = new_store();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 5,
            thin_provision: true,
            use_extent_table: false,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 3 * 256, &pattern('B', 4096)).unwrap();
    bs.write(&h, 256, &pattern('C', 4096)).unwrap();
    bs.close_blob(h).unwrap();
    let mut bs = reload(bs);
    let info = bs.blob_info(id).unwrap();
    assert_eq!((info.flags.0 & 4, info.num_allocated_clusters), (0, 2));
    let data = read_all(&mut bs, id);
    assert_eq!(&data[3 * MIB..3 * MIB + 4096], &pattern('B', 4096)[..]);
    assert_eq!(&data[MIB..MIB + 4096], &pattern('C', 4096)[..]);
    bs.verify().unwrap();
}
