//! A minimal JSON-RPC client for the tests that run the application
//! framework in-process: one request on a fresh Unix-socket connection,
//! read until the answer parses (bounded by a 60 s read timeout).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Sends `method` with `params` to the server at `sock` and returns the
/// whole response object.
pub fn call(sock: &Path, method: &str, params: Value) -> Value {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    s.write_all(req.to_string().as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
            return v;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before a response to {method}");
        buf.extend_from_slice(&chunk[..n]);
    }
}
