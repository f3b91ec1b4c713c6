//! Async bdev I/O awaited where nothing polls its channel is an error, not
//! a hang; the channel got on the awaiting thread completes it. A thread
//! that exits while its caller still holds a bdev channel is told so at
//! once, not after the exit timeout.

use spdk_io::bdev::{self, malloc, malloc::MallocOpts, BdevError, IoBuf};
use spdk_io::thread::{Thread, ThreadError, ThreadOpts};
use std::time::Duration;

fn malloc(name: &str) {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    malloc::create(MallocOpts::new(name, 64, 512)).unwrap();
}

#[test]
fn async_io_on_a_channel_made_outside_any_thread_is_an_error_on_a_thread() {
    malloc("UnpolledMalloc0");
    let d = bdev::open("UnpolledMalloc0", true).unwrap();
    let outside = d.get_io_channel().unwrap(); // no thread: no poller
    let t = Thread::new("awaiter");
    let e = t
        .block_on(d.read_async(&outside, IoBuf::new(512), 0))
        .unwrap()
        .unwrap_err();
    assert_eq!(
        e.error,
        BdevError::ChannelNotPolled {
            bdev: "UnpolledMalloc0".into()
        }
    );
    // The detached request is freed by its completion.
    outside.poll();
    assert_eq!(outside.outstanding(), 0);
    // Got on the thread, the channel is polled there and the I/O completes.
    let data = t
        .block_on(async {
            let ch = d.get_io_channel().unwrap();
            d.read_async(&ch, IoBuf::new(512), 0)
                .await
                .unwrap()
                .to_vec()
        })
        .unwrap();
    assert_eq!(data, vec![0; 512]);
    t.shutdown().unwrap();
    t.destroy().unwrap();
    bdev::get_by_name("UnpolledMalloc0").unwrap().unregister();
}

#[test]
fn a_thread_exiting_with_a_bdev_channel_held_is_an_error_at_once() {
    malloc("HeldMalloc0");
    let d = bdev::open("HeldMalloc0", true).unwrap();
    // An hour of exit timeout: only an immediate error lets shutdown return.
    let t = Thread::with_opts(ThreadOpts {
        name: "holder".into(),
        exit_timeout: Duration::from_secs(3600),
        ..ThreadOpts::default()
    });
    let ch = t.enter(|| d.get_io_channel()).unwrap();
    let sized = t.enter(|| d.get_io_channel_sized(8)).unwrap();
    assert_eq!(
        t.io_channels().len(),
        1,
        "one io_channel of the bdev's io_device"
    );
    let e = t.shutdown().unwrap_err();
    assert!(matches!(e, ThreadError::ChannelsHeld { .. }), "{e}");
    assert!(e.to_string().contains("HeldMalloc0 (2 refs)"), "{e}");
    // Once put, the thread exits.
    t.enter(|| drop((ch, sized)));
    t.shutdown().unwrap();
    t.destroy().unwrap();
    drop(d);
    bdev::get_by_name("HeldMalloc0").unwrap().unregister();
}

#[test]
fn a_thread_hands_out_one_shared_channel_per_bdev_until_it_is_put() {
    malloc("SharedMalloc0");
    let d = bdev::open("SharedMalloc0", true).unwrap();
    let t = Thread::new("sharer");
    t.enter(|| {
        let a = d.get_io_channel().unwrap();
        let b = d.get_io_channel().unwrap();
        // The same pool: a request taken on one is missing from the other.
        let (fa, fb) = (a.free_requests(), b.free_requests());
        assert_eq!(fa, fb);
        d.read_blocks(&a, IoBuf::new(512), 0, 1, Box::new(|_| {}))
            .unwrap();
        assert_eq!(b.free_requests(), fb - 1, "a and b are one channel");
        let c = d.get_io_channel_sized(4).unwrap();
        assert_eq!(c.pool_size(), 4, "a sized channel is its own");
    });
    while t.poll(0) {}
    t.shutdown().unwrap();
    t.destroy().unwrap();
    drop(d);
    bdev::get_by_name("SharedMalloc0").unwrap().unregister();
}
