//! `bdev_lvol_set_parent`: a thin lvol becomes a clone of a snapshot of
//! the same size, keeps what it wrote and reads the rest through the
//! snapshot; SPDK's errors for everything else.

use crate::lvol_common::{pattern, run};
use spdk_io::bdev::{self, malloc, IoBuf};
use spdk_io::blob::BlobClearMethod;
use spdk_io::lvol::vbdev::{self, LvsSelector};
use spdk_io::lvol::LvsOpts;

const MIB: u64 = 1 << 20;

fn sel() -> LvsSelector {
    LvsSelector {
        uuid: None,
        lvs_name: Some("lvs_par".into()),
    }
}

async fn write(name: &str, off: u64, data: &[u8]) {
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let mut b = IoBuf::new(data.len());
    b.copy_from_slice(data);
    d.write_blocks_async(&ch, b, off / 512, data.len() as u64 / 512)
        .await
        .unwrap();
}

async fn expect(name: &str, off: u64, want: &[u8]) {
    let d = bdev::open(name, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let b = d
        .read_blocks_async(
            &ch,
            IoBuf::new(want.len()),
            off / 512,
            want.len() as u64 / 512,
        )
        .await
        .unwrap();
    assert!(b[..] == want[..], "{name} at {off}");
}

async fn thin(name: &str, mib: u64) -> String {
    vbdev::create(&sel(), name, mib, true, BlobClearMethod::Default)
        .await
        .unwrap()
}

#[test]
fn a_thin_lvol_given_a_parent_keeps_what_it_wrote_and_reads_the_rest_through_the_snapshot() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).unwrap();
    bdev::init().unwrap();
    vbdev::register();
    malloc::create(malloc::MallocOpts::new(
        "LvolParentMalloc",
        32 * MIB / 512,
        512,
    ))
    .unwrap();
    run(async {
        let mut o = LvsOpts::new("lvs_par");
        o.cluster_sz = MIB as u32;
        vbdev::create_lvstore("LvolParentMalloc", &o).await.unwrap();
        thin("origin", 4).await;
        let a = pattern("origin", 0, 4096);
        let b = pattern("origin", 2 * MIB, 4096);
        write("lvs_par/origin", 0, &a).await;
        write("lvs_par/origin", 2 * MIB, &b).await;
        vbdev::snapshot("lvs_par/origin", "snap").await.unwrap();
        let t = thin("t", 4).await;
        let c = pattern("t", 2 * MIB, 4096);
        write("lvs_par/t", 2 * MIB, &c).await;

        vbdev::set_parent("lvs_par/t", "lvs_par/snap")
            .await
            .unwrap();
        expect("lvs_par/t", 0, &a).await;
        expect("lvs_par/t", 2 * MIB, &c).await;
        expect("lvs_par/t", 3 * MIB, &[0u8; 4096]).await;
        let info = bdev::get_by_name(&t).unwrap().info_json();
        assert_eq!(info["driver_specific"]["lvol"]["base_snapshot"], "snap");
        assert_eq!(info["driver_specific"]["lvol"]["clone"], true);
        let snap = bdev::get_by_name("lvs_par/snap").unwrap().info_json();
        let mut clones: Vec<String> =
            serde_json::from_value(snap["driver_specific"]["lvol"]["clones"].clone()).unwrap();
        clones.sort();
        assert_eq!(clones, ["origin", "t"]);
        // A write to a cluster it reads through copies it up, as any clone's.
        let d = pattern("t#2", 512, 512);
        write("lvs_par/t", 512, &d).await;
        expect("lvs_par/t", 0, &a[..512]).await;
        expect("lvs_par/t", 512, &d).await;
        expect("lvs_par/snap", 0, &a).await;

        // SPDK's errors; nothing changes.
        let e = vbdev::set_parent("lvs_par/t", "lvs_par/snap")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EEXIST, "already the parent: {e}");
        vbdev::create(&sel(), "thick", 4, false, BlobClearMethod::Default)
            .await
            .unwrap();
        let e = vbdev::set_parent("lvs_par/thick", "lvs_par/snap")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "not thin: {e}");
        let e = vbdev::set_parent("lvs_par/t", "lvs_par/origin")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "not a snapshot: {e}");
        thin("small", 2).await;
        let e = vbdev::set_parent("lvs_par/small", "lvs_par/snap")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "another size: {e}");
        let e = vbdev::set_parent("lvs_par/t", "lvs_par/t")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "itself: {e}");
        let e = vbdev::set_parent("lvs_par/t", "nope").await.unwrap_err();
        assert_eq!(e.errno(), libc::ENODEV, "unknown: {e}");
        // A snapshot below t cannot become the parent of t's own parent.
        vbdev::snapshot("lvs_par/t", "snap2").await.unwrap();
        let e = vbdev::set_parent("lvs_par/snap", "lvs_par/snap2")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL, "a cycle: {e}");
        assert!(e.to_string().contains("ancestor"), "{e}");
        expect("lvs_par/t", 512, &d).await;
        expect("lvs_par/t", 2 * MIB, &c).await;
        vbdev::delete_lvstore(&sel()).await.unwrap();
    });
}
