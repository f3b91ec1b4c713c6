//! Every VFIO ioctl in one place. Request numbers are `_IO(';', 100 + n)`:
//! VFIO passes argument sizes in `argsz`, not in the request number.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use vfio_bindings::bindings::vfio::{
    vfio_group_status, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap, vfio_region_info,
    VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE, VFIO_IOMMU_INFO_CAPS,
    VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, VFIO_TYPE,
};

const fn vfio_io(n: u64) -> u64 {
    ((VFIO_TYPE as u64) << 8) | (100 + n)
}

pub(crate) const GET_API_VERSION: u64 = vfio_io(0);
pub(crate) const CHECK_EXTENSION: u64 = vfio_io(1);
pub(crate) const SET_IOMMU: u64 = vfio_io(2);
pub(crate) const IOMMU_GET_INFO: u64 = vfio_io(12);
pub(crate) const GROUP_GET_STATUS: u64 = vfio_io(3);
pub(crate) const GROUP_SET_CONTAINER: u64 = vfio_io(4);
pub(crate) const GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
pub(crate) const DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
pub(crate) const IOMMU_MAP_DMA: u64 = vfio_io(13);
pub(crate) const IOMMU_UNMAP_DMA: u64 = vfio_io(14);

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// An ioctl whose argument is an integer (or nothing).
pub(crate) fn ioctl_val(
    fd: BorrowedFd<'_>,
    req: u64,
    arg: libc::c_ulong,
) -> io::Result<libc::c_int> {
    // SAFETY: these VFIO requests take an integer argument by value; no memory is passed.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) })
}

/// VFIO_GROUP_GET_STATUS: the group's flags.
pub(crate) fn group_status(group: BorrowedFd<'_>) -> io::Result<u32> {
    let mut st = vfio_group_status {
        argsz: std::mem::size_of::<vfio_group_status>() as u32,
        flags: 0,
    };
    // SAFETY: `st` is a vfio_group_status with argsz set; the kernel writes within it.
    check(unsafe { libc::ioctl(group.as_raw_fd(), GROUP_GET_STATUS as _, &mut st) })?;
    Ok(st.flags)
}

/// VFIO_GROUP_SET_CONTAINER.
pub(crate) fn group_set_container(
    group: BorrowedFd<'_>,
    container: BorrowedFd<'_>,
) -> io::Result<()> {
    let fd: libc::c_int = container.as_raw_fd();
    // SAFETY: the argument is a pointer to an int holding the container fd, as the ioctl expects.
    check(unsafe { libc::ioctl(group.as_raw_fd(), GROUP_SET_CONTAINER as _, &fd) })?;
    Ok(())
}

/// VFIO_GROUP_GET_DEVICE_FD: a new fd for the device named `name` (its PCI address).
pub(crate) fn group_get_device_fd(group: BorrowedFd<'_>, name: &str) -> io::Result<libc::c_int> {
    let c =
        std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the argument is a NUL-terminated device name the kernel only reads.
    check(unsafe { libc::ioctl(group.as_raw_fd(), GROUP_GET_DEVICE_FD as _, c.as_ptr()) })
}

/// VFIO_DEVICE_GET_REGION_INFO for region `index`.
pub(crate) fn region_info(device: BorrowedFd<'_>, index: u32) -> io::Result<vfio_region_info> {
    let mut info = vfio_region_info {
        argsz: std::mem::size_of::<vfio_region_info>() as u32,
        flags: 0,
        index,
        cap_offset: 0,
        size: 0,
        offset: 0,
    };
    // SAFETY: `info` is a vfio_region_info with argsz set; the kernel writes within argsz.
    check(unsafe { libc::ioctl(device.as_raw_fd(), DEVICE_GET_REGION_INFO as _, &mut info) })?;
    Ok(info)
}

/// VFIO_IOMMU_MAP_DMA, readable and writable by the device.
pub(crate) fn map_dma(
    container: BorrowedFd<'_>,
    vaddr: u64,
    iova: u64,
    size: u64,
) -> io::Result<()> {
    let map = vfio_iommu_type1_dma_map {
        argsz: std::mem::size_of::<vfio_iommu_type1_dma_map>() as u32,
        flags: VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        vaddr,
        iova,
        size,
    };
    // SAFETY: `map` is a complete vfio_iommu_type1_dma_map the kernel only reads; the
    // mapped memory is owned by the env, which unmaps it here before releasing it.
    check(unsafe { libc::ioctl(container.as_raw_fd(), IOMMU_MAP_DMA as _, &map) })?;
    Ok(())
}

