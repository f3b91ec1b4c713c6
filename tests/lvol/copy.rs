//! Shallow copy (`bdev_lvol_start_shallow_copy` / `_check_shallow_copy`):
//! the clusters a read-only lvol owns go to another bdev at the same
//! offsets, nothing it reads through its snapshot; progress and errors by
//! operation id.

use crate::lvol_common::{pattern, run};
use spdk_io::bdev::{self, malloc, IoBuf};
use spdk_io::blob::BlobClearMethod;
use spdk_io::lvol::vbdev::{self, CopyStatus, LvsSelector};
use spdk_io::lvol::LvsOpts;

const MIB: u64 = 1 << 20;

async fn write(name: &str, off: u64, data: &[u8]) {
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let mut b = IoBuf::new(data.len());
    b.copy_from_slice(data);
    d.write_blocks_async(&ch, b, off / 512, data.len() as u64 / 512)
        .await
        .unwrap();
}

async fn read(name: &str, off: u64, len: usize) -> Vec<u8> {
    let d = bdev::open(name, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let b = d
        .read_blocks_async(&ch, IoBuf::new(len), off / 512, len as u64 / 512)
        .await
        .unwrap();
    b.to_vec()
}

/// Polls operation `id` until it is no longer in progress (bounded).
async fn finished(id: u32) -> CopyStatus {
    for _ in 0..100_000 {
        let s = vbdev::check_shallow_copy(id).expect("a known operation id");
        if s.result != 0 || s.copied_clusters == s.total_clusters {
            return s;
        }
        spdk_io::thread::yield_now().await;
    }
    panic!("shallow copy {id} still running after 100000 polls");
}

#[test]
fn a_shallow_copy_writes_the_clusters_a_read_only_lvol_owns_and_nothing_it_reads_through() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).unwrap();
    bdev::init().unwrap();
    vbdev::register();
    malloc::create(malloc::MallocOpts::new("LvolCopyBase", 32 * MIB / 512, 512)).unwrap();
    let dst = malloc::create(malloc::MallocOpts::new("LvolCopyDst", 8 * MIB / 512, 512)).unwrap();
    let small = malloc::create(malloc::MallocOpts::new("LvolCopySmall", MIB / 512, 512)).unwrap();
    run(async {
        let mut o = LvsOpts::new("lvs_copy");
        o.cluster_sz = MIB as u32;
        vbdev::create_lvstore("LvolCopyBase", &o).await.unwrap();
        let sel = LvsSelector {
            uuid: None,
            lvs_name: Some("lvs_copy".into()),
        };
        vbdev::create(&sel, "v", 4, true, BlobClearMethod::Default)
            .await
            .unwrap();
        let a = pattern("in-snapshot", 0, 4096);
        write("lvs_copy/v", 0, &a).await;
        vbdev::snapshot("lvs_copy/v", "snap").await.unwrap();
        let c = pattern("own", 2 * MIB + 4096, 8192);
        write("lvs_copy/v", 2 * MIB + 4096, &c).await;

        // Not read-only yet: the copy starts and fails with -EPERM.
        let id = vbdev::start_shallow_copy("lvs_copy/v", "LvolCopyDst")
            .await
            .unwrap();
        let s = finished(id).await;
        assert_eq!((s.result, s.copied_clusters), (-libc::EPERM, 0), "{s:?}");
        assert!(vbdev::check_shallow_copy(id).is_none(), "reported once");

        vbdev::set_read_only("lvs_copy/v").await.unwrap();
        let id = vbdev::start_shallow_copy("lvs_copy/v", "LvolCopyDst")
            .await
            .unwrap();
        assert_eq!(
            dst.claimed_by().as_deref(),
            Some("lvol"),
            "claimed while copying"
        );
        let s = finished(id).await;
        assert_eq!(
            (s.result, s.copied_clusters, s.total_clusters),
            (0, 1, 1),
            "{s:?}"
        );
        assert!(vbdev::check_shallow_copy(id).is_none(), "reported once");
        assert_eq!(dst.claimed_by(), None, "released when done");
        // Its own cluster, whole; not what it reads from the snapshot.
        assert_eq!(read("LvolCopyDst", 2 * MIB + 4096, 8192).await, c);
        assert_eq!(read("LvolCopyDst", 2 * MIB, 4096).await, vec![0u8; 4096]);
        assert_eq!(read("LvolCopyDst", 0, 4096).await, vec![0u8; 4096]);

        // A destination smaller than the lvol: -EINVAL in the status.
        let id = vbdev::start_shallow_copy("lvs_copy/v", "LvolCopySmall")
            .await
            .unwrap();
        assert_eq!(finished(id).await.result, -libc::EINVAL);
        assert_eq!(small.claimed_by(), None);
        // Unknown names fail at once.
        let e = vbdev::start_shallow_copy("lvs_copy/nope", "LvolCopyDst")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENODEV, "{e}");
        let e = vbdev::start_shallow_copy("lvs_copy/v", "nope")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::ENODEV, "{e}");
        // A destination another module claimed is refused (-EPERM).
        let e = vbdev::start_shallow_copy("lvs_copy/v", "LvolCopyBase")
            .await
            .unwrap_err();
        assert_eq!(e.errno(), libc::EPERM, "{e}");
        assert!(vbdev::check_shallow_copy(999_999).is_none());
        vbdev::delete_lvstore(&sel).await.unwrap();
    });
    dst.unregister();
    small.unregister();
}
