//! Logical volumes on an NVMe bdev in the QEMU guest (ignored on the
//! host): an lvstore on a real controller's namespace, lvols written
//! through the bdev layer with DMA buffers, a snapshot and a clone, and a
//! reload (the store unloaded, the controller detached and attached again,
//! examine bringing every lvol back with its data). A test binary of its
//! own: the env starts in its default mode (hugepages, the IOVA mode of
//! the bound driver), not in the no-hugepage mode of `tests/lvol.rs`.

#[path = "lvol/common.rs"]
mod lvol_common;

use lvol_common::{pattern, run};
use spdk_io::bdev::{self, nvme, IoBuf};
use spdk_io::blob::BlobClearMethod;
use spdk_io::env::{self, EnvOpts};
use spdk_io::lvol::vbdev::{self, LvsSelector};
use spdk_io::lvol::LvsOpts;

const MIB: u64 = 1 << 20;

fn guest_bdf(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run this test in the QEMU guest (qemu/run-tests)")
    })
}

fn attach_config(bdf: &str) -> String {
    format!(
        r#"{{"subsystems":[{{"subsystem":"bdev","config":[
        {{"method":"bdev_nvme_attach_controller","params":{{"name":"NvmeLvol","trtype":"PCIe","traddr":"{bdf}"}}}}]}}]}}"#
    )
}

fn sel(name: &str) -> LvsSelector {
    LvsSelector {
        uuid: None,
        lvs_name: Some(name.into()),
    }
}

async fn write(name: &str, off: u64, data: &[u8]) {
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let bl = d.bdev().block_size() as u64;
    let mut b = IoBuf::dma(data.len(), 4096).expect("DMA buffer");
    b.copy_from_slice(data);
    d.write_blocks_async(&ch, b, off / bl, data.len() as u64 / bl)
        .await
        .unwrap_or_else(|e| panic!("write {name} at {off}: {e}"));
}

async fn expect(name: &str, off: u64, want: &[u8]) {
    let d = bdev::open(name, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let bl = d.bdev().block_size() as u64;
    let b = IoBuf::dma(want.len(), 4096).expect("DMA buffer");
    let got = d
        .read_blocks_async(&ch, b, off / bl, want.len() as u64 / bl)
        .await
        .unwrap_or_else(|e| panic!("read {name} at {off}: {e}"));
    assert!(got[..] == want[..], "{name} at {off}: data differs");
}

#[test]
#[ignore = "needs a vfio-bound NVMe: run qemu/run-tests"]
fn lvols_on_an_nvme_bdev_keep_their_data_through_snapshot_clone_and_a_reattach() {
    env::init_once(EnvOpts::default()).expect("env init (hugepages at /dev/hugepages?)");
    bdev::init().unwrap();
    vbdev::register();
    let bdf = guest_bdf("SPDK_IO_TEST_NVME");
    run(async {
        assert_eq!(
            bdev::load_config(&attach_config(&bdf)).expect("attach"),
            vec!["NvmeLvoln1"]
        );
        vbdev::examined().await;
        // Whatever an earlier run left on the namespace goes.
        if vbdev::lvstore(&sel("lvs_nvme")).is_ok() {
            vbdev::delete_lvstore(&sel("lvs_nvme")).await.unwrap();
        }
        let mut o = LvsOpts::new("lvs_nvme");
        o.cluster_sz = MIB as u32;
        let s = vbdev::create_lvstore("NvmeLvoln1", &o).await.unwrap();
        let uuid = s.lvs.uuid();
        let thick = vbdev::create(
            &sel("lvs_nvme"),
            "thick",
            8,
            false,
            BlobClearMethod::Default,
        )
        .await
        .unwrap();
        let thin = vbdev::create(&sel("lvs_nvme"), "thin", 8, true, BlobClearMethod::Default)
            .await
            .unwrap();
        let k = pattern("nvme-thick", 3 * MIB, 64 * 1024);
        write("lvs_nvme/thick", 3 * MIB, &k).await;
        let a = pattern("nvme-thin#1", MIB - 4096, 16 * 1024);
        write("lvs_nvme/thin", MIB - 4096, &a).await;
        expect("lvs_nvme/thick", 3 * MIB, &k).await;
        expect("lvs_nvme/thin", MIB - 4096, &a).await;
        expect("lvs_nvme/thin", 5 * MIB, &[0u8; 4096]).await;

        // Snapshot: the snapshot keeps the data of then, the lvol moves on.
        let snap = vbdev::snapshot("lvs_nvme/thin", "snap").await.unwrap();
        let b = pattern("nvme-thin#2", MIB, 4096);
        write("lvs_nvme/thin", MIB, &b).await;
        expect("lvs_nvme/snap", MIB - 4096, &a).await;
        expect("lvs_nvme/thin", MIB - 4096, &a[..4096]).await;
        expect("lvs_nvme/thin", MIB, &b).await;
        // Clone: reads through to the snapshot until written.
        let clone = vbdev::clone("lvs_nvme/snap", "clone").await.unwrap();
        expect("lvs_nvme/clone", MIB - 4096, &a).await;
        let c = pattern("nvme-clone", 6 * MIB, 8192);
        write("lvs_nvme/clone", 6 * MIB, &c).await;
        expect("lvs_nvme/clone", 6 * MIB, &c).await;
        expect("lvs_nvme/snap", 6 * MIB, &[0u8; 8192]).await;

        // Reload: unload, detach the controller, attach it again.
        vbdev::unload_lvstore(&sel("lvs_nvme")).await.unwrap();
        assert!(bdev::get_by_name(&thin).is_none());
        nvme::detach_controller_async("NvmeLvol").await.unwrap();
        assert!(bdev::get_by_name("NvmeLvoln1").is_none());
        bdev::load_config(&attach_config(&bdf)).expect("attach again");
        vbdev::examined().await;
        let s = vbdev::lvstore(&sel("lvs_nvme")).expect("examine brought the store back");
        assert_eq!(s.lvs.uuid(), uuid);
        for (alias, name) in [
            ("lvs_nvme/thick", &thick),
            ("lvs_nvme/thin", &thin),
            ("lvs_nvme/snap", &snap),
            ("lvs_nvme/clone", &clone),
        ] {
            let b = bdev::get_by_name(alias).unwrap_or_else(|| panic!("{alias} is back"));
            assert_eq!(b.name(), name.as_str());
        }
        let info = bdev::get_by_name("lvs_nvme/clone").unwrap().info_json();
        assert_eq!(info["driver_specific"]["lvol"]["base_snapshot"], "snap");
        expect("lvs_nvme/thick", 3 * MIB, &k).await;
        expect("lvs_nvme/thin", MIB, &b).await;
        expect("lvs_nvme/snap", MIB - 4096, &a).await;
        expect("lvs_nvme/clone", MIB - 4096, &a).await;
        expect("lvs_nvme/clone", 6 * MIB, &c).await;

        vbdev::delete_lvstore(&sel("lvs_nvme")).await.unwrap();
        nvme::detach_controller_async("NvmeLvol").await.unwrap();
    });
}
