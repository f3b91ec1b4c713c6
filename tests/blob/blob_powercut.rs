//! The power-cut sweep (machinery in blob_common::powercut): scripted
//! workloads run on a device that drops every write after the N-th
//! (optionally tearing the N-th), for every N each workload issues — over a
//! thousand cut points in all. After each cut the store must load, every
//! blob must be in its state before or after the step that was cut, and
//! the maps must agree with the blobs.

use crate::blob_common;

use blob_common::pattern;
use blob_common::powercut::{state, sweep, write, State, PAGES_PER_CLUSTER};
use spdk_io::blob::{BlobOpts, Blobstore, PowerCutDev};
use std::collections::BTreeMap;

/// The workload: one operation per step, each fully synced. Returns, per
/// step, the device's write count at its end and the state it leaves.
/// `et`: whether blobs use the extent table (SPDK's default) or RLE extents.
fn workload(bs: &mut Blobstore<PowerCutDev>, et: bool) -> Vec<(u64, State)> {
    let mut out = vec![(bs.dev().writes(), state(bs))];
    let x = |n: &str, v: &[u8]| (n.to_string(), v.to_vec());
    let mut ids = BTreeMap::new();
    macro_rules! step {
        ($e:expr) => {{
            $e;
            out.push((bs.dev().writes(), state(bs)));
        }};
    }
    step!(ids.insert(
        "a",
        bs.create_blob(&BlobOpts {
            use_extent_table: et,
            num_clusters: 2,
            xattrs: vec![x("name", b"a\0")],
            ..Default::default()
        })
        .unwrap()
    ));
    step!(write(bs, ids["a"], 1, &pattern('A', 8192)));
    step!(ids.insert(
        "t",
        bs.create_blob(&BlobOpts {
            use_extent_table: et,
            num_clusters: 6,
            thin_provision: true,
            ..Default::default()
        })
        .unwrap()
    ));
    step!(write(
        bs,
        ids["t"],
        2 * PAGES_PER_CLUSTER + 1,
        &pattern('B', 4096)
    ));
    step!({
        let h = bs.open_blob(ids["a"]).unwrap();
        bs.resize_blob(&h, 4).unwrap();
        bs.sync_md(&h).unwrap();
        bs.close_blob(h).unwrap();
    });
    step!({
        let h = bs.open_blob(ids["t"]).unwrap();
        bs.set_xattr(&h, "color", b"blue").unwrap();
        bs.sync_md(&h).unwrap();
        bs.close_blob(h).unwrap();
    });
    step!(ids.insert(
        "s",
        bs.create_snapshot(ids["t"], &[x("name", b"s\0")]).unwrap()
    ));
    step!(write(
        bs,
        ids["t"],
        2 * PAGES_PER_CLUSTER,
        &pattern('C', 4096)
    ));
    step!(ids.insert("c", bs.create_clone(ids["s"], &[]).unwrap()));
    step!(write(bs, ids["c"], 0, &pattern('D', 8192)));
    step!(bs.delete_blob(ids["a"]).unwrap());
    step!({
        let h = bs.open_blob(ids["t"]).unwrap();
        bs.resize_blob(&h, 3).unwrap();
        bs.sync_md(&h).unwrap();
        bs.close_blob(h).unwrap();
    });
    step!(bs.delete_blob(ids["c"]).unwrap());
    step!(bs.delete_blob(ids["s"]).unwrap());
    step!(ids.insert(
        "m",
        bs.create_blob(&BlobOpts {
            use_extent_table: et,
            num_clusters: 1,
            xattrs: vec![x("big1", &[1; 3000]), x("big2", &[2; 3000])],
            ..Default::default()
        })
        .unwrap()
    ));
    step!({
        let h = bs.open_blob(ids["m"]).unwrap();
        bs.inflate_blob(&h).unwrap();
        bs.close_blob(h).unwrap();
    });
    step!(bs.set_super_blob(Some(ids["m"])).unwrap());
    step!(ids.insert("s3", bs.create_snapshot(ids["t"], &[]).unwrap()));
    step!(ids.insert("c3", bs.create_clone(ids["s3"], &[]).unwrap()));
    step!(write(bs, ids["c3"], 1, &pattern('A', 4096)));
    step!({
        let h = bs.open_blob(ids["c3"]).unwrap();
        bs.decouple_parent(&h).unwrap();
        bs.close_blob(h).unwrap();
    });
    step!({
        let h = bs.open_blob(ids["t"]).unwrap();
        bs.remove_xattr(&h, "color").unwrap();
        let zero_from = 4096 / bs.io_unit_size() as u64;
        bs.write_zeroes(&h, zero_from, zero_from).unwrap();
        bs.close_blob(h).unwrap();
    });
    step!(bs.delete_blob(ids["s3"]).unwrap());
    out
}

