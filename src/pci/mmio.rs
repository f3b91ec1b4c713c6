//! A shared mapping of device memory (a BAR), unmapped when the last
//! [`Bar`](super::Bar) using it goes.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use super::{Bar, PciError};

/// Owns an `mmap` of a device file (VFIO device fd or sysfs `resourceN`).
pub(crate) struct MmioMapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is device memory reached only through Bar's volatile accesses.
unsafe impl Send for MmioMapping {}
// SAFETY: as for Send.
unsafe impl Sync for MmioMapping {}

impl Drop for MmioMapping {
    fn drop(&mut self) {
        // SAFETY: this struct owns the mapping, and no Bar refers to it any more
        // (each Bar holds an Arc of this mapping).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Maps `len` bytes of `fd` at `offset` shared, read-write, as a [`Bar`].
pub(crate) fn map_bar(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    what: &str,
) -> Result<Bar, PciError> {
    // SAFETY: maps a device file at an address the kernel picks; the mapping is owned by
    // the MmioMapping below and touched only through volatile accesses.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(PciError::io(
            format!("mapping {what} ({len:#x} bytes)"),
            std::io::Error::last_os_error(),
        ));
    }
    let ptr = NonNull::new(p.cast::<u8>()).expect("mmap never returns null on success");
    let keep = Arc::new(MmioMapping { ptr, len });
    // SAFETY: ptr..ptr+len is a page-aligned mapping kept alive by `keep`.
    Ok(unsafe { Bar::from_raw(ptr, len, keep) })
}
