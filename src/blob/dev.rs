//! The blobstore's device seam (SPDK's `struct spdk_bs_dev`) and the RAM and
//! file devices that implement it.
//!
//! Every operation has two forms: a synchronous one (its return is its
//! completion) and an asynchronous one that takes an owned [`IoBuf`] and
//! returns a future ([`DevIo`]) giving the buffer back, as `spdk_bs_dev`
//! completes through a callback. Devices that complete inline (RAM, file,
//! power-cut) implement the synchronous calls and get the asynchronous ones
//! for free, ready at once; [`super::BdevBsDev`] implements the asynchronous
//! ones as bdev I/O and refuses the synchronous ones
//! ([`BsDev::completes_inline`] says which kind a device is).
//!
//! A `BsDev` value is one thread's handle on the device (SPDK's bs_dev plus
//! that thread's io_channel): the blobstore owns one on its metadata thread,
//! and each thread doing blob I/O through a [`super::BlobIoChannel`] owns
//! another on the same device.

use std::fs::File;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::pin::Pin;

use crate::bdev::IoBuf;

/// The future of one asynchronous device operation.
pub type DevIo<'a, T> = Pin<Box<dyn Future<Output = io::Result<T>> + 'a>>;

/// A block device under a blobstore. Offsets and lengths are in blocks of
/// [`BsDev::block_len`] bytes; buffer lengths are whole blocks.
pub trait BsDev {
    /// Bytes per block.
    fn block_len(&self) -> u32;
    /// Blocks on the device.
    fn block_count(&self) -> u64;
    /// Reads `buf.len()` bytes from block `lba`.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `buf` at block `lba`.
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()>;
    /// Deallocates blocks; later reads return zeroes or old data.
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()>;
    /// Makes blocks read as zeroes.
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> io::Result<()>;
    /// Scatter read starting at block `lba`.
    fn readv(&mut self, mut lba: u64, bufs: &mut [&mut [u8]]) -> io::Result<()> {
        for b in bufs.iter_mut() {
            self.read(lba, b)?;
            lba += b.len() as u64 / self.block_len() as u64;
        }
        Ok(())
    }
    /// Gather write starting at block `lba`.
    fn writev(&mut self, mut lba: u64, bufs: &[&[u8]]) -> io::Result<()> {
        for b in bufs {
            self.write(lba, b)?;
            lba += b.len() as u64 / self.block_len() as u64;
        }
        Ok(())
    }
    /// Whether the synchronous calls work: every operation completes
    /// before it returns. A device that completes later (a bdev) says
    /// `false` and serves the asynchronous calls only.
    fn completes_inline(&self) -> bool {
        true
    }
    /// The bdev descriptor and this thread's channel under the device, if it
    /// is a bdev: blob I/O then goes to the bdev directly, with no boxed
    /// future per I/O.
    fn bdev(&self) -> Option<(&crate::bdev::Desc, &crate::bdev::Channel)> {
        None
    }
    /// Reads `buf.len()` bytes from block `lba` into the owned `buf`, which
    /// the future gives back filled.
    fn read_buf(&mut self, lba: u64, mut buf: IoBuf) -> DevIo<'_, IoBuf> {
        let r = self.read(lba, &mut buf).map(|()| buf);
        Box::pin(std::future::ready(r))
    }
    /// Writes the owned `buf` at block `lba`; the future gives it back.
    fn write_buf(&mut self, lba: u64, buf: IoBuf) -> DevIo<'_, IoBuf> {
        let r = self.write(lba, &buf).map(|()| buf);
        Box::pin(std::future::ready(r))
    }
    /// Asynchronous [`BsDev::unmap`].
    fn unmap_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        Box::pin(std::future::ready(self.unmap(lba, blocks)))
    }
    /// Asynchronous [`BsDev::write_zeroes`].
    fn write_zeroes_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        Box::pin(std::future::ready(self.write_zeroes(lba, blocks)))
    }
    /// Asynchronous [`BsDev::flush`].
    fn flush_async(&mut self) -> DevIo<'_, ()> {
        Box::pin(std::future::ready(self.flush()))
    }
}

impl<D: BsDev + ?Sized> BsDev for Box<D> {
    fn block_len(&self) -> u32 {
        (**self).block_len()
    }
    fn block_count(&self) -> u64 {
        (**self).block_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        (**self).read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        (**self).write(lba, buf)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        (**self).unmap(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        (**self).write_zeroes(lba, blocks)
    }
    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
    fn completes_inline(&self) -> bool {
        (**self).completes_inline()
    }
    fn bdev(&self) -> Option<(&crate::bdev::Desc, &crate::bdev::Channel)> {
        (**self).bdev()
    }
    fn read_buf(&mut self, lba: u64, buf: IoBuf) -> DevIo<'_, IoBuf> {
        (**self).read_buf(lba, buf)
    }
    fn write_buf(&mut self, lba: u64, buf: IoBuf) -> DevIo<'_, IoBuf> {
        (**self).write_buf(lba, buf)
    }
    fn unmap_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        (**self).unmap_async(lba, blocks)
    }
    fn write_zeroes_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        (**self).write_zeroes_async(lba, blocks)
    }
    fn flush_async(&mut self) -> DevIo<'_, ()> {
        (**self).flush_async()
    }
}

