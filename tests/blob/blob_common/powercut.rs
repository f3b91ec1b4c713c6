//! The power-cut sweep's machinery: a workload runs on a device that drops
//! every write after the N-th (optionally tearing the N-th), for every N
//! the workload issues. After each cut the store must load, every blob must
//! be in its state before or after the step that was cut (data block by
//! block), and the used-page / used-cluster / used-blob-id maps must agree
//! with the blobs — also after a further clean unload and load.

use super::pattern;
use spdk_io::blob::{
    BlobId, BlobInfo, BlobOpts, Blobstore, BsDev, BsOpts, LoadOpts, PowerCutDev, RamDev,
};
use std::collections::BTreeMap;

/// Cluster size of the swept stores.
pub const CS: u32 = 16 * 1024;
/// 4 KiB pages per cluster.
pub const PAGES_PER_CLUSTER: u64 = (CS / 4096) as u64;

/// A workload: runs its steps, returning per step the device's write count
/// at its end and the state it leaves. `et`: extent table or RLE extents.
pub type Workload = fn(&mut Blobstore<PowerCutDev>, bool) -> Vec<(u64, State)>;

#[derive(Debug, Clone, PartialEq)]
pub struct BlobState {
    pub info: BlobInfo,
    pub data: Vec<u8>,
}

pub type State = BTreeMap<BlobId, BlobState>;

pub fn state<D: BsDev>(bs: &mut Blobstore<D>) -> State {
    let mut s = State::new();
    for id in bs.blob_ids() {
        let info = bs.blob_info(id).unwrap();
        let h = bs.open_blob(id).unwrap();
        let mut data = vec![0u8; bs.num_io_units(&h) as usize * bs.io_unit_size() as usize];
        bs.read(&h, 0, &mut data).unwrap();
        bs.close_blob(h).unwrap();
        s.insert(id, BlobState { info, data });
    }
    s
}

/// Writes `data` at 4 KiB page `page` of the blob, whatever the io unit.
pub fn write<D: BsDev>(bs: &mut Blobstore<D>, id: BlobId, page: u64, data: &[u8]) {
    let h = bs.open_blob(id).unwrap();
    let unit = page * 4096 / bs.io_unit_size() as u64;
    bs.write(&h, unit, data).unwrap();
    bs.close_blob(h).unwrap();
}

fn base_image(block_len: u32) -> Vec<u8> {
    let opts = BsOpts {
        cluster_size: CS,
        ..Default::default()
    };
    Blobstore::init(RamDev::new(block_len, (2 << 20) / block_len as u64), &opts)
        .unwrap()
        .unload()
        .unwrap()
        .into_image()
}

fn blob_ok(
    got: &BlobState,
    before: Option<&BlobState>,
    after: Option<&BlobState>,
) -> Result<(), String> {
    let md_ok =
        before.is_some_and(|b| b.info == got.info) || after.is_some_and(|a| a.info == got.info);
    if !md_ok {
        return Err(format!(
            "metadata {:?} is neither {:?} nor {:?}",
            got.info,
            before.map(|b| &b.info),
            after.map(|a| &a.info)
        ));
    }
    for (i, blk) in got.data.chunks(4096).enumerate() {
        let same = |s: Option<&BlobState>| s.and_then(|s| s.data.chunks(4096).nth(i)) == Some(blk);
        if !same(before) && !same(after) {
            return Err(format!(
                "data block {i} is neither the old nor the new content"
            ));
        }
    }
    Ok(())
}

fn check_cut(
    workload: Workload,
    base: &[u8],
    bl: u32,
    cut: u64,
    tear: bool,
    et: bool,
    steps: &[(u64, State)],
) -> Result<(), String> {
    let dev = PowerCutDev::new(
        RamDev::from_image(base.to_vec(), bl).unwrap(),
        Some(cut),
        tear,
    );
    let mut bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
    workload(&mut bs, et);
    let img = bs.abandon().into_inner();
    let mut bs =
        Blobstore::load(img, &LoadOpts::default()).map_err(|e| format!("load failed: {e}"))?;
    if let Some((id, e)) = bs.unusable_blobs().next() {
        return Err(format!("blob {id:#x} unusable after the cut: {e}"));
    }
    bs.verify()?;
    let k = steps
        .iter()
        .position(|(w, _)| *w >= cut)
        .unwrap_or(steps.len() - 1);
    let (before, after) = (&steps[k.saturating_sub(1)].1, &steps[k].1);
    let got = state(&mut bs);
    for id in before.keys().chain(after.keys()).chain(got.keys()) {
        match got.get(id) {
            Some(g) => blob_ok(g, before.get(id), after.get(id))
                .map_err(|e| format!("step {k}, blob {id:#x}: {e}"))?,
            None if before.contains_key(id) && after.contains_key(id) => {
                return Err(format!("step {k}: blob {id:#x} vanished"))
            }
            None => {}
        }
    }
    // The recovered store keeps working and round-trips cleanly.
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 1,
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
    let h = bs.open_blob(id).unwrap();
    bs.write(&h, 0, &pattern('A', 4096))
        .map_err(|e| e.to_string())?;
    bs.close_blob(h).unwrap();
    let expect = state(&mut bs);
    let mut bs = Blobstore::load(
        bs.unload().map_err(|e| e.to_string())?,
        &LoadOpts::default(),
    )
    .map_err(|e| e.to_string())?;
    bs.verify()?;
    if state(&mut bs) != expect {
        return Err(format!(
            "step {k}: state changed across a clean unload/load"
        ));
    }
    Ok(())
}

/// Sweeps every cut point of `workload`; returns how many.
pub fn sweep(name: &str, workload: Workload, bl: u32, tear: bool, et: bool) -> u64 {
    let base = base_image(bl);
    let dev = PowerCutDev::new(RamDev::from_image(base.clone(), bl).unwrap(), None, false);
    let mut bs = Blobstore::load(dev, &LoadOpts::default()).unwrap();
    let steps = workload(&mut bs, et);
    let total = steps.last().unwrap().0;
    assert!(total > 40, "the workload issues {total} writes");
    let failures: Vec<String> = (1..=total + 1)
        .filter_map(|n| {
            check_cut(workload, &base, bl, n, tear, et, &steps)
                .err()
                .map(|e| format!("cut at write {n}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cut points failed:\n{}",
        failures.len(),
        total + 1,
        failures.join("\n")
    );
    eprintln!(
        "power-cut sweep {name} ({bl}-byte blocks, tear={tear}, extent table={et}): {} cut points, all consistent",
        total + 1
    );
    total + 1
}
