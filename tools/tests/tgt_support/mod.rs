//! Starting `spdk-io tgt` on a private socket and talking JSON-RPC to it
//! over the Unix socket, for the target's tests.
#![allow(dead_code)]

pub mod load;

use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for the target or a response.
pub const WAIT: Duration = Duration::from_secs(30);

/// A private directory for one target's socket and files.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "spdk-io-tgt-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A running target; SIGTERM and wait on drop.
pub struct Tgt {
    pub child: Option<Child>,
    pub sock: PathBuf,
    pub dir: PathBuf,
}

/// The `spdk-io tgt` command on `sock` with `--no-huge` and extra args.
pub fn command(sock: &Path, args: &[&str]) -> Command {
    let mut c = command_hugepages(sock, &["--no-huge"]);
    c.args(args);
    c
}

/// The `spdk-io tgt` command on `sock` with extra args, on hugepages (a
/// PCIe controller needs memory whose addresses do not move).
pub fn command_hugepages(sock: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spdk-io"));
    c.arg("tgt").arg("-r").arg(sock).args(args);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

impl Tgt {
    /// Starts a target and waits until it answers spdk_get_version.
    pub fn start(tag: &str, args: &[&str]) -> Tgt {
        let dir = scratch(tag);
        let sock = dir.join("spdk.sock");
        Self::start_at(dir, sock, args)
    }

    /// Starts a target on a given socket.
    pub fn start_at(dir: PathBuf, sock: PathBuf, args: &[&str]) -> Tgt {
        let cmd = command(&sock, args);
        Self::spawn(dir, sock, cmd)
    }

    /// Starts `cmd` (a target listening on `sock`) and waits until it
    /// answers spdk_get_version.
    pub fn spawn(dir: PathBuf, sock: PathBuf, mut cmd: Command) -> Tgt {
        let mut child = cmd.spawn().expect("spawn spdk-io tgt");
        drain_output(&mut child);
        let mut t = Tgt {
            child: Some(child),
            sock,
            dir,
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(mut s) = UnixStream::connect(&t.sock) {
                if call(&mut s, "spdk_get_version", None)
                    .get("result")
                    .is_some()
                {
                    return t;
                }
            }
            if t.child.as_mut().unwrap().try_wait().unwrap().is_some() {
                let (st, err) = wait_exit(t.child.as_mut().unwrap());
                t.child = None;
                panic!("spdk-io tgt exited ({st}) at start: {err}");
            }
            assert!(
                Instant::now() < deadline,
                "spdk-io tgt did not listen within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A new connection.
    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.sock).expect("connect to the target");
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    }

    /// One call on a new connection; the whole response object.
    pub fn call(&self, method: &str, params: Option<Value>) -> Value {
        call(&mut self.connect(), method, params)
    }

    /// The `result` of a call that must succeed.
    pub fn ok(&self, method: &str, params: Option<Value>) -> Value {
        let r = self.call(method, params);
        r.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{method} failed: {r}"))
    }

    /// Exports bdev `bdev` as subsystem `nqn` (any host; `serial` when
    /// given) on 127.0.0.1:`port`; the TCP transport must exist.
    pub fn export(&self, nqn: &str, bdev: &str, port: u16, serial: Option<&str>) {
        let mut sub = json!({"nqn": nqn, "allow_any_host": true});
        if let Some(sn) = serial {
            sub["serial_number"] = json!(sn);
        }
        self.ok("nvmf_create_subsystem", Some(sub));
        self.ok(
            "nvmf_subsystem_add_ns",
            Some(json!({"nqn": nqn, "namespace": {"bdev_name": bdev}})),
        );
        self.ok(
            "nvmf_subsystem_add_listener",
            Some(
                json!({"nqn": nqn, "listen_address": {"trtype": "TCP", "adrfam": "IPv4",
                "traddr": "127.0.0.1", "trsvcid": port.to_string()}}),
            ),
        );
    }

    /// Asserts the target still answers spdk_get_version.
    pub fn assert_alive(&self) {
        let v = self.ok("spdk_get_version", None);
        assert!(v["version"].as_str().unwrap().starts_with("SPDK v"), "{v}");
    }

    /// Sends `sig` and waits for the exit (bounded).
    pub fn stop_with(&mut self, sig: nix::sys::signal::Signal) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("target running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, sig);
        wait_exit(&mut child)
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Standard error of the targets started by [`Tgt::spawn`], by pid.
static DRAINED: Mutex<Option<HashMap<u32, Captured>>> = Mutex::new(None);

/// What a drain thread has read from a target's stderr so far.
type Captured = Arc<Mutex<Vec<u8>>>;

/// Reads a long-lived target's stdout (discarded) and stderr (kept for
/// [`wait_exit`]) as it writes them, so that a chatty target can never
/// block on a full pipe during a test.
fn drain_output(child: &mut Child) {
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut out, &mut std::io::sink());
        });
    }
    if let Some(mut err) = child.stderr.take() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = err.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        DRAINED
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(child.id(), buf);
    }
}

/// Waits (bounded) for a child to exit; its status and stderr.
pub fn wait_exit(child: &mut Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            let drained = DRAINED
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|m| m.remove(&child.id()));
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            } else if let Some(buf) = drained {
                // The drain thread ends when the pipe closes, at the exit.
                let until = Instant::now() + Duration::from_secs(5);
                while Arc::strong_count(&buf) > 1 && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
                err = String::from_utf8_lossy(&buf.lock().unwrap()).into_owned();
            }
            return (st, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("target did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Tgt {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_with(nix::sys::signal::Signal::SIGTERM);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A request object.
pub fn request(id: u64, method: &str, params: Option<Value>) -> Value {
    let mut r = json!({"jsonrpc": "2.0", "method": method, "id": id});
    if let Some(p) = params {
        r["params"] = p;
    }
    r
}

/// Reads one complete JSON value from `s` (as rpc.py does: until what was
/// received parses), keeping what follows in `buf`.
pub fn read_value(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<Value> {
    loop {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
        match it.next() {
            Some(Ok(v)) => {
                let used = it.byte_offset();
                buf.drain(..used);
                return Some(v);
            }
            Some(Err(e)) if !e.is_eof() => panic!("bad JSON from the target: {e}"),
            _ => {}
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading a response: {e}"),
        }
    }
}

/// One request, one response.
pub fn call(s: &mut UnixStream, method: &str, params: Option<Value>) -> Value {
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(request(1, method, params).to_string().as_bytes())
        .unwrap();
    read_value(s, &mut Vec::new()).expect("the target closed the connection")
}

/// Whether the target closed `s` (a read returns end of stream).
pub fn is_closed(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

impl Tgt {
    /// A call if the socket still accepts connections, else `None`.
    pub fn call_if_up(&self) -> Option<Value> {
        let mut s = UnixStream::connect(&self.sock).ok()?;
        Some(call(&mut s, "spdk_get_version", None))
    }
}

impl Tgt {
    /// Open file descriptors of the target process.
    pub fn fd_count(&self) -> usize {
        let pid = self.child.as_ref().expect("target running").id();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    }

    /// Waits (bounded) until the target has at most `n` descriptors open;
    /// panics with the count it kept.
    pub fn assert_fds_back_to(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.fd_count();
            if now <= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the target keeps {now} descriptors open, {n} before"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The first 64 MiB of one JSON-RPC request (`spdk_get_version` with a
/// string parameter that never ends): far over the target's request limit.
pub fn huge_request() -> Vec<u8> {
    let mut big =
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"spdk_get_version\",\"params\":{\"x\":\""
            .to_vec();
    big.resize(64 << 20, b'a');
    big
}
