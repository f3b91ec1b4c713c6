//! The lock file beside the RPC socket (SPDK's `<socket>.lock`): held with
//! `flock` while the server listens, so a second instance on the same
//! socket path refuses to start instead of stealing the socket.

use super::super::EventError;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A held lock; dropping it unlocks and removes the file.
pub(crate) struct SocketLock {
    path: PathBuf,
    _lock: Flock<File>,
}

impl SocketLock {
    /// Takes `<socket>.lock`. Error: another process holds it
    /// ([`EventError::SocketInUse`]) or it cannot be created.
    pub fn acquire(socket: &Path) -> Result<SocketLock, EventError> {
        let mut p = socket.as_os_str().to_owned();
        p.push(".lock");
        let path = PathBuf::from(p);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| EventError::Listen {
                path: path.display().to_string(),
                op: "open lock file",
                source: e,
            })?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                EventError::SocketInUse {
                    socket: socket.display().to_string(),
                    lock: path.display().to_string(),
                }
            } else {
                EventError::Listen {
                    path: path.display().to_string(),
                    op: "flock lock file",
                    source: e.into(),
                }
            }
        })?;
        Ok(SocketLock { path, _lock: lock })
    }
}

impl Drop for SocketLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