/// VFIO_IOMMU_UNMAP_DMA.
pub(crate) fn unmap_dma(container: BorrowedFd<'_>, iova: u64, size: u64) -> io::Result<()> {
    let mut unmap = vfio_iommu_type1_dma_unmap {
        argsz: std::mem::size_of::<vfio_iommu_type1_dma_unmap>() as u32,
        flags: 0,
        iova,
        size,
        data: Default::default(),
    };
    // SAFETY: `unmap` is a vfio_iommu_type1_dma_unmap with argsz covering only the fixed
    // part; the kernel writes back the unmapped size within it.
    check(unsafe { libc::ioctl(container.as_raw_fd(), IOMMU_UNMAP_DMA as _, &mut unmap) })?;
    Ok(())
}

/// VFIO_IOMMU_GET_INFO: the IOVA ranges (inclusive) the IOMMU can map, from
/// the IOVA-range capability; empty if the kernel does not report them.
pub(crate) fn iova_ranges(container: BorrowedFd<'_>) -> io::Result<Vec<(u64, u64)>> {
    // u64 words keep the buffer 8-aligned for the kernel's structs.
    let mut words = vec![0u64; 3];
    loop {
        let argsz = (words.len() * 8) as u32;
        words[0] = argsz as u64; // argsz in the low half, flags = 0
                                 // SAFETY: the buffer holds `argsz` writable bytes starting with a
                                 // vfio_iommu_type1_info whose argsz says so; the kernel writes within it.
        check(unsafe {
            libc::ioctl(
                container.as_raw_fd(),
                IOMMU_GET_INFO as _,
                words.as_mut_ptr(),
            )
        })?;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let need = u32::from_ne_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
        if need > bytes.len() {
            words = vec![0u64; need.div_ceil(8)];
            continue;
        }
        return Ok(parse_iova_ranges(&bytes));
    }
}

/// Walks the capability chain of a vfio_iommu_type1_info in `buf` and returns
/// the ranges of its IOVA-range capability.
pub(crate) fn parse_iova_ranges(buf: &[u8]) -> Vec<(u64, u64)> {
    let u16_at = |o: usize| {
        buf.get(o..o + 2)
            .map(|b| u16::from_ne_bytes(b.try_into().expect("2")))
    };
    let u32_at = |o: usize| {
        buf.get(o..o + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4")))
    };
    let u64_at = |o: usize| {
        buf.get(o..o + 8)
            .map(|b| u64::from_ne_bytes(b.try_into().expect("8")))
    };
    let flags = u32_at(4).unwrap_or(0);
    if flags & VFIO_IOMMU_INFO_CAPS == 0 {
        return Vec::new();
    }
    let mut off = u32_at(16).unwrap_or(0) as usize;
    let mut hops = 0;
    while off != 0 && hops < 32 {
        hops += 1;
        let (Some(id), Some(next)) = (u16_at(off), u32_at(off + 4)) else {
            break;
        };
        if id as u32 == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let n = u32_at(off + 8).unwrap_or(0) as usize;
            return (0..n)
                .map_while(|i| {
                    let r = off + 16 + i * 16;
                    Some((u64_at(r)?, u64_at(r + 8)?))
                })
                .collect();
        }
        off = next as usize;
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put32(b: &mut [u8], o: usize, v: u32) {
        b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put64(b: &mut [u8], o: usize, v: u64) {
        b[o..o + 8].copy_from_slice(&v.to_ne_bytes());
    }

    #[test]
    fn iova_ranges_are_found_in_the_capability_chain() {
        let mut b = vec![0u8; 96];
        put32(&mut b, 0, 96);
        put32(&mut b, 4, VFIO_IOMMU_INFO_CAPS);
        put32(&mut b, 16, 24); // first cap: some other id, pointing to the next
        b[24..26].copy_from_slice(&7u16.to_ne_bytes());
        put32(&mut b, 28, 40);
        b[40..42].copy_from_slice(&(VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16).to_ne_bytes());
        put32(&mut b, 48, 2);
        put64(&mut b, 56, 0);
        put64(&mut b, 64, 0xfedf_ffff);
        put64(&mut b, 72, 0xfef0_0000);
        put64(&mut b, 80, (1 << 39) - 1);
        assert_eq!(
            parse_iova_ranges(&b),
            vec![(0, 0xfedf_ffff), (0xfef0_0000, (1 << 39) - 1)]
        );
    }

    #[test]
    fn a_truncated_or_capless_info_yields_no_ranges() {
        let mut b = vec![0u8; 24];
        assert!(parse_iova_ranges(&b).is_empty());
        put32(&mut b, 4, VFIO_IOMMU_INFO_CAPS);
        put32(&mut b, 16, 200);
        assert!(parse_iova_ranges(&b).is_empty());
    }
}