pub(crate) fn check_range(
    block_len: u32,
    block_count: u64,
    lba: u64,
    bytes: usize,
) -> io::Result<u64> {
    let bl = block_len as u64;
    if bytes as u64 % bl != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("length {bytes} is not a multiple of the block size {bl}"),
        ));
    }
    let blocks = bytes as u64 / bl;
    if lba
        .checked_add(blocks)
        .map_or(true, |end| end > block_count)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("blocks {lba}+{blocks} are past the end of the device ({block_count} blocks)"),
        ));
    }
    Ok(blocks)
}

/// A device in memory (SPDK's malloc bdev, for tests and benchmarks).
#[derive(Debug, Clone)]
pub struct RamDev {
    data: Vec<u8>,
    block_len: u32,
}

impl RamDev {
    /// A zeroed device of `block_count` blocks of `block_len` bytes.
    pub fn new(block_len: u32, block_count: u64) -> RamDev {
        RamDev {
            data: vec![0; (block_len as u64 * block_count) as usize],
            block_len,
        }
    }

    /// A device holding `image` (its length must be a multiple of `block_len`).
    pub fn from_image(image: Vec<u8>, block_len: u32) -> io::Result<RamDev> {
        check_range(block_len, u64::MAX, 0, image.len())?;
        Ok(RamDev {
            data: image,
            block_len,
        })
    }

    /// The device's bytes.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Consumes the device, returning its bytes.
    pub fn into_image(self) -> Vec<u8> {
        self.data
    }

    fn range(&self, lba: u64, bytes: usize) -> io::Result<std::ops::Range<usize>> {
        check_range(self.block_len, self.block_count(), lba, bytes)?;
        let start = (lba * self.block_len as u64) as usize;
        Ok(start..start + bytes)
    }
}

impl BsDev for RamDev {
    fn block_len(&self) -> u32 {
        self.block_len
    }
    fn block_count(&self) -> u64 {
        self.data.len() as u64 / self.block_len as u64
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        let r = self.range(lba, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        let r = self.range(lba, buf.len())?;
        self.data[r].copy_from_slice(buf);
        Ok(())
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        self.write_zeroes(lba, blocks)
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        let r = self.range(lba, (blocks * self.block_len as u64) as usize)?;
        self.data[r].fill(0);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A device backed by a regular file (like SPDK's aio bdev on a file):
/// pread/pwrite, unmap punches holes, flush is fdatasync.
#[derive(Debug)]
pub struct FileDev {
    file: File,
    /// One writer per file: held while the device is open.
    _lock: std::sync::Arc<crate::bdev::file::lock::FileLock>,
    block_len: u32,
    block_count: u64,
}

impl FileDev {
    /// Opens `path` read-write with blocks of `block_len` bytes; the file
    /// size, rounded down to whole blocks, is the device size. The file is
    /// locked exclusively while the device is open: a second opener, in
    /// this process or another, gets an `io::ErrorKind::WouldBlock` error
    /// naming the file and the holder.
    pub fn open(path: &Path, block_len: u32) -> io::Result<FileDev> {
        if block_len == 0 || !block_len.is_power_of_two() || block_len > 4096 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("block size {block_len} must be a power of two up to 4096"),
            ));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let lock = crate::bdev::file::lock::lock_file(&file, &path.display().to_string(), true)?;
        // Seeking to the end sizes block devices too (their metadata length is 0).
        let len = std::io::Seek::seek(&mut &file, std::io::SeekFrom::End(0))?;
        Ok(FileDev {
            file,
            _lock: std::sync::Arc::new(lock),
            block_len,
            block_count: len / block_len as u64,
        })
    }
}

impl FileDev {
    /// Another handle on the same open file, sharing its lock: the device
    /// of a [`super::BlobIoChannel`] on another thread.
    pub fn try_clone(&self) -> io::Result<FileDev> {
        Ok(FileDev {
            file: self.file.try_clone()?,
            _lock: self._lock.clone(),
            block_len: self.block_len,
            block_count: self.block_count,
        })
    }
}

impl BsDev for FileDev {
    fn block_len(&self) -> u32 {
        self.block_len
    }
    fn block_count(&self) -> u64 {
        self.block_count
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        check_range(self.block_len, self.block_count, lba, buf.len())?;
        self.file.read_exact_at(buf, lba * self.block_len as u64)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        check_range(self.block_len, self.block_count, lba, buf.len())?;
        self.file.write_all_at(buf, lba * self.block_len as u64)
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        use nix::fcntl::{fallocate, FallocateFlags};
        let bytes = blocks * self.block_len as u64;
        check_range(self.block_len, self.block_count, lba, bytes as usize)?;
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(
            &self.file,
            flags,
            (lba * self.block_len as u64) as i64,
            bytes as i64,
        ) {
            Ok(()) => Ok(()),
            Err(_) => self.write_zeroes(lba, blocks),
        }
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        let bl = self.block_len as u64;
        check_range(
            self.block_len,
            self.block_count,
            lba,
            (blocks * bl) as usize,
        )?;
        let zeros = vec![0u8; 1 << 20];
        let (mut off, end) = (lba * bl, (lba + blocks) * bl);
        while off < end {
            let n = (end - off).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], off)?;
            off += n as u64;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_dev_refuses_io_past_the_end_and_partial_blocks() {
        let mut d = RamDev::new(512, 8);
        assert!(d.write(7, &[1u8; 1024]).is_err());
        assert!(d.write(0, &[1u8; 100]).is_err());
        d.write(7, &[1u8; 512]).unwrap();
        let mut b = [0u8; 512];
        d.read(7, &mut b).unwrap();
        assert_eq!(b, [1u8; 512]);
    }
}
