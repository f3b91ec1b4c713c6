//! The bdev methods that act on I/O: QoS limits enforced per 1 ms slice
//! (counted against the layer's own tick clock), statistics and their
//! reset, and the nvme controller methods on the software controller.

use serde_json::{json, Value};
use spdk_io::bdev::{self, Channel, Desc, IoBuf, IoCompletion, IoStatus};
use spdk_io::rpc::RpcResult;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::{Context, Poll, Wake, Waker};

struct NoWake;
impl Wake for NoWake {
    fn wake(self: std::sync::Arc<Self>) {}
}

/// Calls a method whose future needs no thread (all but bdev_get_bdevs
/// with a timeout and the nvme methods that wait for the device).
fn call(name: &str, params: Value) -> RpcResult {
    let m = bdev::rpc::methods()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap();
    let mut f = (m.handler)(params);
    let waker = Waker::from(std::sync::Arc::new(NoWake));
    match f.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(r) => r,
        Poll::Pending => panic!("{name} did not complete at once"),
    }
}

/// Calls a method on a lightweight thread, polled until it answers (the
/// methods that wait for a device on a worker thread).
fn call_awaited(name: &str, params: Value) -> RpcResult {
    let m = bdev::rpc::methods()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap();
    let t = spdk_io::thread::Thread::new("rpc_io_app");
    let r = t.block_on((m.handler)(params)).expect("block_on");
    t.shutdown().expect("thread shutdown");
    r
}

fn null(name: &str) -> (Desc, Channel) {
    call(
        "bdev_null_create",
        json!({"name": name, "num_blocks": 1 << 20, "block_size": 512}),
    )
    .unwrap();
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel_sized(4096).unwrap();
    (d, ch)
}

fn counter() -> (Rc<Cell<u64>>, impl Fn() -> Box<dyn bdev::IoDone>) {
    let n = Rc::new(Cell::new(0u64));
    let m = n.clone();
    (n, move || {
        let m = m.clone();
        Box::new(move |c: IoCompletion| {
            assert_eq!(c.status, IoStatus::Success);
            m.set(m.get() + 1)
        })
    })
}

fn slice() -> u64 {
    bdev::ticks::TICK_RATE / 1000
}

#[test]
fn an_iops_limit_lets_no_more_than_its_share_per_slice_through() {
    let (d, ch) = null("RpcQosIops");
    let t0 = bdev::ticks::ticks();
    // 10,000 IOPS: 10 I/O per 1 ms slice.
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosIops", "rw_ios_per_sec": 10_000}),
    )
    .unwrap();
    let (done, cb) = counter();
    let total = 300u64;
    for i in 0..total {
        d.read_blocks(&ch, IoBuf::new(512), i, 1, cb()).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while done.get() < total {
        ch.poll();
        let slices = (bdev::ticks::ticks() - t0) / slice() + 1;
        assert!(
            done.get() <= 10 * slices,
            "{} I/O done within {slices} slices of 10",
            done.get()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "queued I/O never released"
        );
    }
    let slices = (bdev::ticks::ticks() - t0) / slice() + 1;
    assert!(
        slices >= total / 10,
        "{total} I/O at 10 per slice took only {slices} slices"
    );
    drop(ch);
    d.close();
    call("bdev_null_delete", json!({"name": "RpcQosIops"})).unwrap();
}

#[test]
fn two_channels_share_one_bdevs_quota() {
    let (d, ch0) = null("RpcQosTwo");
    let ch1 = d.get_io_channel_sized(4096).unwrap();
    let t0 = bdev::ticks::ticks();
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosTwo", "rw_ios_per_sec": 10_000}),
    )
    .unwrap();
    let (done, cb) = counter();
    for i in 0..100 {
        d.read_blocks(&ch0, IoBuf::new(512), i, 1, cb()).unwrap();
        d.write_blocks(&ch1, IoBuf::new(512), i, 1, cb()).unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while done.get() < 200 {
        ch0.poll();
        ch1.poll();
        let slices = (bdev::ticks::ticks() - t0) / slice() + 1;
        assert!(
            done.get() <= 10 * slices,
            "{} I/O within {slices} slices",
            done.get()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "queued I/O never released"
        );
    }
    drop((ch0, ch1));
    d.close();
    call("bdev_null_delete", json!({"name": "RpcQosTwo"})).unwrap();
}

