//! A poll group (SPDK's `spdk_nvmf_poll_group`): one per thread. Its
//! poller serves every connection given to it — reads, executes, sends —
//! and a timed poller tears down controllers whose keep alive expired and
//! completes held Asynchronous Event Requests. New connections arrive
//! through a lock-free queue from the accepting thread. A group of several
//! connections asks its readiness set (`ready`) which sockets have bytes
//! and reads only those, unless every connection received at the last
//! poll; a group of one reads it directly (then the wait would cost more
//! than the read it saves). Commands waiting for a shared data buffer
//! are resumed after the connections are served (`bufs`). A group idle
//! for a while waits for its sockets briefly instead of spinning, unless
//! its reactor polls flat out (`idle`).

use super::bufs::{resume_waiters, GroupBufs};
use super::conn::Conn;
use super::idle::{IdleWait, IDLE_WAIT_MS};
use super::ready::ReadySet;
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
    /// Commands that had to wait for a shared data buffer (SPDK's RDMA
    /// transport reports this as `pending_data_buffer`).
    pub pending_data_buffer: AtomicU64,
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

/// A connection in the group, at a fixed place (its readiness token).
struct Entry {
    conn: Rc<RefCell<Conn>>,
    /// Its socket is in the readiness set.
    watched: bool,
    /// The last wait reported its socket readable.
    ready: bool,
    /// It received bytes at the last poll.
    hot: bool,
}

struct Inner {
    target: Arc<Target>,
    inbox: Arc<SegQueue<TcpStream>>,
    count: Arc<AtomicUsize>,
    /// Connections by token (`None`: a free place, listed in `vacant`).
    conns: Vec<Option<Entry>>,
    vacant: Vec<usize>,
    live: usize,
    /// Connections that did not receive at the last poll (or are new).
    cold: usize,
    sock_opts: SocketOpts,
    stop: Arc<AtomicBool>,
    stats: Arc<GroupStats>,
    pollers: Vec<Poller>,
    idle: IdleWait,
    ready: ReadySet,
    bufs: Rc<RefCell<GroupBufs>>,
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
        let bufs = GroupBufs::new(target.buf_pool()?);
        let inner = Rc::new(RefCell::new(Inner {
            target,
            inbox: inbox.clone(),
            count: count.clone(),
            conns: Vec::new(),
            vacant: Vec::new(),
            live: 0,
            cold: 0,
            sock_opts,
            stop: stop.clone(),
            stats: stats.clone(),
            pollers: Vec::new(),
            idle: IdleWait::new(),
            ready: ReadySet::new(),
            bufs,
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
        for e in self.conns.iter().flatten() {
            e.conn.borrow_mut().close();
        }
        self.count.store(0, Ordering::Relaxed);
    }

    /// Takes in the connections the acceptor handed over.
    fn adopt(&mut self) -> bool {
        let mut busy = false;
        while let Some(s) = self.inbox.pop() {
            busy = true;
            let local = s.local_addr();
            let (sock, local) = match (Socket::from_stream(s, &self.sock_opts), local) {
                (Ok(sock), Ok(local)) => (sock, local),
                (_, Err(e)) => {
                    log::warn!("nvmf/tcp: accepted connection unusable: {e}");
                    continue;
                }
                (Err(e), _) => {
                    log::warn!("nvmf/tcp: accepted connection unusable: {e}");
                    continue;
                }
            };
            log::debug!("nvmf/tcp: new connection from {}", sock.peer_addr());
            let token = self.vacant.pop().unwrap_or(self.conns.len());
            let watched = self.ready.watch(&sock, token as u64);
            let conn = Conn::new(
                sock,
                local,
                self.target.clone(),
                self.stats.clone(),
                self.bufs.clone(),
            );
            let e = Entry {
                conn,
                watched,
                ready: false,
                hot: false,
            };
            if token == self.conns.len() {
                self.conns.push(Some(e));
            } else {
                self.conns[token] = Some(e);
            }
            self.live += 1;
            self.cold += 1;
        }
        busy
    }

    fn poll(&mut self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            self.shut();
            return false;
        }
        let mut busy = self.adopt();
        // Reading every connection costs one syscall each; the wait costs
        // one plus a read per ready connection: never more, unless every
        // connection has bytes. So the group reads each directly only when
        // it serves one connection, or when all of them received at the
        // last poll (and most likely have bytes again).
        let mut by_readiness = self.live > 1 && self.cold > 0 && self.ready.usable();
        if !by_readiness {
            self.ready.forget_wait();
        }
        if by_readiness {
            match self.ready.ready() {
                Some(tokens) => {
                    for t in tokens {
                        if let Some(Some(e)) = self.conns.get_mut(t as usize) {
                            e.ready = true;
                        }
                    }
                }
                None => by_readiness = false,
            }
        }
        let (mut quiet, mut closed, mut cold) = (true, false, 0);
        for e in self.conns.iter_mut().flatten() {
            let read = !by_readiness || e.ready || !e.watched;
            e.ready = false;
            let mut c = e.conn.borrow_mut();
            busy |= c.poll(read);
            e.hot = c.got_bytes;
            cold += usize::from(!e.hot);
            quiet &= c.is_quiet();
            if c.is_closed() {
                closed = true;
                if e.watched {
                    self.ready.unwatch(&c.sock);
                    e.watched = false;
                }
            }
        }
        self.cold = cold;
        busy |= resume_waiters(&self.bufs);
        quiet &= !self.bufs.borrow().has_waiters();
        if self.idle.should_wait(busy, quiet) && self.ready.wait(IDLE_WAIT_MS) {
            self.stats.idle_waits.fetch_add(1, Ordering::Relaxed);
            crate::thread::note_idle_wait();
        }
        let before = self.live;
        if closed {
            for (k, place) in self.conns.iter_mut().enumerate() {
                let gone = place.as_ref().is_some_and(|e| {
                    let c = e.conn.borrow();
                    c.is_closed() && c.inflight == 0
                });
                if gone {
                    *place = None;
                    self.vacant.push(k);
                    self.live -= 1;
                }
            }
        }
        if self.live != before || busy {
            self.count.store(self.live, Ordering::Relaxed);
        }
        busy
    }

    fn timer(&mut self) {
        let now = Instant::now();
        for e in self.conns.iter().flatten() {
            let mut c = e.conn.borrow_mut();
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
