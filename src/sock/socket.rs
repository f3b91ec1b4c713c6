//! A connected, non-blocking TCP socket and its options.

use super::SockError;
use socket2::{Domain, Protocol, SockAddr, Type};
use std::io::{IoSlice, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

/// Options of a connection (SPDK's `spdk_sock_opts` / `spdk_sock_impl_opts`).
#[derive(Debug, Clone)]
pub struct SocketOpts {
    /// Send segments at once (`TCP_NODELAY`); NVMe/TCP wants it on.
    pub nodelay: bool,
    /// `SO_PRIORITY` of the socket's packets; `None` leaves the default.
    pub priority: Option<u32>,
    /// `SO_RCVBUF` in bytes; `None` leaves the kernel default.
    pub recv_buf_size: Option<usize>,
    /// `SO_SNDBUF` in bytes; `None` leaves the kernel default.
    pub send_buf_size: Option<usize>,
    /// How long [`Socket::connect`] may wait for the handshake.
    pub connect_timeout: Duration,
    /// The source address to connect from (SPDK's `src_addr`/`src_svcid`;
    /// port 0: any free one); `None` lets the kernel choose.
    pub local_addr: Option<SocketAddr>,
}

impl Default for SocketOpts {
    fn default() -> Self {
        SocketOpts {
            nodelay: true,
            priority: None,
            recv_buf_size: None,
            send_buf_size: None,
            connect_timeout: Duration::from_secs(5),
            local_addr: None,
        }
    }
}

/// A connected TCP socket in non-blocking mode (SPDK's `spdk_sock`).
///
/// Reads and writes never block: a read with nothing to read and a write
/// the kernel has no room for both return 0.
#[derive(Debug)]
pub struct Socket {
    inner: socket2::Socket,
    peer: SocketAddr,
}

impl Socket {
    /// Connects to `addr` (IPv4 or IPv6) from `opts.local_addr` when given,
    /// waiting at most `opts.connect_timeout` for the handshake, then
    /// applies the options and switches to non-blocking mode.
    pub fn connect(addr: SocketAddr, opts: &SocketOpts) -> Result<Socket, SockError> {
        let conn = |source| SockError::Connect { addr, source };
        let s = socket2::Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .map_err(conn)?;
        let sock = Socket {
            inner: s,
            peer: addr,
        };
        // Buffer sizes apply best before the handshake (window scaling).
        sock.apply_buffers(opts)?;
        if let Some(local) = opts.local_addr {
            let bind = |source| SockError::Bind {
                local,
                addr,
                source,
            };
            if local.port() != 0 {
                sock.inner.set_reuse_address(true).map_err(bind)?;
            }
            sock.inner.bind(&SockAddr::from(local)).map_err(bind)?;
        }
        sock.inner
            .connect_timeout(&SockAddr::from(addr), opts.connect_timeout)
            .map_err(conn)?;
        sock.apply(opts)?;
        Ok(sock)
    }

    /// Takes over an accepted (or otherwise connected) stream, applies the
    /// options and switches it to non-blocking mode.
    pub fn from_stream(stream: TcpStream, opts: &SocketOpts) -> Result<Socket, SockError> {
        let peer = stream.peer_addr().map_err(|source| SockError::Connect {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let sock = Socket {
            inner: socket2::Socket::from(stream),
            peer,
        };
        sock.apply_buffers(opts)?;
        sock.apply(opts)?;
        Ok(sock)
    }

    fn option(&self, option: &'static str, r: std::io::Result<()>) -> Result<(), SockError> {
        r.map_err(|source| SockError::Option {
            option,
            addr: self.peer,
            source,
        })
    }

    fn apply_buffers(&self, opts: &SocketOpts) -> Result<(), SockError> {
        if let Some(n) = opts.recv_buf_size {
            self.option("SO_RCVBUF", self.inner.set_recv_buffer_size(n))?;
        }
        if let Some(n) = opts.send_buf_size {
            self.option("SO_SNDBUF", self.inner.set_send_buffer_size(n))?;
        }
        Ok(())
    }

    fn apply(&self, opts: &SocketOpts) -> Result<(), SockError> {
        self.option("TCP_NODELAY", self.inner.set_tcp_nodelay(opts.nodelay))?;
        if let Some(p) = opts.priority {
            self.option("SO_PRIORITY", self.inner.set_priority(p))?;
        }
        self.option("O_NONBLOCK", self.inner.set_nonblocking(true))
    }

    /// The local (source) address of the connection.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr().ok()?.as_socket()
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> Result<bool, SockError> {
        self.inner
            .tcp_nodelay()
            .map_err(|source| SockError::Option {
                option: "TCP_NODELAY",
                addr: self.peer,
                source,
            })
    }

    /// The socket's `SO_PRIORITY`.
    pub fn priority(&self) -> Result<u32, SockError> {
        self.inner.priority().map_err(|source| SockError::Option {
            option: "SO_PRIORITY",
            addr: self.peer,
            source,
        })
    }

    /// Reads what the kernel holds into `buf`: the byte count, 0 when
    /// nothing is there yet; [`SockError::Closed`] at end of stream.
    pub fn recv(&self, buf: &mut [u8]) -> Result<usize, SockError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            return match (&self.inner).read(buf) {
                Ok(0) => Err(SockError::Closed(self.peer)),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => Err(SockError::Io {
                    op: "recv",
                    addr: self.peer,
                    source,
                }),
            };
        }
    }

    /// Sends as much of `iov` as the kernel takes with one `sendmsg`
    /// (`MSG_NOSIGNAL`: a closed peer is an error, not a signal): the byte
    /// count, 0 when the send buffer is full.
    pub fn send_vectored(&self, iov: &[IoSlice<'_>]) -> Result<usize, SockError> {
        loop {
            return match self.inner.send_vectored_with_flags(iov, libc::MSG_NOSIGNAL) {
                Ok(n) => Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => Err(SockError::Io {
                    op: "sendmsg",
                    addr: self.peer,
                    source,
                }),
            };
        }
    }

    /// Shuts both directions down (the peer sees end of stream).
    pub fn shutdown(&self) {
        let _ = self.inner.shutdown(std::net::Shutdown::Both);
    }
}

/// The descriptor, for a readiness set (epoll) that watches the socket.
impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}