/// The second workload: metadata chains that grow and shrink across pages,
/// many small blobs, clones of clones, a snapshot merged into its only
/// clone on delete, read-only flags, thick resizes and whole-cluster writes.
fn workload_b(bs: &mut Blobstore<PowerCutDev>, et: bool) -> Vec<(u64, State)> {
    let mut out = vec![(bs.dev().writes(), state(bs))];
    let x = |n: &str, v: &[u8]| (n.to_string(), v.to_vec());
    macro_rules! step {
        ($e:expr) => {{
            $e;
            out.push((bs.dev().writes(), state(bs)));
        }};
    }
    macro_rules! with {
        ($id:expr, |$h:ident| $body:expr) => {{
            let $h = bs.open_blob($id).unwrap();
            $body;
            bs.sync_md(&$h).unwrap();
            bs.close_blob($h).unwrap();
        }};
    }
    let opts = |n: u64, thin: bool| BlobOpts {
        use_extent_table: et,
        num_clusters: n,
        thin_provision: thin,
        ..Default::default()
    };
    let mut small = Vec::new();
    for i in 0..6u8 {
        step!(small.push(
            bs.create_blob(&BlobOpts {
                xattrs: vec![x("i", &[i])],
                ..opts(u64::from(i % 3), i % 2 == 0)
            })
            .unwrap()
        ));
    }
    let big = small[1];
    // A chain of md pages that grows to three pages, then shrinks.
    for (i, len) in [2000usize, 3000, 3500, 100].into_iter().enumerate() {
        step!(with!(big, |h| bs
            .set_xattr(&h, &format!("x{i}"), &vec![i as u8 + 1; len])
            .unwrap()));
    }
    step!(with!(big, |h| bs.remove_xattr(&h, "x1").unwrap()));
    step!(with!(big, |h| bs.remove_xattr(&h, "x2").unwrap()));
    // Whole clusters, across a cluster boundary.
    step!(write(
        bs,
        small[2],
        PAGES_PER_CLUSTER - 1,
        &pattern('C', 4096 + CS_BYTES)
    ));
    step!(with!(small[4], |h| bs.resize_blob(&h, 5).unwrap()));
    step!(write(
        bs,
        small[4],
        3 * PAGES_PER_CLUSTER,
        &pattern('A', CS_BYTES)
    ));
    // Snapshot, clone of the snapshot, snapshot of the clone, clone again.
    let s1 = bs.create_snapshot(small[4], &[]).unwrap();
    out.push((bs.dev().writes(), state(bs)));
    let c1 = bs.create_clone(s1, &[x("name", b"c1\0")]).unwrap();
    out.push((bs.dev().writes(), state(bs)));
    step!(write(bs, c1, 1, &pattern('D', 4096)));
    let s2 = bs.create_snapshot(c1, &[]).unwrap();
    out.push((bs.dev().writes(), state(bs)));
    let c2 = bs.create_clone(s2, &[]).unwrap();
    out.push((bs.dev().writes(), state(bs)));
    step!(write(bs, c2, 2 * PAGES_PER_CLUSTER, &pattern('B', 4096)));
    // s2 has one clone (c2) once c1 is gone: deleting it merges it into c2.
    step!(bs.delete_blob(c1).unwrap());
    step!(bs.delete_blob(s2).unwrap());
    step!(with!(small[0], |h| bs.set_read_only(&h).unwrap()));
    step!(with!(small[4], |h| bs.resize_blob(&h, 1).unwrap()));
    step!(bs.set_super_blob(Some(small[3])).unwrap());
    for &id in small
        .iter()
        .rev()
        .filter(|&&id| id != small[4] && id != small[3])
    {
        step!(bs.delete_blob(id).unwrap());
    }
    step!(bs.set_super_blob(None).unwrap());
    out
}

const CS_BYTES: usize = blob_common::powercut::CS as usize;

