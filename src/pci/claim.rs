//! One process per device: SPDK's `spdk_pci_device_claim`. Claiming a
//! function takes a write lock on `/var/tmp/spdk_pci_lock_<BDF>` and writes
//! the claiming pid into it; a second claimant (another spdk-io process, or
//! an SPDK application, whose process locks conflict with ours) is refused
//! with that pid. The lock is an open-file-description lock: it dies with
//! the process, and a second open of the file conflicts even in one process.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::{fcntl, FcntlArg};

use super::{PciAddress, PciError};

/// Where SPDK keeps its per-device lock files.
pub const LOCK_DIR: &str = "/var/tmp";

/// Claims held by this process, kept until it exits.
static CLAIMS: Mutex<Option<HashMap<PciAddress, File>>> = Mutex::new(None);

/// The lock file of `addr` in `dir` (`spdk_pci_lock_0000:00:04.0`).
pub fn lock_path(dir: &Path, addr: PciAddress) -> PathBuf {
    dir.join(format!("spdk_pci_lock_{addr}"))
}

/// Claims `addr` for this process (once; later calls are no-ops) with the
/// lock file in `dir`.
pub fn claim_in(dir: &Path, addr: PciAddress) -> Result<(), PciError> {
    let mut claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    let claims = claims.get_or_insert_with(HashMap::new);
    if claims.contains_key(&addr) {
        return Ok(());
    }
    // A minimal system (an initramfs) may have no /var/tmp yet.
    std::fs::create_dir_all(dir).map_err(|source| PciError::Io {
        what: format!("create the device lock directory {}", dir.display()),
        source,
    })?;
    let file = lock_file(&lock_path(dir, addr), addr)?;
    claims.insert(addr, file);
    Ok(())
}

/// Releases this process's claim of `addr` (spdk_pci_device_unclaim).
pub fn release(addr: PciAddress) {
    let mut claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    claims.get_or_insert_with(HashMap::new).remove(&addr);
}

fn lock_file(path: &Path, addr: PciAddress) -> Result<File, PciError> {
    let io = |what: &str| {
        let what = format!("{what} {}", path.display());
        move |source| PciError::Io { what, source }
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io("open device lock file"))?;
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    if fcntl(&file, FcntlArg::F_OFD_SETLK(&lock)).is_err() {
        let mut pid = [0u8; 4];
        let pid = file
            .read_exact_at(&mut pid, 0)
            .ok()
            .map(|()| i32::from_ne_bytes(pid))
            .filter(|&p| p > 0);
        return Err(PciError::Claimed {
            address: addr.to_string(),
            lock_file: path.display().to_string(),
            holder: pid.map_or("another process".into(), |p| format!("process {p}")),
        });
    }
    file.set_len(4).map_err(io("truncate"))?;
    file.write_all_at(&(std::process::id() as i32).to_ne_bytes(), 0)
        .map_err(io("write pid to"))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claimed_device_is_refused_to_a_second_claimant_naming_the_holder() {
        let dir = std::env::temp_dir().join(format!("spdk-io-pci-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let addr: PciAddress = "0000:00:04.0".parse().unwrap();
        let path = lock_path(&dir, addr);
        let held = lock_file(&path, addr).unwrap();
        let e = lock_file(&path, addr).unwrap_err().to_string();
        assert!(e.contains("0000:00:04.0"), "{e}");
        assert!(
            e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(held);
        claim_in(&dir, addr).unwrap();
        claim_in(&dir, addr).unwrap();
        assert!(lock_file(&path, addr).is_err(), "the claim is kept");
        release(addr);
        lock_file(&path, addr).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
