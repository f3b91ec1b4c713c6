//! A shared mapping of device memory (a BAR), unmapped when the last
//! [`Bar`](super::Bar) using it goes.

use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{Bar, PciError};

/// Maps `len` bytes of `fd` (a VFIO device fd or a sysfs `resourceN`) at
/// `offset`, shared and read-write, as a [`Bar`]. The memmap2 mapping is
/// owned by the `Bar` (and its clones) and unmapped when the last one goes.
pub(crate) fn map_bar(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: usize,
    what: &str,
) -> Result<Bar, PciError> {
    let map = memmap2::MmapOptions::new()
        .offset(offset)
        .len(len)
        .map_raw(&fd)
        .map_err(|e| PciError::io(format!("mapping {what} ({len:#x} bytes)"), e))?;
    let ptr = NonNull::new(map.as_mut_ptr()).expect("an mmap is never at 0");
    if ptr.as_ptr() as usize % 8 != 0 || map.len() < len {
        return Err(PciError::io(
            format!("mapping {what} ({len:#x} bytes)"),
            std::io::Error::other(format!("the mapping at {ptr:p} is misaligned or short")),
        ));
    }
    // SAFETY: ptr..ptr+len is the (8-aligned, checked above) mapping owned by `map`,
    // which the Bar keeps alive; device memory is only reached through volatile accesses.
    Ok(unsafe { Bar::from_raw(ptr, len, Arc::new(map)) })
}