/// The third workload: churn. Round after round a thin blob is created,
/// written, sometimes snapshotted (and written again, copy-on-write) or
/// grown, and the oldest blob is deleted (a snapshot merges into its clone),
/// so md pages and clusters are reused many times over.
fn workload_c(bs: &mut Blobstore<PowerCutDev>, et: bool) -> Vec<(u64, State)> {
    let mut out = vec![(bs.dev().writes(), state(bs))];
    macro_rules! step {
        ($e:expr) => {{
            let r = $e;
            out.push((bs.dev().writes(), state(bs)));
            r
        }};
    }
    let mut live = std::collections::VecDeque::new();
    for round in 0..20u64 {
        let id = step!(bs
            .create_blob(&BlobOpts {
                use_extent_table: et,
                num_clusters: 4,
                thin_provision: true,
                xattrs: vec![("round".to_string(), round.to_le_bytes().to_vec())],
                ..Default::default()
            })
            .unwrap());
        let kind = ['A', 'B', 'C', 'D'][round as usize % 4];
        step!(write(
            bs,
            id,
            (round % 4) * PAGES_PER_CLUSTER + 1,
            &pattern(kind, 8192)
        ));
        if round % 3 == 0 {
            live.push_back(step!(bs.create_snapshot(id, &[]).unwrap()));
            step!(write(
                bs,
                id,
                (round % 4) * PAGES_PER_CLUSTER,
                &pattern('D', 4096)
            ));
        }
        if round % 4 == 1 {
            step!({
                let h = bs.open_blob(id).unwrap();
                bs.resize_blob(&h, 6).unwrap();
                bs.sync_md(&h).unwrap();
                bs.close_blob(h).unwrap();
            });
        }
        live.push_back(id);
        while live.len() > 5 {
            let old = live.pop_front().unwrap();
            step!(bs.delete_blob(old).unwrap());
        }
    }
    out
}

#[test]
fn every_cut_point_leaves_each_blob_old_or_new_with_agreeing_maps() {
    sweep("a", workload, 4096, false, true);
}

/// Blocks are the device's atomic unit: with 4 KiB blocks a torn write
/// never splits a metadata page, so tearing only ever splits data.
#[test]
fn every_torn_last_write_leaves_each_blob_old_or_new_with_agreeing_maps() {
    sweep("a", workload, 4096, true, true);
}

/// With 512-byte blocks (io unit 512) every cut point, without tearing
/// (a torn 4 KiB metadata page on such a device is lost, in SPDK as here).
#[test]
fn every_cut_point_on_a_512_byte_block_device_is_consistent() {
    sweep("a", workload, 512, false, true);
}

/// Blobs with RLE extents (as older SPDK writes them) under every cut point.
#[test]
fn every_cut_point_with_rle_extent_blobs_is_consistent() {
    sweep("a", workload, 4096, true, false);
}

#[test]
fn every_cut_point_of_the_metadata_heavy_workload_is_consistent() {
    sweep("b", workload_b, 4096, false, true);
}

#[test]
fn every_torn_last_write_of_the_metadata_heavy_workload_is_consistent() {
    sweep("b", workload_b, 4096, true, true);
}

#[test]
fn every_cut_point_of_the_metadata_heavy_workload_on_512_byte_blocks_is_consistent() {
    sweep("b", workload_b, 512, false, true);
}

#[test]
fn every_cut_point_of_the_metadata_heavy_workload_with_rle_extents_is_consistent() {
    sweep("b", workload_b, 4096, true, false);
}

#[test]
fn every_cut_point_of_the_churn_workload_is_consistent() {
    sweep("c", workload_c, 4096, false, true);
}

#[test]
fn every_torn_last_write_of_the_churn_workload_is_consistent() {
    sweep("c", workload_c, 4096, true, true);
}

#[test]
fn every_cut_point_of_the_churn_workload_on_512_byte_blocks_is_consistent() {
    sweep("c", workload_c, 512, false, true);
}

#[test]
fn every_cut_point_of_the_churn_workload_with_rle_extents_is_consistent() {
    sweep("c", workload_c, 4096, true, false);
}

/// The asynchronous paths: blob channel writes from 8 tasks and metadata
/// operations in flight at once on one reactor, on a device that completes
/// later; every cut point (`tear`: the last write torn) leaves a consistent
/// store holding only written data.
fn sweep_async(tear: bool) {
    use blob_common::powercut_async::{check, image, run};
    let base = image();
    let (dev, whole) = run(&base, None, false);
    check(dev, true).unwrap();
    assert!(
        whole.overlap > 1,
        "several channel writes were in flight beside a metadata operation"
    );
    assert!(whole.total_writes > whole.setup_writes + 40);
    let failures: Vec<String> = (1..=whole.total_writes + 1)
        .filter_map(|n| {
            let (dev, _) = run(&base, Some(n), tear);
            check(dev, n > whole.setup_writes)
                .err()
                .map(|e| format!("cut at write {n}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cut points failed:\n{}",
        failures.len(),
        whole.total_writes + 1,
        failures.join("\n")
    );
    eprintln!(
        "power-cut sweep (async, 8 channel writers + metadata operations, tear={tear}): {} cut points, all consistent; up to {} channel writes beside a metadata operation",
        whole.total_writes + 1,
        whole.overlap
    );
}

#[test]
fn every_cut_point_with_channel_writes_and_metadata_operations_in_flight_is_consistent() {
    sweep_async(false);
}

#[test]
fn every_torn_last_write_with_channel_writes_and_metadata_operations_in_flight_is_consistent() {
    sweep_async(true);
}
