//! The blob I/O path allocates nothing: after warm-up, reads and writes to
//! allocated clusters make no heap allocation (a counting global allocator
//! proves it).

use spdk_io::blob::{BlobOpts, Blobstore, BsOpts, RamDev};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout (via alloc above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn reads_and_writes_to_allocated_clusters_do_not_allocate() {
    let mut bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let id = bs
        .create_blob(&BlobOpts {
            num_clusters: 4,
            ..Default::default()
        })
        .unwrap();
    let h = bs.open_blob(id).unwrap();
    let mut buf = vec![7u8; 8192];
    bs.write(&h, 0, &buf).unwrap();
    let before = ALLOCS.load(Ordering::Relaxed);
    for i in 0..10_000u64 {
        let off = (i * 37) % 1000;
        bs.write(&h, off, &buf).unwrap();
        bs.read(&h, off, &mut buf).unwrap();
    }
    let after = ALLOCS.load(Ordering::Relaxed);
    bs.close_blob(h).unwrap();
    assert_eq!(
        after - before,
        0,
        "blob I/O allocated {} times",
        after - before
    );
}
