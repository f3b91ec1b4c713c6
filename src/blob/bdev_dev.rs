//! A bdev as a blobstore device (SPDK's `spdk_bdev_create_bs_dev`): each
//! operation is one bdev I/O submitted on the channel of the thread that
//! opened the device, with the caller's owned buffer handed to the bdev
//! (no copy), completing when that thread's poller sees it — the future
//! returned by [`BsDev::read_buf`] and the others resolves then. Nothing
//! waits in a loop: the synchronous [`BsDev`] calls are refused
//! ([`BsDev::completes_inline`] is `false`), so a blobstore on a bdev runs
//! through its `*_async` methods or a [`super::BlobstoreHandle`].

use std::future::ready;
use std::io;

use super::dev::{check_range, BsDev, DevIo};
use crate::bdev::{self, Channel, Desc, IoBuf, IoFailed, IoType};

/// A bdev descriptor (writable, or read-only for a store loaded with
/// [`super::LoadOpts::read_only`]) and a channel on the thread that opened it.
pub struct BdevBsDev {
    desc: Desc,
    ch: Channel,
    block_len: u32,
}

fn err(what: String) -> io::Error {
    io::Error::other(what)
}

impl BdevBsDev {
    /// Opens bdev `name` for writing, with a channel on the calling thread.
    pub fn open(name: &str) -> io::Result<BdevBsDev> {
        Self::open_mode(name, true)
    }

    /// Opens bdev `name` read-only (a read-only bdev opens too): every
    /// write, unmap or flush fails.
    pub fn open_read_only(name: &str) -> io::Result<BdevBsDev> {
        Self::open_mode(name, false)
    }

    /// The same device on the calling thread: a clone of `desc` (an open,
    /// perhaps claiming, descriptor) with this thread's channel. What a
    /// blob I/O channel of another thread is made on.
    pub fn on_this_thread(desc: &Desc) -> io::Result<BdevBsDev> {
        let desc = desc.clone();
        let name = desc.bdev().name().to_string();
        let ch = desc
            .get_io_channel()
            .map_err(|e| err(format!("bdev {name}: I/O channel: {e}")))?;
        let block_len = desc.bdev().block_size();
        Ok(BdevBsDev {
            desc,
            ch,
            block_len,
        })
    }

    fn open_mode(name: &str, write: bool) -> io::Result<BdevBsDev> {
        let desc = bdev::open(name, write).map_err(|e| err(format!("open bdev {name}: {e}")))?;
        if write && !desc.bdev().io_type_supported(IoType::Write) {
            return Err(err(format!(
                "bdev {name} is read-only (it does not support writes): open it read-only, or make it writable"
            )));
        }
        let ch = desc
            .get_io_channel()
            .map_err(|e| err(format!("bdev {name}: I/O channel: {e}")))?;
        let block_len = desc.bdev().block_size();
        Ok(BdevBsDev {
            desc,
            ch,
            block_len,
        })
    }

    /// The descriptor.
    pub fn desc(&self) -> &Desc {
        &self.desc
    }

    /// The channel (of the thread that opened the device).
    pub fn channel(&self) -> &Channel {
        &self.ch
    }

    fn failed(&self, io_type: IoType, lba: u64) -> impl FnOnce(Box<IoFailed>) -> io::Error + '_ {
        move |f| {
            err(format!(
                "bdev {}: {io_type:?} at block {lba} failed: {}",
                self.desc.bdev().name(),
                f.error
            ))
        }
    }

    fn range(&self, lba: u64, blocks: u64) -> io::Result<u64> {
        let bytes = blocks.saturating_mul(self.block_len as u64);
        let bytes = usize::try_from(bytes).map_err(|_| err(format!("{blocks} blocks")))?;
        check_range(self.block_len, self.block_count(), lba, bytes)
    }

    fn no_sync(&self, op: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "bdev {}: synchronous {op} refused: a bdev completes asynchronously; use the async form",
                self.desc.bdev().name()
            ),
        )
    }
}

