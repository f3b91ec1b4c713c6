//! I/O on a target's reactor while a test does something else: the
//! target exports a malloc bdev over NVMe/TCP on 127.0.0.1, and a thread of
//! the test reads it with spdk-io's initiator at a small queue depth,
//! counting completions, until it is told to stop.

use super::{Tgt, WAIT};
use serde_json::json;
use spdk_io::env::{self, DmaBuf, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, QPairOpts};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NQN: &str = "nqn.2016-06.io.spdk-io:load";
/// Reads in flight.
const DEPTH: usize = 4;
/// The load never runs longer than this, stopped or not.
const LOAD_MAX: Duration = Duration::from_secs(600);

/// A running read loop against a target.
pub struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

/// Creates `Load0` (16 MiB malloc) on `t` and exports it over TCP on
/// 127.0.0.1; the port.
pub fn export_malloc(t: &Tgt) -> u16 {
    let port = super::free_port();
    t.ok(
        "bdev_malloc_create",
        Some(json!({"name": "Load0", "num_blocks": 32768, "block_size": 512})),
    );
    t.ok("nvmf_create_transport", Some(json!({"trtype": "TCP"})));
    t.export(NQN, "Load0", port, None);
    port
}

impl Load {
    /// Connects to the export on `port` and starts reading; returns once
    /// the first read completed.
    pub fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let (s, d, e) = (stop.clone(), done.clone(), error.clone());
        let thread = std::thread::spawn(move || {
            if let Err(err) = read_loop(port, &s, d) {
                *e.lock().unwrap() = Some(err);
            }
        });
        let l = Load {
            stop,
            done,
            error,
            thread: Some(thread),
        };
        l.wait_past(0, "the first read");
        l
    }

    /// Reads completed so far.
    pub fn completed(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Waits (bounded by WAIT) until more than `n` reads completed; panics
    /// saying `what` if they do not, or if the loop ended.
    pub fn wait_past(&self, n: u64, what: &str) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.completed();
            if now > n {
                return now;
            }
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                panic!(
                    "the read loop ended ({what}): {:?}",
                    self.error.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "I/O stalled at {now} reads for {WAIT:?}: {what}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asserts reads complete between two `spdk_get_version` answers of
    /// `t`, taken now (while whatever `what` names is going on).
    pub fn assert_advancing(&self, t: &Tgt, what: &str) {
        t.assert_alive();
        let before = self.completed();
        self.wait_past(before, what);
        t.assert_alive();
        assert!(self.completed() > before, "{what}");
    }

    /// Stops the loop and waits for it; its outcome.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| "the read loop panicked".to_string())?;
        }
        match self.error.lock().unwrap().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects and keeps DEPTH reads of 4 KiB in flight until `stop` (or
/// LOAD_MAX), adding each completion to `done`.
fn read_loop(port: u16, stop: &AtomicBool, done: Arc<AtomicU64>) -> Result<(), String> {
    env::init_once(EnvOpts::no_huge()).map_err(|e| format!("env: {e}"))?;
    let trid = format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{NQN}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let c =
        nvme::connect(&trid, &ControllerOpts::default()).map_err(|e| format!("connect: {e}"))?;
    let ns = c.namespace(1).map_err(|e| format!("namespace 1: {e}"))?;
    let mut qp = c
        .alloc_io_qpair(QPairOpts {
            io_queue_size: 16,
            ..QPairOpts::default()
        })
        .map_err(|e| format!("I/O queue pair: {e}"))?;
    let blocks = 4096 / ns.block_size();
    let span = ns.num_blocks() / blocks as u64;
    let free: Rc<RefCell<Vec<DmaBuf>>> = Rc::default();
    let failed: Rc<RefCell<Option<String>>> = Rc::default();
    for _ in 0..DEPTH {
        free.borrow_mut()
            .push(DmaBuf::alloc(4096, 4096).map_err(|e| format!("{e}"))?);
    }
    let start = Instant::now();
    let mut next = 0u64;
    while !stop.load(Ordering::SeqCst) && start.elapsed() < LOAD_MAX {
        while let Some(buf) = free.borrow_mut().pop() {
            let (f, e, d) = (free.clone(), failed.clone(), done.clone());
            next = next
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let lba = ((next >> 33) % span) * blocks as u64;
            qp.read(&ns, buf, lba, blocks, move |_, c| {
                match c.result {
                    Ok(_) => d.fetch_add(1, Ordering::SeqCst),
                    Err(err) => {
                        *e.borrow_mut() = Some(format!("a read failed: {err}"));
                        0
                    }
                };
                if let Some(b) = c.buf.into_dma_buf() {
                    f.borrow_mut().push(b);
                }
            })
            .map_err(|e| format!("submit: {}", e.error))?;
        }
        qp.process_completions(0)
            .map_err(|e| format!("polling: {e}"))?;
        if let Some(e) = failed.borrow_mut().take() {
            return Err(e);
        }
    }
    Ok(())
}
