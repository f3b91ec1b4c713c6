//! The per-I/O operations of the env allocate nothing: taking and returning
//! pool elements and translating buffer addresses, after warm-up (counted
//! on the test's own thread, which does all of it).

use crate::counting::allocs;
use spdk_io::env::{self, DmaBuf, DmaPool, EnvOpts};

#[test]
fn pool_get_put_and_translation_allocate_nothing() {
    env::init_once(EnvOpts::no_huge()).unwrap();
    let pool = DmaPool::new(256, 4096, 4096).unwrap();
    let buf = DmaBuf::alloc(1 << 20, 4096).unwrap();
    let mut held = Vec::with_capacity(256);
    let before = allocs();
    let mut sum = 0u64;
    for round in 0..1000 {
        for _ in 0..32 {
            held.push(pool.get().unwrap());
        }
        for e in &held {
            sum = sum.wrapping_add(e.iova());
        }
        held.clear();
        sum = sum.wrapping_add(buf.iova_at(round * 1000));
        sum = sum.wrapping_add(buf.contiguous_len(round) as u64);
        for (iova, n) in buf.extents(round, 8192) {
            sum = sum.wrapping_add(iova + n as u64);
        }
    }
    let after = allocs();
    assert!(sum != 0);
    assert_eq!(after - before, 0, "allocations on the I/O path");
    assert_eq!(pool.available(), 256);
}
