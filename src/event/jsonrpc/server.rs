//! The JSON-RPC server (SPDK's `lib/jsonrpc` server over `lib/rpc`): a
//! non-blocking Unix socket listener and its connections, served by one
//! timed poller on the app thread. Each request's method runs as a task on
//! the thread's executor, so requests of one connection run concurrently
//! and their responses go out in the order they complete.

use super::conn::{Conn, Frame, MAX_REQUEST_SIZE, READ_BUDGET, TRICKLE_BUDGET};
use super::lock::SocketLock;
use super::request::{decode, response, to_wire, Incoming, Request};
use crate::event::{EventError, MethodTable};
use crate::rpc::{RpcError, INVALID_REQUEST};
use crate::thread::{poller_register, spawn_local, Poller, PollerStatus};
use std::cell::RefCell;
use std::io::ErrorKind;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The server's poll period (SPDK polls its RPC server every 4 ms).
pub const POLL_PERIOD_US: u64 = 1000;
/// Connections served at once; more are accepted and closed at once.
/// (SPDK serves 64 and leaves the others in the listen backlog; this
/// server serves more clients at once and bounds their memory with
/// [`BUFFER_BUDGET`] instead.)
pub const MAX_CONNS: usize = 1024;
/// Bytes all connections' buffers may hold together (requests received
/// and not handled, responses not written). Over it, a connection with
/// anything pending is not read until the total falls, and one with
/// nothing pending is read a little at a time, so a small request still
/// gets in while large ones wait.
pub const BUFFER_BUDGET: usize = 64 << 20;
/// Connections accepted per poll.
const ACCEPT_BUDGET: usize = 64;

struct Inner {
    path: PathBuf,
    listener: RefCell<Option<UnixListener>>,
    conns: RefCell<Vec<Rc<RefCell<Conn>>>>,
    table: Rc<MethodTable>,
    poller: RefCell<Option<Poller>>,
    lock: RefCell<Option<SocketLock>>,
    /// The last poll found the connections over [`BUFFER_BUDGET`].
    over_budget: std::cell::Cell<bool>,
}

/// A listening server. Lives on the app thread.
#[derive(Clone)]
pub struct RpcServer {
    inner: Rc<Inner>,
}

impl RpcServer {
    /// Listens on `path` (taking `<path>.lock` first, then replacing a
    /// stale socket file) and starts serving from a poller on the current
    /// thread. Errors: the lock is held by another instance, the socket
    /// cannot be bound, or there is no current thread.
    pub fn listen(path: &Path, table: Rc<MethodTable>) -> Result<RpcServer, EventError> {
        let lock = SocketLock::acquire(path)?;
        Self::listen_locked(path, lock, table)
    }

    /// [`listen`](Self::listen) with the lock already taken (the app takes
    /// it before anything else, so a second instance stops at once).
    pub(crate) fn listen_locked(
        path: &Path,
        lock: SocketLock,
        table: Rc<MethodTable>,
    ) -> Result<RpcServer, EventError> {
        // We hold the lock, so a socket file there is a dead instance's.
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| EventError::Listen {
            path: path.display().to_string(),
            op: "bind",
            source: e,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|e| EventError::Listen {
                path: path.display().to_string(),
                op: "set non-blocking",
                source: e,
            })?;
        let server = RpcServer {
            inner: Rc::new(Inner {
                path: path.to_owned(),
                listener: RefCell::new(Some(listener)),
                conns: RefCell::new(Vec::new()),
                table,
                poller: RefCell::new(None),
                lock: RefCell::new(Some(lock)),
                over_budget: std::cell::Cell::new(false),
            }),
        };
        let s = server.clone();
        let p = poller_register("rpc_subsystem_poll_servers", POLL_PERIOD_US, move || {
            s.poll()
        })
        .map_err(EventError::ReactorStart)?;
        *server.inner.poller.borrow_mut() = Some(p);
        Ok(server)
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.inner.conns.borrow().len()
    }

    /// One round: accept, read and dispatch, write.
    pub fn poll(&self) -> PollerStatus {
        let mut busy = self.accept();
        let conns: Vec<_> = self.inner.conns.borrow().clone();
        let over = self.over_budget(&conns);
        let mut frames = Vec::new();
        for c in &conns {
            frames.clear();
            let budget = match (over, c.borrow().has_pending()) {
                (false, _) => READ_BUDGET,
                (true, false) => TRICKLE_BUDGET,
                (true, true) => 0,
            };
            busy |= c.borrow_mut().read(&mut frames, budget);
            for f in frames.drain(..) {
                // After a parse error the stream has no resynchronisation
                // point: what follows it is not handled.
                if c.borrow().is_closing() {
                    break;
                }
                busy = true;
                self.handle(c, f);
            }
            busy |= c.borrow_mut().flush();
        }
        self.inner.conns.borrow_mut().retain(|c| !c.borrow().closed);
        busy.into()
    }

