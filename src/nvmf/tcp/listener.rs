//! The TCP transport's listening side: sockets bound to IPv4 or IPv6
//! addresses, accepted without blocking by a poller on the thread that
//! made the transport, each new connection handed to the next poll group.

use super::group::PollGroupHandle;
use crate::nvmf::{ListenAddr, NvmfError, Target};
use crate::thread::{poller_register, Poller, PollerStatus};
use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;

/// How often the acceptor polls the listening sockets (µs): SPDK's
/// default `acceptor_poll_rate`. It shares the reactor with the poll
/// groups, so polling more often costs an `accept` syscall per period on
/// the data path's core for a connection a few ms sooner.
const ACCEPT_US: u64 = 10_000;
/// Most connections accepted per listener per poll.
const ACCEPT_BATCH: usize = 16;

struct Listening {
    addr: SocketAddr,
    sock: TcpListener,
}

struct Inner {
    listeners: Vec<Listening>,
    groups: Vec<PollGroupHandle>,
    next: usize,
}

/// The TCP transport of a target: its listeners and acceptor.
pub struct TcpTransport {
    target: Arc<Target>,
    inner: Rc<RefCell<Inner>>,
    poller: Poller,
}

impl TcpTransport {
    /// A transport handing connections to `groups` round robin; the
    /// acceptor runs on the current lightweight thread.
    pub fn new(target: Arc<Target>, groups: Vec<PollGroupHandle>) -> Result<Self, NvmfError> {
        if groups.is_empty() {
            return Err(NvmfError::InvalidParam {
                name: "poll groups",
                value: "0".into(),
                why: "the transport needs at least one poll group".into(),
            });
        }
        let inner = Rc::new(RefCell::new(Inner {
            listeners: Vec::new(),
            groups,
            next: 0,
        }));
        let i = inner.clone();
        let poller = poller_register("nvmf_tcp_accept", ACCEPT_US, move || {
            PollerStatus::from(i.borrow_mut().accept())
        })?;
        Ok(TcpTransport {
            target,
            inner,
            poller,
        })
    }

    /// The target served.
    pub fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// Listens on `addr` (port 0 picks a free port); returns the bound address.
    pub fn listen(&self, addr: SocketAddr) -> Result<SocketAddr, NvmfError> {
        if let Some(l) = self
            .inner
            .borrow()
            .listeners
            .iter()
            .find(|l| l.addr == addr)
        {
            return Ok(l.addr);
        }
        let err = |source| NvmfError::Listen {
            addr: addr.to_string(),
            source,
        };
        let sock = TcpListener::bind(addr).map_err(err)?;
        sock.set_nonblocking(true).map_err(err)?;
        let bound = sock.local_addr().map_err(err)?;
        log::info!("nvmf/tcp: listening on {bound}");
        self.inner
            .borrow_mut()
            .listeners
            .push(Listening { addr: bound, sock });
        Ok(bound)
    }

    /// Stops listening on `addr` (connections made through it stay).
    pub fn stop_listening(&self, addr: SocketAddr) -> bool {
        let mut i = self.inner.borrow_mut();
        let before = i.listeners.len();
        i.listeners.retain(|l| l.addr != addr);
        i.listeners.len() != before
    }

    /// The listen address as SPDK's configuration writes it.
    pub fn listen_addr(addr: SocketAddr) -> ListenAddr {
        ListenAddr {
            trtype: "TCP".into(),
            adrfam: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
            traddr: addr.ip().to_string(),
            trsvcid: addr.port().to_string(),
        }
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.poller.unregister();
    }
}

impl Inner {
    fn accept(&mut self) -> bool {
        let mut busy = false;
        for l in &self.listeners {
            for _ in 0..ACCEPT_BATCH {
                match l.sock.accept() {
                    Ok((s, peer)) => {
                        busy = true;
                        let g = &self.groups[self.next % self.groups.len()];
                        self.next = self.next.wrapping_add(1);
                        log::debug!("nvmf/tcp: {} accepted {peer}", l.addr);
                        g.add(s);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        log::warn!("nvmf/tcp: accept on {}: {e}", l.addr);
                        break;
                    }
                }
            }
        }
        busy
    }
}