#[test]
fn a_write_bandwidth_limit_holds_writes_and_lets_reads_pass() {
    let (d, ch) = null("RpcQosBw");
    let t0 = bdev::ticks::ticks();
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosBw", "w_mbytes_per_sec": 1}),
    )
    .unwrap();
    let per_slice = 1024 * 1024 * slice() / bdev::ticks::TICK_RATE;
    let (writes, wcb) = counter();
    let (reads, rcb) = counter();
    let n = 40u64;
    for i in 0..n {
        d.write_blocks(&ch, IoBuf::new(4096), i * 8, 8, wcb())
            .unwrap();
        d.read_blocks(&ch, IoBuf::new(4096), i * 8, 8, rcb())
            .unwrap();
    }
    ch.poll();
    assert_eq!(reads.get(), n, "reads are not limited by w_mbytes_per_sec");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while writes.get() < n {
        ch.poll();
        let slices = (bdev::ticks::ticks() - t0) / slice() + 1;
        // One write may overrun a slice; the next slices pay it back.
        assert!(
            writes.get() * 4096 <= per_slice * slices + 4096,
            "{} writes of 4 KiB within {slices} slices of {per_slice} bytes",
            writes.get()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "queued writes never released"
        );
    }
    drop(ch);
    d.close();
    call("bdev_null_delete", json!({"name": "RpcQosBw"})).unwrap();
}

#[test]
fn removing_the_limit_releases_queued_io_at_once_and_no_limit_queues_nothing() {
    let (d, ch) = null("RpcQosOff");
    let (done, cb) = counter();
    for i in 0..100 {
        d.read_blocks(&ch, IoBuf::new(512), i, 1, cb()).unwrap();
    }
    ch.poll();
    assert_eq!(done.get(), 100, "without a limit every I/O goes at once");
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosOff", "rw_ios_per_sec": 1000}),
    )
    .unwrap();
    for i in 0..100 {
        d.read_blocks(&ch, IoBuf::new(512), i, 1, cb()).unwrap();
    }
    ch.poll();
    assert!(done.get() < 200, "the limit holds some back");
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosOff", "rw_ios_per_sec": 0}),
    )
    .unwrap();
    ch.poll();
    ch.poll();
    assert_eq!(done.get(), 200, "queued I/O goes once the limit is removed");
    drop(ch);
    d.close();
    call("bdev_null_delete", json!({"name": "RpcQosOff"})).unwrap();
}

#[test]
fn closing_a_channel_aborts_its_qos_queued_io() {
    let (d, ch) = null("RpcQosClose");
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosClose", "w_mbytes_per_sec": 1}),
    )
    .unwrap();
    let st: Rc<RefCell<Vec<IoStatus>>> = Rc::default();
    let rec = || {
        let s = st.clone();
        Box::new(move |c: IoCompletion| s.borrow_mut().push(c.status)) as Box<dyn bdev::IoDone>
    };
    // An 8 MiB write goes (the slice had quota) and leaves 8 s of debt:
    // the writes after it stay queued until the channel closes.
    d.write_blocks(&ch, IoBuf::new(8 << 20), 0, 16384, rec())
        .unwrap();
    for i in 0..19 {
        d.write_blocks(&ch, IoBuf::new(512), i, 1, rec()).unwrap();
    }
    while st.borrow().is_empty() {
        ch.poll();
    }
    drop(ch);
    let st = st.borrow();
    assert_eq!(st.len(), 20, "every I/O completed exactly once");
    assert_eq!(st[0], IoStatus::Success);
    assert!(st[1..].iter().all(|s| *s == IoStatus::Aborted), "{st:?}");
    d.close();
    call("bdev_null_delete", json!({"name": "RpcQosClose"})).unwrap();
}

