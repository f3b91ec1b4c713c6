//! Async bdev I/O awaited where nothing polls its channel is an error, not
//! a hang; the channel got on the awaiting thread completes it.

use spdk_io::bdev::{self, malloc, malloc::MallocOpts, BdevError, IoBuf};
use spdk_io::thread::Thread;

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
