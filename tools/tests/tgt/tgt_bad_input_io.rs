//! The bad-input list again, while I/O runs on the target's reactor: one
//! `spdk-io tgt` on one core (the RPC server and the NVMe-oF poll group
//! share it) exports a malloc bdev over NVMe/TCP on 127.0.0.1, and a read
//! loop of this test keeps 4 reads in flight through it. While each
//! hostile client is at it, reads keep completing between two
//! `spdk_get_version` answers; after it, the target's descriptors are
//! back to their count before and its memory has not grown without bound.

use crate::tgt_support;

use serde_json::json;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tgt_support::load::{export_malloc, Load};
use tgt_support::*;

/// A one-core target whose output goes to files (nothing it logs can fill
/// a pipe nobody reads), with the read loop running against it.
fn target_under_load(tag: &str) -> (Tgt, Load) {
    let dir = scratch(tag);
    let sock = dir.join("spdk.sock");
    let mut cmd = command(&sock, &["-m", "0x1"]);
    cmd.stdout(Stdio::from(
        std::fs::File::create(dir.join("out.log")).unwrap(),
    ))
    .stderr(Stdio::from(
        std::fs::File::create(dir.join("err.log")).unwrap(),
    ));
    let t = Tgt::spawn(dir, sock, cmd);
    let port = export_malloc(&t);
    let load = Load::start(port);
    (t, load)
}

/// The target's resident memory in KiB.
fn rss_kib(t: &Tgt) -> u64 {
    let pid = t.child.as_ref().unwrap().id();
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

fn send(s: &mut UnixStream, v: &serde_json::Value) {
    s.write_all(v.to_string().as_bytes()).unwrap();
}

#[test]
fn io_keeps_completing_through_every_hostile_client_and_nothing_leaks() {
    let (t, load) = target_under_load("hostile-io");
    load.assert_advancing(&t, "before any hostile client");
    // The connections of those calls are closed by the next poll.
    std::thread::sleep(Duration::from_millis(100));
    let fds = t.fd_count();

    // Malformed JSON: SPDK's parse error, then the connection is closed.
    let mut s = t.connect();
    s.write_all(b"{\"method\": spdk_get_version}").unwrap();
    load.assert_advancing(&t, "a malformed request was sent");
    let v = read_value(&mut s, &mut Vec::new()).expect("a parse error");
    assert_eq!(v["error"]["code"], -32700, "{v}");
    assert!(is_closed(&mut s));
    drop(s);
    t.assert_fds_back_to(fds);

    // A truncated request, held open, then a close.
    let mut s = t.connect();
    s.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"spdk_get_ver")
        .unwrap();
    load.assert_advancing(&t, "a truncated request is pending");
    drop(s);
    t.assert_fds_back_to(fds);
    load.assert_advancing(&t, "after a truncated request and a close");

    // Unknown methods and wrong parameter types: errors, and the same
    // connection is still served.
    let mut s = t.connect();
    let mut buf = Vec::new();
    send(&mut s, &request(1, "no_such_method", None));
    let v = read_value(&mut s, &mut buf).unwrap();
    assert_eq!(v["error"]["code"], -32601, "{v}");
    send(
        &mut s,
        &request(2, "bdev_get_bdevs", Some(json!({"name": 5}))),
    );
    let v = read_value(&mut s, &mut buf).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    send(
        &mut s,
        &request(3, "bdev_malloc_create", Some(json!({"num_blocks": "many"}))),
    );
    let v = read_value(&mut s, &mut buf).unwrap();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    load.assert_advancing(&t, "after unknown methods and wrong types");
    send(&mut s, &request(4, "spdk_get_version", None));
    let v = read_value(&mut s, &mut buf).unwrap();
    assert_eq!(v["id"], 4, "{v}");
    drop(s);
    t.assert_fds_back_to(fds);

    // A 64 MiB request: the first 3 MiB are held (under the limit), then
    // the rest is refused with -32600 and the connection closed.
    let mut s = t.connect();
    s.set_write_timeout(Some(WAIT)).unwrap();
    let big = huge_request();
    s.write_all(&big[..3 << 20]).unwrap();
    load.assert_advancing(&t, "3 MiB of one request are pending");
    let _ = s.write_all(&big[3 << 20..]);
    drop(big);
    let v = read_value(&mut s, &mut Vec::new()).expect("an error before the close");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(is_closed(&mut s));
    drop(s);
    t.assert_fds_back_to(fds);
    load.assert_advancing(&t, "after a 64 MiB request");

    // 200 connections at once, each with a request not yet read.
    let mut conns: Vec<_> = (0..200).map(|_| t.connect()).collect();
    for (i, s) in conns.iter_mut().enumerate() {
        send(s, &request(i as u64, "spdk_get_version", None));
    }
    load.assert_advancing(&t, "200 connections are open");
    for (i, s) in conns.iter_mut().enumerate() {
        let v = read_value(s, &mut Vec::new()).unwrap();
        assert_eq!(v["id"], i as u64);
    }
    drop(conns);
    t.assert_fds_back_to(fds);

    // A client that writes requests and never reads: the target stops
    // reading it once its responses pile up, and holds them in bounded
    // memory.
    let rss = rss_kib(&t);
    let mut s = t.connect();
    s.set_nonblocking(true).unwrap();
    // Requests back to back, written in the largest pieces the socket
    // takes: as many as possible arrive in one read of the target.
    let many = request(1, "rpc_get_methods", None)
        .to_string()
        .repeat(16 << 10);
    let (mut sent, mut stalls) = (0usize, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stalls <= 50 && sent < many.len() && Instant::now() < deadline {
        match s.write(&many.as_bytes()[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                stalls += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("write: {e}"),
        }
    }
    assert!(
        stalls > 50,
        "the target read {sent} bytes from a client that reads nothing"
    );
    load.assert_advancing(&t, "a client does not read its responses");
    let grown = rss_kib(&t).saturating_sub(rss);
    assert!(
        grown < 16 << 10,
        "the unread responses of one client took {grown} KiB"
    );
    drop(s);
    t.assert_fds_back_to(fds);

    // A client gone with requests in flight (each waits 2 s for a bdev).
    let mut s = t.connect();
    for i in 0..10 {
        send(
            &mut s,
            &request(
                i,
                "bdev_get_bdevs",
                Some(json!({"name": "Absent", "timeout": 2000})),
            ),
        );
    }
    load.assert_advancing(&t, "10 requests are in flight");
    drop(s);
    load.assert_advancing(&t, "a client left with requests in flight");
    t.assert_fds_back_to(fds);

    load.assert_advancing(&t, "after every hostile client");
    load.stop().expect("the read loop");
}