#[test]
fn iostat_counts_io_in_spdks_shape_and_reset_clears_it() {
    let (d, ch) = null("RpcStat0");
    let (done, cb) = counter();
    for i in 0..5 {
        d.read_blocks(&ch, IoBuf::new(1024), i * 2, 2, cb())
            .unwrap();
    }
    d.write_blocks(&ch, IoBuf::new(512), 0, 1, cb()).unwrap();
    while done.get() < 6 {
        ch.poll();
    }
    let v = call("bdev_get_iostat", json!({"name": "RpcStat0"})).unwrap();
    assert!(v["tick_rate"].as_u64().unwrap() > 0 && v["ticks"].as_u64().is_some());
    let b = &v["bdevs"][0];
    assert_eq!(b["name"], "RpcStat0");
    assert_eq!(
        (b["num_read_ops"].clone(), b["bytes_read"].clone()),
        (json!(5), json!(5120))
    );
    assert_eq!(
        (b["num_write_ops"].clone(), b["bytes_written"].clone()),
        (json!(1), json!(512))
    );
    for k in [
        "read_latency_ticks",
        "max_read_latency_ticks",
        "min_read_latency_ticks",
        "bytes_copied",
    ] {
        assert!(b.get(k).is_some(), "missing {k}");
    }
    assert_eq!(
        call_awaited("bdev_get_iostat", json!({"per_channel": true}))
            .unwrap_err()
            .code,
        -22,
        "per_channel needs a name"
    );
    assert_eq!(
        call("bdev_reset_iostat", json!({"name": "RpcStat0"})).unwrap(),
        json!(true)
    );
    let v = call("bdev_get_iostat", json!({"names": ["RpcStat0"]})).unwrap();
    assert_eq!(
        (
            v["bdevs"][0]["num_read_ops"].clone(),
            v["bdevs"][0]["bytes_written"].clone()
        ),
        (json!(0), json!(0))
    );
    d.read_blocks(&ch, IoBuf::new(512), 0, 1, cb()).unwrap();
    while done.get() < 7 {
        ch.poll();
    }
    let v = call("bdev_get_iostat", json!({"name": "RpcStat0"})).unwrap();
    assert_eq!(
        v["bdevs"][0]["num_read_ops"], 1,
        "counting goes on after the reset"
    );
    assert_eq!(
        call("bdev_get_iostat", json!({"name": "RpcStatNone"}))
            .unwrap_err()
            .code,
        -19
    );
    drop(ch);
    d.close();
    call("bdev_null_delete", json!({"name": "RpcStat0"})).unwrap();
}

#[test]
fn nvme_controllers_are_listed_reset_and_detached_by_name() {
    use spdk_io::nvme::emu::EmuController;
    use spdk_io::nvme::{Controller, ControllerOpts};
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env");
    let e = std::sync::Arc::new(
        EmuController::builder()
            .serial("RPCEMU1")
            .namespace(512, 4096)
            .build()
            .expect("emu"),
    );
    let c = Controller::attach(e, ControllerOpts::default()).expect("attach");
    let cntlid = c.data().cntlid;
    bdev::nvme::register_controller("RpcNvme", c, None).expect("register");
    let v = call("bdev_nvme_get_controllers", json!({"name": "RpcNvme"})).unwrap();
    assert_eq!(v[0]["name"], "RpcNvme");
    assert_eq!(v[0]["ctrlrs"][0]["state"], "enabled");
    assert_eq!(v[0]["ctrlrs"][0]["cntlid"], cntlid);
    let e = call("bdev_nvme_get_controllers", json!({"name": "RpcNvmeNone"})).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (22, "Controller RpcNvmeNone does not exist")
    );
    assert_eq!(
        call_awaited("bdev_nvme_reset_controller", json!({"name": "RpcNvme"})).unwrap(),
        json!(true)
    );
    let e = call(
        "bdev_nvme_set_options",
        json!({"action_on_timeout": "none"}),
    )
    .unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            -1,
            "RPC not permitted with nvme controllers already attached"
        )
    );
    assert!(bdev::get_by_name("RpcNvmen1").is_some());
    assert_eq!(
        call_awaited("bdev_nvme_detach_controller", json!({"name": "RpcNvme"})).unwrap(),
        json!(true)
    );
    assert!(bdev::get_by_name("RpcNvmen1").is_none());
    assert_eq!(
        call_awaited("bdev_nvme_detach_controller", json!({"name": "RpcNvme"}))
            .unwrap_err()
            .code,
        -19
    );
}

