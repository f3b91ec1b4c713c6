//! A poll group (SPDK's `spdk_nvmf_poll_group`): one per thread. Its
//! poller serves every connection given to it — reads, executes, sends —
//! and a timed poller tears down controllers whose keep alive expired and
//! completes held Asynchronous Event Requests. New connections arrive
//! through a lock-free queue from the accepting thread.

use super::conn::Conn;
use crate::nvmf::{NvmfError, Target};
use crate::sock::{Socket, SocketOpts};
use crate::thread::{poller_register, Poller, PollerStatus};
use crossbeam_queue::SegQueue;
use std::cell::RefCell;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How often the timed poller checks keep alive and events.
const TIMER_US: u64 = 100_000;

/// The `Send` face of a poll group: where the acceptor hands connections.
#[derive(Clone, Debug)]
pub struct PollGroupHandle {
    inbox: Arc<SegQueue<TcpStream>>,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl PollGroupHandle {
    /// Gives the group a newly accepted connection.
    pub fn add(&self, stream: TcpStream) {
        self.inbox.push(stream);
    }
    /// Connections the group serves.
    pub fn connections(&self) -> usize {
        self.conns.load(Ordering::Relaxed)
    }
    /// Asks the group to close its connections and stop its pollers (at
    /// its next poll, on its own thread).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

struct Inner {
    target: Arc<Target>,
    inbox: Arc<SegQueue<TcpStream>>,
    count: Arc<AtomicUsize>,
    conns: Vec<Rc<RefCell<Conn>>>,
    sock_opts: SocketOpts,
    stop: Arc<AtomicBool>,
    pollers: Vec<Poller>,
}

/// A poll group on the current thread; dropping it stops its pollers and
/// closes its connections.
pub struct PollGroup {
    handle: PollGroupHandle,
    inner: Rc<RefCell<Inner>>,
}

impl PollGroup {
    /// Starts a poll group on the current lightweight thread.
    pub fn start(target: Arc<Target>) -> Result<PollGroup, NvmfError> {
        let inbox = Arc::new(SegQueue::new());
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let sock_opts = SocketOpts {
            priority: match target.opts().sock_priority {
                0 => None,
                p => Some(p),
            },
            ..SocketOpts::default()
        };
        let inner = Rc::new(RefCell::new(Inner {
            target,
            inbox: inbox.clone(),
            count: count.clone(),
            conns: Vec::new(),
            sock_opts,
            stop: stop.clone(),
            pollers: Vec::new(),
        }));
        let g = inner.clone();
        let main = poller_register("nvmf_tcp_poll_group", 0, move || {
            PollerStatus::from(g.borrow_mut().poll())
        })?;
        let g = inner.clone();
        let timer = poller_register("nvmf_tcp_keep_alive", TIMER_US, move || {
            g.borrow_mut().timer();
            PollerStatus::Idle
        })?;
        inner.borrow_mut().pollers = vec![main, timer];
        Ok(PollGroup {
            handle: PollGroupHandle {
                inbox,
                conns: count,
                stop,
            },
            inner,
        })
    }

    /// Lets the group run on by itself (its pollers own it) until
    /// [`PollGroupHandle::stop`]; returns its handle.
    pub fn detach(self) -> PollGroupHandle {
        let h = self.handle.clone();
        std::mem::forget(self);
        h
    }

    /// Where to hand it connections (from any thread).
    pub fn handle(&self) -> PollGroupHandle {
        self.handle.clone()
    }
}

impl Drop for PollGroup {
    fn drop(&mut self) {
        self.inner.borrow_mut().shut();
    }
}

impl Inner {
    /// Closes every connection and stops the pollers.
    fn shut(&mut self) {
        for p in self.pollers.drain(..) {
            p.unregister();
        }
        for c in self.conns.iter() {
            c.borrow_mut().close();
        }
        self.count.store(0, Ordering::Relaxed);
    }

    fn poll(&mut self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            self.shut();
            return false;
        }
        let mut busy = false;
        while let Some(s) = self.inbox.pop() {
            busy = true;
            match Socket::from_stream(s, &self.sock_opts) {
                Ok(sock) => {
                    log::debug!("nvmf/tcp: new connection from {}", sock.peer_addr());
                    self.conns.push(Conn::new(sock, self.target.clone()));
                }
                Err(e) => log::warn!("nvmf/tcp: accepted connection unusable: {e}"),
            }
        }
        for c in &self.conns {
            busy |= c.borrow_mut().poll();
        }
        let before = self.conns.len();
        self.conns.retain(|c| {
            let c = c.borrow();
            !(c.is_closed() && c.inflight == 0)
        });
        if self.conns.len() != before || busy {
            self.count.store(self.conns.len(), Ordering::Relaxed);
        }
        busy
    }

    fn timer(&mut self) {
        let now = Instant::now();
        for c in &self.conns {
            let mut c = c.borrow_mut();
            let Some(q) = c.queue.clone() else { continue };
            if q.ctrlr.is_failed() {
                c.close();
                continue;
            }
            if q.qid == 0 {
                if q.ctrlr.keep_alive_expired(now) {
                    log::info!(
                        "nvmf/tcp: controller {} of '{}': keep alive timeout; tearing it down",
                        q.ctrlr.cntlid(),
                        q.ctrlr.subsystem().nqn()
                    );
                    q.ctrlr.fail();
                    c.close();
                    continue;
                }
                c.check_events();
            }
        }
    }
}
