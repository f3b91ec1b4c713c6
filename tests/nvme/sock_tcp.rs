//! The socket layer over 127.0.0.1 and ::1: options, framing of a byte
//! stream that arrives in pieces, batched sends that resume after a
//! partial write.

use spdk_io::sock::{RecvBuffer, SendQueue, SockError, Socket, SocketOpts};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// A connected pair: our non-blocking socket and the peer's plain stream.
fn pair(bind: &str, opts: &SocketOpts) -> (Socket, TcpStream) {
    let l = TcpListener::bind(bind).expect("bind loopback");
    let addr = l.local_addr().unwrap();
    let s = Socket::connect(addr, opts).expect("connect");
    let (peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    (s, peer)
}

/// Frames of this test: a 2-byte big-endian length, then that many bytes.
fn frame_len(b: &[u8]) -> Option<usize> {
    (b.len() >= 2).then(|| 2 + u16::from_be_bytes([b[0], b[1]]) as usize)
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// Polls `f` until it yields, for at most 10 s.
fn poll_until<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out polling"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_connection_over_ipv4_and_ipv6_loopback_has_nodelay_and_is_non_blocking() {
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (s, _peer) = pair(bind, &SocketOpts::default());
        assert!(s.nodelay().unwrap(), "{bind}: TCP_NODELAY on");
        let mut b = [0u8; 16];
        assert_eq!(
            s.recv(&mut b).unwrap(),
            0,
            "{bind}: nothing to read returns at once"
        );
    }
}

#[test]
fn a_socket_priority_is_applied() {
    let opts = SocketOpts {
        priority: Some(3),
        ..SocketOpts::default()
    };
    let (s, _peer) = pair("127.0.0.1:0", &opts);
    assert_eq!(s.priority().unwrap(), 3);
}

#[test]
fn connecting_where_nobody_listens_names_the_address() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    drop(l);
    let e = Socket::connect(addr, &SocketOpts::default()).unwrap_err();
    assert!(matches!(e, SockError::Connect { .. }), "{e}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}

#[test]
fn a_frame_arriving_in_pieces_is_yielded_only_when_whole() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut rb = RecvBuffer::new(256);
    let f = framed(b"hello, frame");
    for (i, byte) in f.iter().enumerate() {
        peer.write_all(&[*byte]).unwrap();
        poll_until(|| (rb.fill(&s).unwrap() > 0).then_some(()));
        let got = rb.next_frame(frame_len).unwrap().map(<[u8]>::to_vec);
        if i + 1 < f.len() {
            assert_eq!(got, None, "incomplete after {} bytes", i + 1);
        } else {
            assert_eq!(got.as_deref(), Some(&f[..]));
        }
    }
    assert!(rb.is_empty());
}

#[test]
fn several_frames_in_one_read_are_yielded_one_by_one() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut rb = RecvBuffer::new(256);
    let frames: Vec<Vec<u8>> = (0..5u8)
        .map(|i| framed(&vec![i; 10 + i as usize]))
        .collect();
    peer.write_all(&frames.concat()).unwrap();
    let total: usize = frames.iter().map(Vec::len).sum();
    poll_until(|| {
        rb.fill(&s).unwrap();
        (rb.len() == total).then_some(())
    });
    for f in &frames {
        assert_eq!(rb.next_frame(frame_len).unwrap(), Some(&f[..]));
    }
    assert_eq!(rb.next_frame(frame_len).unwrap(), None);
}

#[test]
fn frames_keep_coming_whole_across_the_end_of_the_buffer() {
    // 7-byte frames through a 16-byte buffer: the third straddles the end.
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut rb = RecvBuffer::new(16);
    let frames: Vec<Vec<u8>> = (0..20u8).map(|i| framed(&[i; 5])).collect();
    peer.write_all(&frames.concat()).unwrap();
    let mut got = Vec::new();
    poll_until(|| {
        rb.fill(&s).unwrap();
        while let Some(f) = rb.next_frame(frame_len).unwrap() {
            got.push(f.to_vec());
        }
        (got.len() == frames.len()).then_some(())
    });
    assert_eq!(got, frames);
}