#[test]
fn per_channel_iostat_reads_each_channel_on_its_thread_and_names_the_thread() {
    let (d, outside) = null("RpcStatPer");
    let (t1, t2) = (
        spdk_io::thread::Thread::new("stat1"),
        spdk_io::thread::Thread::new("stat2"),
    );
    let c1 = t1.enter(|| d.get_io_channel()).unwrap();
    let c2 = t2.enter(|| d.get_io_channel()).unwrap();
    let (done, cb) = counter();
    for i in 0..3 {
        t1.enter(|| d.read_blocks(&c1, IoBuf::new(512), i, 1, cb()))
            .unwrap();
    }
    for i in 0..5 {
        t2.enter(|| d.read_blocks(&c2, IoBuf::new(512), i, 1, cb()))
            .unwrap();
    }
    let poll_all = || {
        t1.poll(0);
        t2.poll(0);
        outside.poll();
    };
    while done.get() < 8 {
        poll_all();
    }
    // The method runs as a task on t1; the walk visits t2 and the host
    // thread of the channel made outside any thread, then answers on t1.
    let m = bdev::rpc::methods()
        .into_iter()
        .find(|m| m.name == "bdev_get_iostat")
        .unwrap();
    let params = json!({"name": "RpcStatPer", "per_channel": true});
    let answer = t1
        .enter(|| spdk_io::thread::spawn_local((m.handler)(params)))
        .unwrap();
    let mut r = None;
    for _ in 0..10_000 {
        poll_all();
        if let Some(v) = answer.try_take() {
            r = Some(v.unwrap().unwrap());
            break;
        }
    }
    let r = r.expect("bdev_get_iostat per_channel answered");
    assert_eq!(r["name"], "RpcStatPer");
    let chans = r["channels"].as_array().unwrap();
    let reads_on = |id: u64| -> Vec<u64> {
        chans
            .iter()
            .filter(|c| c["thread_id"] == id)
            .map(|c| c["num_read_ops"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(chans.len(), 3, "{r}");
    assert_eq!(reads_on(t1.id()), [3]);
    assert_eq!(reads_on(t2.id()), [5]);
    assert!(
        chans
            .iter()
            .any(|c| c["num_read_ops"] == 0 && c["thread_id"].as_u64().is_some()),
        "the channel made outside any thread, on its host thread: {r}"
    );
    assert!(
        call(
            "bdev_get_iostat",
            json!({"name": "RpcStatPer", "per_channel": true})
        )
        .is_err(),
        "outside the framework per_channel is refused"
    );
    t1.enter(|| drop(c1));
    t2.enter(|| drop(c2));
    for t in [t1, t2] {
        t.shutdown().unwrap();
        t.destroy().unwrap();
    }
    drop(outside);
    d.close();
    call("bdev_null_delete", json!({"name": "RpcStatPer"})).unwrap();
}

#[test]
fn a_limit_set_outside_any_thread_reaches_a_channel_on_a_lightweight_thread() {
    call(
        "bdev_null_create",
        json!({"name": "RpcQosWalk", "num_blocks": 1 << 20, "block_size": 512}),
    )
    .unwrap();
    let d = bdev::open("RpcQosWalk", false).unwrap();
    let t = spdk_io::thread::Thread::new("qos_walk");
    let ch = t.enter(|| d.get_io_channel()).unwrap();
    // Slices are counted from before the limit is set: its time slices
    // start then, and a late poll credits the slices it missed.
    let t0 = bdev::ticks::ticks();
    call(
        "bdev_set_qos_limit",
        json!({"name": "RpcQosWalk", "rw_ios_per_sec": 10_000}),
    )
    .unwrap();
    // The walk's visit is a message to the channel's thread.
    t.poll(0);
    let (done, cb) = counter();
    for i in 0..100 {
        t.enter(|| d.read_blocks(&ch, IoBuf::new(512), i, 1, cb()))
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while done.get() < 100 {
        t.poll(0);
        let slices = (bdev::ticks::ticks() - t0) / slice() + 1;
        assert!(
            done.get() <= 10 * slices,
            "{} I/O done within {slices} slices of 10: the channel did not learn of the limit",
            done.get()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "queued I/O never released"
        );
    }
    t.enter(|| drop(ch));
    t.shutdown().unwrap();
    t.destroy().unwrap();
    d.close();
    call("bdev_null_delete", json!({"name": "RpcQosWalk"})).unwrap();
}
