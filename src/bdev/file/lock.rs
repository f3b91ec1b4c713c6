//! One owner per file: a process that opens a file to write it takes an
//! exclusive `flock`, a reader a shared one, without waiting. The lock is
//! on the open file description, so a second open conflicts even inside
//! the same process, and it dies with the process (no stale lock files).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// A held lock on a file; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    _flock: Flock<File>,
}

/// Locks `file` (opened from `path`), exclusively when `exclusive`, else
/// shared. A conflict is an `io::ErrorKind::WouldBlock` error naming the
/// file and, when `/proc/locks` tells, the process holding it.
pub fn lock_file(file: &File, path: &str, exclusive: bool) -> io::Result<FileLock> {
    let arg = if exclusive {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockSharedNonblock
    };
    match Flock::lock(file.try_clone()?, arg) {
        Ok(flock) => Ok(FileLock { _flock: flock }),
        Err((_, Errno::EWOULDBLOCK)) => {
            let holder = holder(file)
                .map(|pid| format!("process {pid}"))
                .unwrap_or_else(|| "another open".to_string());
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{path} is in use: {holder} holds a lock on it; one process at a time may {} it (stop the other user first)",
                    if exclusive { "write" } else { "read while it is written; or wait and" }
                ),
            ))
        }
        Err((_, e)) => Err(io::Error::other(format!("flock {path}: {e}"))),
    }
}

/// The pid of a process holding a `flock` on `file`, from `/proc/locks`.
fn holder(file: &File) -> Option<u32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let key = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let f: Vec<&str> = l.split_whitespace().collect();
        let i = f.iter().position(|w| *w == "FLOCK")?;
        (f.get(i + 4) == Some(&key.as_str()))
            .then(|| f.get(i + 3)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_exclusive_lock_on_one_file_is_refused_naming_the_file_and_holder() {
        let path = std::env::temp_dir().join(format!("spdk-io-lock-{}", std::process::id()));
        let p = path.to_str().unwrap();
        let a = File::create(&path).unwrap();
        let b = File::open(&path).unwrap();
        let held = lock_file(&a, p, true).unwrap();
        let e = lock_file(&b, p, true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let msg = e.to_string();
        assert!(msg.contains(p), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        assert!(
            lock_file(&b, p, false).is_err(),
            "a reader waits for the writer"
        );
        drop(held);
        let r1 = lock_file(&a, p, false).unwrap();
        let _r2 = lock_file(&b, p, false).unwrap();
        assert!(
            lock_file(&b, p, true).is_err(),
            "a writer waits for readers"
        );
        drop(r1);
        std::fs::remove_file(&path).unwrap();
    }
}