    /// Whether the connections' buffers hold more than [`BUFFER_BUDGET`];
    /// says so in the log when that changes.
    fn over_budget(&self, conns: &[Rc<RefCell<Conn>>]) -> bool {
        let held: usize = conns.iter().map(|c| c.borrow().held_bytes()).sum();
        let over = held > BUFFER_BUDGET;
        if over != self.inner.over_budget.replace(over) {
            if over {
                log::warn!(
                    "RPC: {} connections hold {held} bytes, over the budget of {BUFFER_BUDGET}:                      connections with a request or responses pending are not read until it                      falls (clients that do not read their responses, or send huge requests,                      hold it)",
                    conns.len()
                );
            } else {
                log::info!(
                    "RPC: connections hold {held} bytes, back under the budget: reading all"
                );
            }
        }
        over
    }

    fn accept(&self) -> bool {
        let listener = self.inner.listener.borrow();
        let Some(l) = listener.as_ref() else {
            return false;
        };
        let mut busy = false;
        for _ in 0..ACCEPT_BUDGET {
            match l.accept() {
                Ok((stream, _)) => {
                    busy = true;
                    if self.inner.conns.borrow().len() >= MAX_CONNS {
                        log::warn!("RPC: {MAX_CONNS} connections open: closing a new one");
                        continue;
                    }
                    match Conn::new(stream) {
                        Ok(c) => self.inner.conns.borrow_mut().push(Rc::new(RefCell::new(c))),
                        Err(e) => log::warn!("RPC: cannot set up a connection: {e}"),
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("RPC: accept on {} failed: {e}", self.inner.path.display());
                    break;
                }
            }
        }
        busy
    }

    fn handle(&self, conn: &Rc<RefCell<Conn>>, frame: Frame) {
        let incoming = match frame {
            Frame::Value(bytes) => decode(&bytes),
            Frame::TooLarge => Err(RpcError::new(
                INVALID_REQUEST,
                format!("Invalid request: a request exceeds {MAX_REQUEST_SIZE} bytes"),
            )),
        };
        match incoming {
            Err(e) => {
                let mut c = conn.borrow_mut();
                c.queue(&to_wire(&response(None, &Err(e))));
                c.close_after_flush();
            }
            Ok(Incoming::Single(req)) => self.single(conn, req),
            Ok(Incoming::Batch(reqs)) => self.batch(conn, reqs),
        }
    }

    fn single(&self, conn: &Rc<RefCell<Conn>>, req: Request) {
        let notify = req.is_notification();
        let started = req.call.and_then(|(m, p)| self.inner.table.call(&m, p));
        match started {
            Err(e) => conn
                .borrow_mut()
                .queue(&to_wire(&response(req.id.as_ref(), &Err(e)))),
            Ok(fut) => {
                conn.borrow_mut().in_flight += 1;
                let c = conn.clone();
                let id = req.id;
                let task = async move {
                    let r = fut.await;
                    let mut c = c.borrow_mut();
                    c.in_flight -= 1;
                    if !(notify && r.is_ok()) {
                        c.queue(&to_wire(&response(id.as_ref(), &r)));
                    }
                };
                if let Err(e) = spawn_local(task) {
                    log::error!("RPC: cannot run a request: {e}");
                }
            }
        }
    }

    fn batch(&self, conn: &Rc<RefCell<Conn>>, reqs: Vec<Request>) {
        conn.borrow_mut().in_flight += 1;
        let table = self.inner.table.clone();
        let c = conn.clone();
        let task = async move {
            let mut out = Vec::new();
            for req in reqs {
                let notify = req.is_notification();
                let r = match req.call.and_then(|(m, p)| table.call(&m, p)) {
                    Ok(fut) => fut.await,
                    Err(e) => Err(e),
                };
                if !(notify && r.is_ok()) {
                    out.push(response(req.id.as_ref(), &r));
                }
            }
            let mut c = c.borrow_mut();
            c.in_flight -= 1;
            if !out.is_empty() {
                c.queue(&to_wire(&serde_json::Value::Array(out)));
            }
        };
        if let Err(e) = spawn_local(task) {
            log::error!("RPC: cannot run a batch: {e}");
        }
    }

    /// Stops accepting and reading; requests in flight still complete and
    /// their responses are still written by the poller.
    pub fn stop_listening(&self) {
        self.inner.listener.borrow_mut().take();
        let _ = std::fs::remove_file(&self.inner.path);
        for c in self.inner.conns.borrow().iter() {
            c.borrow_mut().stop_reading();
        }
    }

    /// Whether every connection has no request in flight and nothing
    /// left to write.
    pub fn is_idle(&self) -> bool {
        self.inner
            .conns
            .borrow()
            .iter()
            .all(|c| c.borrow().is_idle())
    }

    /// Closes everything: the poller, every connection, the socket file
    /// and the lock file.
    pub fn close(&self) {
        self.stop_listening();
        if let Some(p) = self.inner.poller.borrow_mut().take() {
            p.unregister();
        }
        self.inner.conns.borrow_mut().clear();
        self.inner.lock.borrow_mut().take();
    }
}
