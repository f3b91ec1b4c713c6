//! Module options are built with `new` or `Default` and field sets (they
//! are `#[non_exhaustive]`, so new options do not break callers).

use spdk_io::bdev::{self, malloc, malloc::MallocOpts, null, null::NullOpts};

#[test]
fn malloc_and_null_options_default_to_512_byte_blocks_and_no_extras() {
    let m = MallocOpts::default();
    assert_eq!(
        (m.name.as_deref(), m.num_blocks, m.block_size),
        (None, 0, 512)
    );
    assert_eq!((m.uuid, m.optimal_io_boundary, m.md_size), (None, 0, 0));
    let n = NullOpts::default();
    assert_eq!(
        (n.num_blocks, n.block_size, n.md_size, n.dif_type),
        (0, 512, 0, 0)
    );
}

#[test]
fn bdevs_are_created_from_new_and_from_default_with_fields_set() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    let mut m = MallocOpts::default();
    m.name = Some("OptsMalloc0".into());
    m.num_blocks = 64;
    m.block_size = 4096;
    let b = malloc::create(m).unwrap();
    assert_eq!((b.block_size(), b.num_blocks()), (4096, 64));
    let b = null::create(NullOpts::new("OptsNull0", 128, 512)).unwrap();
    assert_eq!((b.name(), b.num_blocks()), ("OptsNull0", 128));
    for n in ["OptsMalloc0", "OptsNull0"] {
        bdev::get_by_name(n).unwrap().unregister();
    }
}
