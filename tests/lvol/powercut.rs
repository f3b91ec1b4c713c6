//! The power-cut sweep over lvol operations: the workload runs on a
//! device that drops every write after the n-th (the n-th whole or torn),
//! for every n; the store must load to the lvols as they were before or
//! after the step that was cut.

use crate::lvol_common::{pattern, run, sha256};
use spdk_io::blob::{BlobClearMethod, BsDev, PowerCutDev, RamDev};
use spdk_io::lvol::{LvolStore, LvsOpts};
use spdk_io::thread::Thread;
use std::sync::Arc;

/// A power-cut device the test can still reach after the store took it.
#[derive(Clone)]
struct Shared(Arc<std::sync::Mutex<PowerCutDev>>);

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut PowerCutDev) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }
}

impl BsDev for Shared {
    fn block_len(&self) -> u32 {
        self.with(|d| d.block_len())
    }
    fn block_count(&self) -> u64 {
        self.with(|d| d.block_count())
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.with(|d| d.read(lba, buf))
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> std::io::Result<()> {
        self.with(|d| d.write(lba, buf))
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> std::io::Result<()> {
        self.with(|d| d.unmap(lba, blocks))
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> std::io::Result<()> {
        self.with(|d| d.write_zeroes(lba, blocks))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.with(|d| d.flush())
    }
}

/// What an lvstore holds, as a user sees it: per lvol name whether it has
/// a UUID (the values are random per run), its size, parent's name,
/// read-only flag and the sha256 of its content.
type LvsState = std::collections::BTreeMap<String, (bool, u64, Option<String>, bool, String)>;

async fn lvs_state<D: BsDev + 'static>(lvs: &LvolStore<D>) -> LvsState {
    let infos = lvs.lvol_infos().await.unwrap();
    let name_of = |id| {
        infos
            .iter()
            .find(|(l, _)| l.blob_id == id)
            .map(|(l, _)| l.name.clone())
    };
    let mut st = LvsState::new();
    for (l, i) in &infos {
        let size = i.num_clusters * 64 * 1024;
        let data = lvs.read_lvol(&l.name, 0, size as usize).await.unwrap();
        st.insert(
            l.name.clone(),
            (
                l.uuid.is_some(),
                size,
                i.parent.and_then(name_of),
                i.read_only,
                sha256(&data),
            ),
        );
    }
    st
}

const PC_CLUSTER: u64 = 64 * 1024;

/// The swept lvol operations, one step each; returns each step's write
/// count at its end and the state it leaves.
async fn pc_workload(lvs: &LvolStore<Shared>, dev: &Shared) -> Vec<(u64, LvsState)> {
    let mut out = vec![(dev.with(|d| d.writes()), lvs_state(lvs).await)];
    macro_rules! step {
        ($e:expr) => {{
            $e.await.unwrap();
            out.push((dev.with(|d| d.writes()), lvs_state(lvs).await));
        }};
    }
    let c = BlobClearMethod::Default;
    step!(lvs.create_lvol("thick", 2 * PC_CLUSTER, false, c));
    step!(lvs.create_lvol("thin", 4 * PC_CLUSTER, true, c));
    step!(lvs.write_lvol("thin", 4096, pattern("thin#1", 4096, 8192)));
    step!(lvs.snapshot("thin", "snap"));
    step!(lvs.write_lvol("thin", PC_CLUSTER, pattern("thin#2", PC_CLUSTER, 4096)));
    step!(lvs.clone_lvol("snap", "clone"));
    step!(lvs.write_lvol("clone", 0, pattern("clone#1", 0, 4096)));
    step!(lvs.rename_lvol("thick", "thick2"));
    step!(lvs.resize("thick2", 3 * PC_CLUSTER));
    step!(lvs.set_read_only("thick2"));
    step!(lvs.inflate("clone"));
    step!(lvs.decouple_parent("thin"));
    step!(lvs.delete_lvol("snap"));
    step!(lvs.resize("thin", 2 * PC_CLUSTER));
    step!(lvs.delete_lvol("clone"));
    out
}

#[test]
fn a_power_cut_during_any_lvol_operation_leaves_the_state_before_or_after_it() {
    // An empty lvstore to start from.
    let base = run(async {
        let md = Thread::current().unwrap().handle();
        let mut o = LvsOpts::new("lvs_pc");
        o.cluster_sz = PC_CLUSTER as u32;
        let lvs = LvolStore::create(&md, || Ok(RamDev::new(4096, 256)), &o)
            .await
            .unwrap();
        lvs.unload_dev().await.unwrap().into_image()
    });
    for tear in [false, true] {
        sweep(&base, tear);
    }
}

/// Cuts the workload at every write `n` (the `n`-th torn when `tear`).
fn sweep(base: &[u8], tear: bool) {
    let start = |limit: Option<u64>| {
        Shared(Arc::new(std::sync::Mutex::new(PowerCutDev::new(
            RamDev::from_image(base.to_vec(), 4096).unwrap(),
            limit,
            tear,
        ))))
    };
    // The uncut run: how many writes each step issues.
    let steps = run(async {
        let dev = start(None);
        let md = Thread::current().unwrap().handle();
        let d2 = dev.clone();
        let lvs = LvolStore::load(&md, move || Ok(d2)).await.unwrap();
        let steps = pc_workload(&lvs, &dev).await;
        lvs.unload_dev().await.unwrap();
        steps
    });
    let total = steps.last().unwrap().0;
    assert!(total > 20, "the workload issues {total} writes");
    let mut cuts = 0;
    for n in 1..=total {
        let dev = start(Some(n));
        let image = run(async {
            let md = Thread::current().unwrap().handle();
            let d2 = dev.clone();
            let lvs = LvolStore::load(&md, move || Ok(d2)).await.unwrap();
            pc_workload(&lvs, &dev).await;
            // Power is gone: the store is dropped where it stands.
            let img = dev.with(|d| d.clone().into_inner().into_image());
            lvs.unload_dev().await.ok();
            img
        });
        // The step during which write n was issued.
        let k = steps.iter().position(|(w, _)| *w >= n).unwrap();
        let got = run(async {
            let md = Thread::current().unwrap().handle();
            let d = RamDev::from_image(image, 4096).unwrap();
            let lvs = LvolStore::load(&md, move || Ok(d))
                .await
                .unwrap_or_else(|e| panic!("cut at write {n}: the store does not load: {e}"));
            assert_eq!(lvs.name(), "lvs_pc");
            let st = lvs_state(&lvs).await;
            lvs.unload_dev().await.unwrap();
            st
        });
        let before = &steps[k.saturating_sub(1)].1;
        let after = &steps[k].1;
        assert!(
            got == *before || got == *after,
            "cut at write {n} (step {k}, torn: {tear}): the lvols are neither as before nor as after the step\n got {got:?}\n before {before:?}\n after {after:?}"
        );
        cuts += 1;
    }
    assert_eq!(cuts, total);
    eprintln!(
        "power-cut sweep (torn: {tear}): {cuts} cuts over {} steps",
        steps.len() - 1
    );
}
