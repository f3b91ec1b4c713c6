//! A poll group (SPDK's `spdk_nvmf_poll_group`): one per thread. Its
//! poller serves every connection given to it — reads, executes, sends —
//! and a timed poller tears down controllers whose keep alive expired and
//! completes held Asynchronous Event Requests. New connections arrive
//! through a lock-free queue from the accepting thread. A group idle for
//! a while waits for its sockets briefly instead of spinning (`idle`).

use super::conn::Conn;
use super::idle::IdleWait;
use crate::nvmf::{NvmfError, Target};
use crate::sock::{Socket, SocketOpts};
use crate::thread::{poller_register, Poller, PollerStatus};
use crossbeam_queue::SegQueue;
use std::cell::RefCell;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How often the timed poller checks keep alive and events.
const TIMER_US: u64 = 100_000;

/// A poll group's counters (`nvmf_get_stats`), written by its thread
/// only (relaxed atomics: one uncontended add each), read by anyone.
#[derive(Debug, Default)]
pub struct GroupStats {
    /// Name of the group's thread.
    pub name: String,
    /// Admin queues ever connected.
    pub admin_qpairs: AtomicU64,
    /// I/O queues ever connected.
    pub io_qpairs: AtomicU64,
    /// Admin queues connected now.
    pub current_admin_qpairs: AtomicU64,
    /// I/O queues connected now.
    pub current_io_qpairs: AtomicU64,
    /// Commands completed on I/O queues.
    pub completed_nvme_io: AtomicU64,
    /// Times the group, idle, waited for its sockets instead of spinning
    /// (not in SPDK's `nvmf_get_stats`).
    pub idle_waits: AtomicU64,
}

impl GroupStats {
    /// Counts a queue that connected (`admin`: queue 0).
    pub(super) fn connected(&self, admin: bool) {
        let (total, now) = if admin {
            (&self.admin_qpairs, &self.current_admin_qpairs)
        } else {
            (&self.io_qpairs, &self.current_io_qpairs)
        };
        total.fetch_add(1, Ordering::Relaxed);
        now.fetch_add(1, Ordering::Relaxed);
    }
    /// Counts a connected queue that went away.
    pub(super) fn disconnected(&self, admin: bool) {
        let now = if admin {
            &self.current_admin_qpairs
        } else {
            &self.current_io_qpairs
        };
        let _ = now.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The `Send` face of a poll group: where the acceptor hands connections.
#[derive(Clone, Debug)]
pub struct PollGroupHandle {
    inbox: Arc<SegQueue<TcpStream>>,
    conns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    stats: Arc<GroupStats>,
}

impl PollGroupHandle {
    /// Gives the group a newly accepted connection.
    pub fn add(&self, stream: TcpStream) {
        self.inbox.push(stream);
    }
    /// The group's counters.
    pub fn stats(&self) -> &GroupStats {
        &self.stats
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
    stats: Arc<GroupStats>,
    pollers: Vec<Poller>,
    idle: IdleWait,
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
        let stats = Arc::new(GroupStats {
            name: crate::thread::Thread::current()
                .map_or_else(|| "nvmf_tgt_poll_group".into(), |t| t.name().to_string()),
            ..GroupStats::default()
        });
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
            stats: stats.clone(),
            pollers: Vec::new(),
            idle: IdleWait::new(),
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
                stats,
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
            let local = s.local_addr();
            self.idle.watch(&s);
            match (Socket::from_stream(s, &self.sock_opts), local) {
                (Ok(sock), Ok(local)) => {
                    log::debug!("nvmf/tcp: new connection from {}", sock.peer_addr());
                    self.conns.push(Conn::new(
                        sock,
                        local,
                        self.target.clone(),
                        self.stats.clone(),
                    ));
                }
                (_, Err(e)) => log::warn!("nvmf/tcp: accepted connection unusable: {e}"),
                (Err(e), _) => log::warn!("nvmf/tcp: accepted connection unusable: {e}"),
            }
        }
        let (mut quiet, mut closed) = (true, false);
        for c in &self.conns {
            let mut c = c.borrow_mut();
            busy |= c.poll();
            quiet &= c.is_quiet();
            closed |= c.is_closed();
        }
        if self.idle.after_poll(busy, quiet) {
            self.stats.idle_waits.fetch_add(1, Ordering::Relaxed);
        }
        let before = self.conns.len();
        if closed {
            self.conns.retain(|c| {
                let c = c.borrow();
                !(c.is_closed() && c.inflight == 0)
            });
        }
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
            if q.qid != 0 {
                c.prune_namespaces();
                continue;
            }
            c.poll_aborts(Some(now));
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