#[test]
fn a_frame_longer_than_the_buffer_is_refused() {
    let mut rb = RecvBuffer::new(8);
    let e = rb.next_frame(|_| Some(9)).unwrap_err();
    assert!(
        matches!(
            e,
            SockError::FrameTooLarge {
                len: 9,
                capacity: 8
            }
        ),
        "{e}"
    );
}

#[test]
fn a_payload_streams_out_in_pieces() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut rb = RecvBuffer::new(64);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    peer.write_all(&data).unwrap();
    let mut out = Vec::new();
    poll_until(|| {
        rb.fill(&s).unwrap();
        out.extend_from_slice(rb.take(13));
        (out.len() == data.len()).then_some(())
    });
    assert_eq!(out, data);
}

#[test]
fn fill_max_reads_no_more_than_asked_and_leaves_the_rest_in_the_socket() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut rb = RecvBuffer::new(4096);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 3) as u8).collect();
    peer.write_all(&data).unwrap();
    let got = poll_until(|| Some(rb.fill_max(&s, 24).unwrap()).filter(|&n| n > 0));
    assert_eq!(got, 24, "one header's worth, though 1000 bytes wait");
    assert_eq!(rb.peek(), &data[..24]);
    let mut rest = vec![0u8; 976];
    let mut n = 0;
    poll_until(|| {
        n += s.recv(&mut rest[n..]).unwrap();
        (n == rest.len()).then_some(())
    });
    assert_eq!(rest, &data[24..], "the rest stayed in the socket, in order");
}

#[test]
fn a_closed_peer_is_reported_as_closed() {
    let (s, peer) = pair("127.0.0.1:0", &SocketOpts::default());
    drop(peer);
    let mut rb = RecvBuffer::new(64);
    let e = poll_until(|| rb.fill(&s).err());
    assert!(matches!(e, SockError::Closed(_)), "{e}");
}

#[test]
fn headers_and_payloads_go_out_in_order_with_one_flush() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let payloads: Vec<Vec<u8>> = (0..4u8).map(|i| vec![0xa0 + i; 100]).collect();
    let mut q = SendQueue::new(1024, 32);
    let mut want = Vec::new();
    for (k, p) in payloads.iter().enumerate() {
        let hdr = [b'H', k as u8];
        q.push(&hdr).unwrap();
        q.push_payload(k as u64, 10, 50).unwrap();
        want.extend_from_slice(&hdr);
        want.extend_from_slice(&p[10..60]);
    }
    assert_eq!(q.queued_bytes(), want.len());
    let sent = q.flush(&s, |k| &payloads[k as usize][..]).unwrap();
    assert_eq!(sent, want.len());
    assert!(q.is_empty());
    let mut got = vec![0u8; want.len()];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_partial_send_resumes_where_it_stopped() {
    let opts = SocketOpts {
        send_buf_size: Some(4096),
        ..SocketOpts::default()
    };
    let (s, mut peer) = pair("127.0.0.1:0", &opts);
    // Far more than the send buffer and the peer's receive window hold.
    let big: Vec<u8> = (0..(8u32 << 20)).map(|i| (i ^ (i >> 9)) as u8).collect();
    let mut q = SendQueue::new(64, 8);
    q.push(b"start").unwrap();
    q.push_payload(0, 0, big.len()).unwrap();
    q.push(b"end").unwrap();
    let total = q.queued_bytes();
    let first = q.flush(&s, |_| &big[..]).unwrap();
    assert!(first < total, "the kernel took all {total} bytes at once");
    assert_eq!(q.queued_bytes(), total - first);

    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; total];
        peer.read_exact(&mut got).unwrap();
        got
    });
    poll_until(|| {
        q.flush(&s, |_| &big[..]).unwrap();
        q.is_empty().then_some(())
    });
    let got = reader.join().unwrap();
    assert_eq!(&got[..5], b"start");
    assert!(got[5..5 + big.len()] == big[..], "payload intact");
    assert_eq!(&got[5 + big.len()..], b"end");
}