impl BsDev for BdevBsDev {
    fn block_len(&self) -> u32 {
        self.block_len
    }
    /// The bdev's size now (a bdev that grew shows it: [`super::Blobstore::grow_async`]).
    fn block_count(&self) -> u64 {
        self.desc.bdev().num_blocks()
    }
    fn read(&mut self, _lba: u64, _buf: &mut [u8]) -> io::Result<()> {
        Err(self.no_sync("read"))
    }
    fn write(&mut self, _lba: u64, _buf: &[u8]) -> io::Result<()> {
        Err(self.no_sync("write"))
    }
    fn unmap(&mut self, _lba: u64, _blocks: u64) -> io::Result<()> {
        Err(self.no_sync("unmap"))
    }
    fn write_zeroes(&mut self, _lba: u64, _blocks: u64) -> io::Result<()> {
        Err(self.no_sync("write_zeroes"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(self.no_sync("flush"))
    }
    fn completes_inline(&self) -> bool {
        false
    }
    fn bdev(&self) -> Option<(&Desc, &Channel)> {
        Some((&self.desc, &self.ch))
    }
    fn read_buf(&mut self, lba: u64, buf: IoBuf) -> DevIo<'_, IoBuf> {
        let blocks = match check_range(self.block_len, self.block_count(), lba, buf.len()) {
            Ok(b) => b,
            Err(e) => return Box::pin(ready(Err(e))),
        };
        Box::pin(async move {
            let f = self.desc.read_blocks_async(&self.ch, buf, lba, blocks);
            f.await.map_err(self.failed(IoType::Read, lba))
        })
    }
    fn write_buf(&mut self, lba: u64, buf: IoBuf) -> DevIo<'_, IoBuf> {
        let blocks = match check_range(self.block_len, self.block_count(), lba, buf.len()) {
            Ok(b) => b,
            Err(e) => return Box::pin(ready(Err(e))),
        };
        Box::pin(async move {
            let f = self.desc.write_blocks_async(&self.ch, buf, lba, blocks);
            f.await.map_err(self.failed(IoType::Write, lba))
        })
    }
    fn unmap_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        if let Err(e) = self.range(lba, blocks) {
            return Box::pin(ready(Err(e)));
        }
        if !self.desc.bdev().io_type_supported(IoType::Unmap) {
            return Box::pin(ready(Ok(())));
        }
        Box::pin(async move {
            let f = self.desc.unmap_blocks_async(&self.ch, lba, blocks);
            f.await.map_err(self.failed(IoType::Unmap, lba))
        })
    }
    fn write_zeroes_async(&mut self, lba: u64, blocks: u64) -> DevIo<'_, ()> {
        if let Err(e) = self.range(lba, blocks) {
            return Box::pin(ready(Err(e)));
        }
        Box::pin(async move {
            if self.desc.bdev().io_type_supported(IoType::WriteZeroes) {
                let f = self.desc.write_zeroes_blocks_async(&self.ch, lba, blocks);
                return f.await.map_err(self.failed(IoType::WriteZeroes, lba));
            }
            // No native write-zeroes: write a zeroed buffer, 1 MiB at a time.
            let chunk = ((1u64 << 20) / self.block_len as u64).max(1);
            let mut zeros = IoBuf::new((chunk * self.block_len as u64) as usize);
            let mut done = 0;
            while done < blocks {
                let n = chunk.min(blocks - done);
                if n < chunk {
                    zeros = IoBuf::new((n * self.block_len as u64) as usize);
                }
                let f = self.desc.write_blocks_async(&self.ch, zeros, lba + done, n);
                zeros = f.await.map_err(self.failed(IoType::Write, lba + done))?;
                done += n;
            }
            Ok(())
        })
    }
    fn flush_async(&mut self) -> DevIo<'_, ()> {
        if !self.desc.bdev().io_type_supported(IoType::Flush) {
            return Box::pin(ready(Ok(())));
        }
        Box::pin(async move {
            let f = self
                .desc
                .flush_blocks_async(&self.ch, 0, self.block_count());
            f.await.map_err(self.failed(IoType::Flush, 0))
        })
    }
}
