//! Asynchronous events and completion batching over NVMe/TCP against
//! spdk-io's target on 127.0.0.1: an AER completed by a namespace added
//! to the subsystem runs the callback after the namespace list is read
//! again; `process_completions(max)` delivers at most `max` completions.

use crate::nvmf_common::{self, malloc, qp_opts, subsystem, Done, Tgt, HOSTNQN};
use spdk_io::env::DmaBuf;
use spdk_io::nvme;
use spdk_io::nvme::spec::features::AsyncEvent;
use spdk_io::nvmf::TransportOpts;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn a_namespace_added_by_the_target_completes_an_aer_and_the_callback_sees_it_listed() {
    let nqn = "nqn.2016-06.io.spdk-io:aer";
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    subsystem(&t, nqn, "TcpAer1", 1024, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &nvmf_common::opts(false)).unwrap();
    assert_eq!(c.namespace_ids(), vec![1]);
    let events: Arc<Mutex<Vec<AsyncEvent>>> = Arc::default();
    let ev = events.clone();
    c.register_aer_callback(move |e| ev.lock().unwrap().push(e));
    // Nothing happened yet: polling runs no callback.
    c.process_admin_completions().unwrap();
    assert!(events.lock().unwrap().is_empty());

    malloc("TcpAer2", 2048, 512);
    let s = t.target.find(nqn).unwrap();
    assert_eq!(s.add_ns("TcpAer2", None, None, None).unwrap(), 2);
    let start = Instant::now();
    while events.lock().unwrap().is_empty() {
        c.process_admin_completions().unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no AER completed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let e = events.lock().unwrap()[0];
    assert!(e.is_namespace_attribute_changed(), "{e:?}");
    assert_eq!(e.log_page, 0x04, "Changed Namespace List");
    assert_eq!(
        c.namespace_ids(),
        vec![1, 2],
        "rescanned before the callback"
    );
    assert_eq!(c.namespace(2).unwrap().num_blocks(), 2048);

    // The AER was submitted again: a second change is reported too.
    malloc("TcpAer3", 512, 512);
    assert_eq!(s.add_ns("TcpAer3", None, None, None).unwrap(), 3);
    let start = Instant::now();
    while events.lock().unwrap().len() < 2 {
        c.process_admin_completions().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10), "no second AER");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(c.namespace_ids(), vec![1, 2, 3]);
}

#[test]
fn process_completions_delivers_at_most_max_and_keeps_the_rest_for_later() {
    let nqn = "nqn.2016-06.io.spdk-io:max";
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    subsystem(&t, nqn, "TcpMax", 1024, true);
    let c = nvme::connect(&t.trid(nqn, HOSTNQN), &nvmf_common::opts(false)).unwrap();
    let ns = c.namespace(1).unwrap();
    let mut qp = c.alloc_io_qpair(qp_opts()).unwrap();
    let done: Done = Rc::new(RefCell::new(Vec::new()));
    for i in 0..8 {
        let d = done.clone();
        qp.read(&ns, DmaBuf::alloc(512, 4096).unwrap(), i, 1, move |_, c| {
            d.borrow_mut().push(c)
        })
        .map_err(|e| e.error)
        .unwrap();
    }
    qp.flush();
    // Wait for the first answer (the target's thread may be slow to run on
    // a loaded or emulated CPU), then let the rest of the batch arrive, so
    // one read of the socket holds several.
    let start = Instant::now();
    while qp.process_completions(1).unwrap() == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "no answer");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(done.borrow().len(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(qp.process_completions(3).unwrap(), 3);
    assert_eq!(done.borrow().len(), 4);
    let start = Instant::now();
    while done.borrow().len() < 8 {
        assert!(qp.process_completions(2).unwrap() <= 2);
        assert!(start.elapsed() < Duration::from_secs(10), "I/O hung");
    }
    assert!(done.borrow().iter().all(|c| c.result.is_ok()));
    assert_eq!(qp.outstanding(), 0);
}