#[test]
fn a_full_send_queue_says_so_and_takes_more_after_a_flush() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut q = SendQueue::new(8, 2);
    q.push(b"1234").unwrap();
    q.push_payload(0, 0, 4).unwrap();
    let e = q.push(b"x").unwrap_err();
    assert!(
        matches!(e, SockError::SendQueueFull { what: "entries" }),
        "{e}"
    );
    q.flush(&s, |_| b"abcd").unwrap();
    q.push(b"12345678").unwrap();
    let e = q.push(b"9").unwrap_err();
    assert!(
        matches!(
            e,
            SockError::SendQueueFull {
                what: "staging bytes"
            }
        ),
        "{e}"
    );
    q.flush(&s, |_| b"").unwrap();
    let mut got = [0u8; 16];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"1234abcd12345678");
}

#[test]
fn a_payload_shorter_than_queued_is_an_error_not_a_panic() {
    let (s, _peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut q = SendQueue::new(8, 2);
    q.push_payload(7, 4, 10).unwrap();
    let e = q.flush(&s, |_| &[0u8; 8][..]).unwrap_err();
    assert!(
        matches!(
            e,
            SockError::PayloadShort {
                key: 7,
                need: 14,
                have: 8
            }
        ),
        "{e}"
    );
}

#[test]
fn room_is_what_the_next_fill_can_read_so_a_shorter_read_means_the_socket_was_drained() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let mut rb = RecvBuffer::new(16);
    assert_eq!(rb.room(), 16);
    peer.write_all(&[7; 10]).unwrap();
    let got = poll_until(|| Some(rb.fill(&s).unwrap()).filter(|&n| n > 0));
    assert_eq!(got, 10);
    assert!(got < 16, "a short read: nothing else was waiting");
    assert_eq!(rb.room(), 6);
    rb.consume(4);
    assert_eq!(rb.room(), 6, "free space at the end only");
    peer.write_all(&[8; 12]).unwrap();
    poll_until(|| Some(rb.fill(&s).unwrap()).filter(|&n| n > 0));
    assert_eq!(rb.len(), 12);
    assert_eq!(
        rb.room(),
        4,
        "the end reached: waiting bytes move to the front first"
    );
}

#[test]
fn a_connection_with_a_local_address_comes_from_it() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    // A source port known to be free: taken from a listener that is then
    // closed. The connection must come from exactly that address and port.
    let src = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let opts = SocketOpts {
        local_addr: Some(src),
        ..SocketOpts::default()
    };
    let s = Socket::connect(l.local_addr().unwrap(), &opts).expect("connect from a fixed port");
    let (_, from) = l.accept().unwrap();
    assert_eq!(from, src);
    assert_eq!(s.local_addr(), Some(from));
    // A source address that cannot be bound (a listening socket holds it)
    // fails the connect, saying so.
    let bad = SocketOpts {
        local_addr: Some(l.local_addr().unwrap()),
        ..SocketOpts::default()
    };
    let e = Socket::connect(l.local_addr().unwrap(), &bad).unwrap_err();
    assert!(matches!(e, SockError::Bind { .. }), "{e}");
}

#[test]
fn an_empty_push_queues_nothing_and_a_flush_after_it_returns() {
    let (s, mut peer) = pair("127.0.0.1:0", &SocketOpts::default());
    let (tx, rx) = std::sync::mpsc::channel();
    // In a thread: a flush that never returned would hang the test run.
    std::thread::spawn(move || {
        let mut q = SendQueue::new(64, 8);
        q.push(&[]).unwrap();
        let empty_after_push = q.is_empty();
        let sent_nothing = q.flush(&s, |_| &[]).unwrap();
        q.push(b"ab").unwrap();
        let sent = q.flush(&s, |_| &[]).unwrap();
        tx.send((empty_after_push, sent_nothing, sent, q.is_empty()))
            .unwrap();
    });
    let (empty_after_push, sent_nothing, sent, empty) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the flush did not return");
    assert!(empty_after_push, "an empty push queued a piece");
    assert_eq!(sent_nothing, 0);
    assert_eq!(sent, 2);
    assert!(empty);
    let mut got = [0u8; 2];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ab");
}
