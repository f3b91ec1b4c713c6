//! Async I/O on a lightweight thread: the channel's poller completes the
//! futures; remove events arrive on the opening thread by message.

use spdk_io::bdev::{self, malloc::MallocOpts, BdevError, IoBuf};
use spdk_io::thread::{spawn_local, Thread};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn malloc(name: &str) {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::malloc::create(MallocOpts::new(name, 256, 512)).unwrap();
}

fn run(t: &Thread, done: impl Fn() -> bool) {
    for _ in 0..1_000_000 {
        if done() {
            return;
        }
        t.poll(0);
    }
    panic!("thread did not finish");
}

#[test]
fn async_write_then_read_on_a_thread_returns_the_data() {
    malloc("AsyncMalloc0");
    let t = Thread::new("bdev_async");
    let out: Rc<RefCell<Option<Vec<u8>>>> = Rc::new(RefCell::new(None));
    let o = out.clone();
    let h = t.enter(|| {
        spawn_local(async move {
            let d = bdev::open("AsyncMalloc0", true).unwrap();
            let ch = d.get_io_channel().unwrap();
            let buf = d
                .write_async(&ch, IoBuf::from_vec(vec![0x5a; 1024]), 4096)
                .await
                .unwrap();
            assert_eq!(buf.len(), 1024, "the buffer comes back");
            let r = d
                .read_blocks_async(&ch, IoBuf::new(1024), 8, 2)
                .await
                .unwrap();
            let e = d
                .read_blocks_async(&ch, IoBuf::new(512), 256, 1)
                .await
                .unwrap_err();
            assert!(matches!(e.error, BdevError::OutOfRange { .. }));
            assert_eq!(e.data.len(), 512);
            d.flush_blocks_async(&ch, 0, 256).await.unwrap();
            *o.borrow_mut() = Some(r.to_vec());
        })
        .unwrap()
    });
    run(&t, || h.is_finished());
    assert_eq!(out.borrow().as_deref(), Some(&[0x5a; 1024][..]));
    t.exit();
    run(&t, || t.is_exited());
    t.destroy().unwrap();
}

#[test]
fn remove_event_is_delivered_on_the_opening_thread() {
    malloc("AsyncMalloc1");
    let t = Thread::new("bdev_events");
    let got = Arc::new(AtomicBool::new(false));
    let g = got.clone();
    let tid = t.id();
    let d = t.enter(|| {
        bdev::open_ext("AsyncMalloc1", false, move |_, _| {
            assert_eq!(
                Thread::current().map(|x| x.id()),
                Some(tid),
                "runs on the opening thread"
            );
            g.store(true, Ordering::SeqCst);
        })
        .unwrap()
    });
    bdev::get_by_name("AsyncMalloc1").unwrap().unregister();
    assert!(
        !got.load(Ordering::SeqCst),
        "delivered by message, not inline"
    );
    run(&t, || got.load(Ordering::SeqCst));
    drop(d);
    t.exit();
    run(&t, || t.is_exited());
    t.destroy().unwrap();
}
