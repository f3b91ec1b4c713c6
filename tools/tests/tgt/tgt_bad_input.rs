//! `spdk-io tgt` under bad input: malformed JSON, a truncated request then
//! a close, a 64 MiB request, 200 connections at once, a client that never
//! reads, a client gone with requests in flight. Each gets SPDK's error or a
//! closed connection; the target keeps its descriptor count and still
//! answers `spdk_get_version` afterwards.

use crate::tgt_support;

use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};
use tgt_support::*;

#[test]
fn malformed_json_gets_a_parse_error_and_the_connection_is_closed() {
    let t = Tgt::start("parse", &[]);
    let mut s = t.connect();
    s.write_all(b"{\"method\": spdk_get_version}").unwrap();
    let v = read_value(&mut s, &mut Vec::new()).unwrap();
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "Parse error"}})
    );
    assert!(is_closed(&mut s));
    t.assert_alive();
}

#[test]
fn a_truncated_request_followed_by_a_close_is_dropped() {
    let t = Tgt::start("trunc", &[]);
    let mut s = t.connect();
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"spdk_get_ver")
        .unwrap();
    drop(s);
    t.assert_alive();
}

#[test]
fn a_64_mib_request_is_refused_and_its_connection_closed() {
    let t = Tgt::start("huge", &[]);
    let mut s = t.connect();
    s.set_write_timeout(Some(WAIT)).unwrap();
    let big = huge_request();
    // The target answers and closes once it has seen too much: the rest of
    // the write then fails, which is expected.
    let _ = s.write_all(&big);
    let mut buf = Vec::new();
    let v = read_value(&mut s, &mut buf).expect("an error before the close");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(is_closed(&mut s));
    t.assert_alive();
}

#[test]
fn two_hundred_connections_at_once_are_all_served() {
    let t = Tgt::start("many", &[]);
    let fds = t.fd_count();
    let mut conns: Vec<_> = (0..200).map(|_| t.connect()).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(
            request(i as u64, "spdk_get_version", None)
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    }
    for (i, s) in conns.iter_mut().enumerate() {
        let v = read_value(s, &mut Vec::new()).unwrap();
        assert_eq!(v["id"], i as u64);
    }
    drop(conns);
    t.assert_fds_back_to(fds);
    t.assert_alive();
}

#[test]
fn a_client_that_never_reads_does_not_stop_the_others() {
    let t = Tgt::start("noread", &[]);
    let mut s = t.connect();
    s.set_nonblocking(true).unwrap();
    let one = request(1, "rpc_get_methods", None).to_string();
    // Write until the socket is full: the target stops reading from this
    // client once its unread responses pile up.
    let mut sent = 0usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut stalls = 0;
    while sent < 64 << 20 && std::time::Instant::now() < deadline {
        match s.write(one.as_bytes()) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stalls += 1;
                if stalls > 50 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        stalls > 50,
        "the target kept reading {sent} bytes from a client that reads nothing"
    );
    t.assert_alive();
    let fds = t.fd_count();
    drop(s);
    t.assert_fds_back_to(fds - 1);
    t.assert_alive();
}

#[test]
fn a_client_that_disconnects_with_requests_in_flight_leaves_the_target_serving() {
    let t = Tgt::start("gone", &["--wait-for-rpc"]);
    let fds = t.fd_count();
    let mut s = t.connect();
    for i in 0..10 {
        s.write_all(
            request(i, "framework_wait_init", None)
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    drop(s);
    assert_eq!(t.ok("framework_start_init", None), json!(true));
    t.assert_fds_back_to(fds);
    t.assert_alive();
}

#[test]
fn nothing_after_a_parse_error_on_the_same_connection_is_handled() {
    let t = Tgt::start("afterparse", &[]);
    let mut s = t.connect();
    let text = format!("junk {}", request(7, "spdk_get_version", None));
    s.write_all(text.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let v = read_value(&mut s, &mut buf).unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert!(
        read_value(&mut s, &mut buf).is_none(),
        "a request after the parse error was answered"
    );
    t.assert_alive();
}

#[test]
fn partial_requests_over_the_total_buffer_budget_are_paused_and_small_requests_still_get_in() {
    let mut t = Tgt::start("budget", &[]);
    // 20 clients each send 4,000,000 bytes of a request they never finish
    // (under the 4 MiB request limit): 80 MB in all, over the 64 MiB the
    // server lets its connections hold together.
    let mut head =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"spdk_get_version\",\"params\":{\"x\":\""
            .to_vec();
    head.resize(4_000_000, b'a');
    let mut flood = Vec::new();
    let mut unsent = 0usize;
    for _ in 0..20 {
        let mut s = t.connect();
        s.set_nonblocking(true).unwrap();
        // Write until the whole head is sent or the target has taken
        // nothing for 2 s (it pauses connections over the budget); a
        // target slowed by a loaded machine still reads, so a short
        // stall does not end the flood before the budget is reached.
        let mut at = 0;
        let start = Instant::now();
        let mut progress = Instant::now();
        while at < head.len()
            && progress.elapsed() < Duration::from_secs(2)
            && start.elapsed() < Duration::from_secs(60)
        {
            match s.write(&head[at..]) {
                Ok(n) => {
                    at += n;
                    progress = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        unsent += head.len() - at;
        flood.push(s);
    }
    assert!(
        unsent > 0,
        "the target read all 80 MB of unfinished requests"
    );
    // A small request on a new connection is still answered.
    t.assert_alive();
    drop(flood);
    // Back under the budget: a 1 MiB request is read whole and answered.
    let mut s = t.connect();
    let mut big =
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"spdk_get_version\",\"params\":{\"x\":\""
            .to_vec();
    big.resize(1 << 20, b'a');
    big.extend_from_slice(b"\"}}");
    s.write_all(&big).unwrap();
    let v = read_value(&mut s, &mut Vec::new()).expect("an answer to the 1 MiB request");
    assert_eq!(v["id"], 2, "{v}");
    let (_, err) = t.stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(err.contains("over the budget of"), "{err}");
    assert!(err.contains("back under the budget"), "{err}");
}
