//! The file bdev over io_uring: data survives, vectored and unaligned
//! buffers work, unmap reads back zeroes, missing paths are clear errors.

use crate::common;

use common::*;
use spdk_io::bdev::{self, file::FileOpts, BdevError, IoBuf, IoStatus};

fn image(bytes: u64) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("spdk-io-bdev-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = uniq("File");
    let p = dir.join(format!("{name}.img"));
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(bytes).unwrap();
    (p, name)
}

fn opts(name: &str, path: &std::path::Path) -> FileOpts {
    FileOpts::new(name, path.display().to_string())
}

#[test]
fn file_bdev_writes_persist_in_the_file_and_read_back() {
    let (path, name) = image(1 << 20);
    let b = bdev::file::create(opts(&name, &path), "bdev_uring_create").unwrap();
    assert_eq!(b.num_blocks(), 2048);
    let d = bdev::open(&name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    let mut w = IoBuf::new(8192);
    w.iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = (i * 7 % 256) as u8);
    let expect = w.to_vec();
    d.write_blocks(&ch, w, 100, 16, rec(&l)).unwrap();
    d.write_blocks(&ch, IoBuf::from_vec(vec![9; 512]), 7, 1, rec(&l))
        .unwrap(); // maybe unaligned: buffered path
    poll_until(&ch, || l.borrow().len() == 2);
    d.flush_blocks(&ch, 0, 2048, rec(&l)).unwrap();
    d.readv_blocks(
        &ch,
        vec![IoBuf::new(4096), IoBuf::from_vec(vec![0; 4096])],
        100,
        16,
        rec(&l),
    )
    .unwrap();
    poll_until(&ch, || l.borrow().len() == 4);
    assert!(
        statuses(&l).iter().all(|s| s.is_success()),
        "{:?}",
        statuses(&l)
    );
    let c = l
        .borrow_mut()
        .drain(..)
        .find(|c| c.io_type == spdk_io::bdev::IoType::Read)
        .unwrap();
    let got: Vec<u8> = c.data.into_bufs().iter().flat_map(|b| b.to_vec()).collect();
    assert!(got == expect, "read back differs from what was written");
    drop(ch);
    let raw = std::fs::read(&path).unwrap();
    assert!(
        raw[100 * 512..100 * 512 + 8192] == expect[..],
        "file content differs"
    );
    assert!(raw[7 * 512..8 * 512].iter().all(|&x| x == 9));
    let _ = std::fs::remove_file(&path);
    // The directory goes with its last file (other tests may still use it).
    if let Some(d) = path.parent() {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn file_bdev_unmap_reads_back_zeroes() {
    let (path, name) = image(1 << 20);
    bdev::file::create(opts(&name, &path), "bdev_aio_create").unwrap();
    let d = bdev::open(&name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let l = log();
    d.write_blocks(&ch, IoBuf::from_vec(vec![5; 4096]), 8, 8, rec(&l))
        .unwrap();
    poll_until(&ch, || l.borrow().len() == 1);
    d.unmap_blocks(&ch, 8, 8, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 2);
    d.read_blocks(&ch, IoBuf::new(4096), 8, 8, rec(&l)).unwrap();
    poll_until(&ch, || l.borrow().len() == 3);
    assert!(
        statuses(&l).iter().all(|s| *s == IoStatus::Success),
        "{:?}",
        statuses(&l)
    );
    assert!(l
        .borrow_mut()
        .pop()
        .unwrap()
        .data
        .into_buf()
        .unwrap()
        .iter()
        .all(|&x| x == 0));
    let _ = std::fs::remove_file(&path);
    // The directory goes with its last file (other tests may still use it).
    if let Some(d) = path.parent() {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn channel_drop_with_io_in_flight_waits_for_the_kernel() {
    let (path, name) = image(4 << 20);
    bdev::file::create(opts(&name, &path), "bdev_uring_create").unwrap();
    let d = bdev::open(&name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    for i in 0..64 {
        d.write_blocks(&ch, IoBuf::new(4096), i * 8, 8, Box::new(|_| {}))
            .unwrap();
    }
    ch.poll(); // hands them to the kernel
    drop(ch); // must not free buffers the kernel still writes from
    let _ = std::fs::remove_file(&path);
    // The directory goes with its last file (other tests may still use it).
    if let Some(d) = path.parent() {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn missing_file_and_empty_file_are_clear_errors() {
    let e = bdev::file::create(
        opts("FileMissing", std::path::Path::new("/no/such/file.img")),
        "bdev_aio_create",
    )
    .unwrap_err();
    assert!(matches!(e, BdevError::Os { .. }));
    assert!(e.to_string().contains("/no/such/file.img"), "{e}");
    let (path, name) = image(100);
    let e = bdev::file::create(opts(&name, &path), "bdev_aio_create").unwrap_err();
    assert!(e.to_string().contains("less than one"), "{e}");
    let _ = std::fs::remove_file(&path);
    // The directory goes with its last file (other tests may still use it).
    if let Some(d) = path.parent() {
        let _ = std::fs::remove_dir(d);
    }
}

#[test]
fn a_missing_file_keeps_the_os_error_as_its_source() {
    let e = bdev::file::create(
        opts(
            "FileMissingSource",
            std::path::Path::new("/no/such/dir/f.img"),
        ),
        "bdev_aio_create",
    )
    .unwrap_err();
    let source = std::error::Error::source(&e).expect("the error underneath is kept");
    assert!(source.to_string().contains("No such file"), "{source}");
    let BdevError::Os { source, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(source.errno(), Some(libc::ENOENT));
    let io = source
        .get()
        .downcast_ref::<std::io::Error>()
        .expect("an io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}
