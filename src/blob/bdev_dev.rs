//! A bdev as a blobstore device (SPDK's `spdk_bdev_create_bs_dev`): the
//! blobstore's synchronous [`BsDev`] calls become bdev I/O on a channel of
//! the calling thread, completed by polling that channel.
//!
//! Each call copies through one reusable bounce [`IoBuf`] (bdev I/O owns its
//! buffer until completion; the blobstore lends a slice) and boxes one
//! small completion closure.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::dev::{check_range, BsDev};
use crate::bdev::{self, Channel, Desc, IoBuf, IoCompletion, IoData, IoType};

/// How long one I/O may take before it is reported as stuck.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A bdev descriptor (writable, or read-only for a store loaded with
/// [`super::LoadOpts::read_only`]) and a channel on the thread that opened it.
pub struct BdevBsDev {
    desc: Desc,
    ch: Channel,
    block_len: u32,
    block_count: u64,
    bounce: Option<IoBuf>,
    done: Rc<RefCell<Option<IoCompletion>>>,
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
        let (block_len, block_count) = (desc.bdev().block_size(), desc.bdev().num_blocks());
        Ok(BdevBsDev {
            desc,
            ch,
            block_len,
            block_count,
            bounce: None,
            done: Rc::default(),
        })
    }

    /// The descriptor.
    pub fn desc(&self) -> &Desc {
        &self.desc
    }

    fn buf(&mut self, len: usize) -> IoBuf {
        match self.bounce.take() {
            Some(b) if b.len() == len => b,
            _ => IoBuf::new(len),
        }
    }

    /// Submits one I/O and polls the channel until it completes.
    fn run(&mut self, io_type: IoType, lba: u64, blocks: u64, data: IoData) -> io::Result<IoData> {
        let slot = self.done.clone();
        let cb = Box::new(move |c: IoCompletion| *slot.borrow_mut() = Some(c));
        let d = &self.desc;
        let submitted = match (io_type, data) {
            (IoType::Read, IoData::Buf(b)) => d.read_blocks(&self.ch, b, lba, blocks, cb),
            (IoType::Write, IoData::Buf(b)) => d.write_blocks(&self.ch, b, lba, blocks, cb),
            (IoType::Unmap, _) => d.unmap_blocks(&self.ch, lba, blocks, cb),
            (IoType::WriteZeroes, _) => d.write_zeroes_blocks(&self.ch, lba, blocks, cb),
            (_, _) => d.flush_blocks(&self.ch, lba, blocks, cb),
        };
        if let Err(r) = submitted {
            return Err(err(format!(
                "bdev {}: {io_type:?} at block {lba} refused: {}",
                d.bdev().name(),
                r.error
            )));
        }
        let start = Instant::now();
        loop {
            if let Some(c) = self.done.borrow_mut().take() {
                if !c.success() {
                    return Err(err(format!(
                        "bdev {}: {io_type:?} at block {lba} failed: {:?}",
                        d.bdev().name(),
                        c.status
                    )));
                }
                return Ok(c.data);
            }
            if self.ch.poll() == 0 && start.elapsed() > IO_TIMEOUT {
                return Err(err(format!(
                    "bdev {}: {io_type:?} at block {lba} did not complete in {IO_TIMEOUT:?}",
                    d.bdev().name()
                )));
            }
        }
    }
}

impl BsDev for BdevBsDev {
    fn block_len(&self) -> u32 {
        self.block_len
    }
    fn block_count(&self) -> u64 {
        self.block_count
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        let blocks = check_range(self.block_len, self.block_count, lba, buf.len())?;
        let b = self.buf(buf.len());
        let data = self.run(IoType::Read, lba, blocks, IoData::Buf(b))?;
        let b = data
            .into_buf()
            .ok_or_else(|| err("bdev read returned no buffer".into()))?;
        buf.copy_from_slice(&b);
        self.bounce = Some(b);
        Ok(())
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        let blocks = check_range(self.block_len, self.block_count, lba, buf.len())?;
        let mut b = self.buf(buf.len());
        b.copy_from_slice(buf);
        let data = self.run(IoType::Write, lba, blocks, IoData::Buf(b))?;
        self.bounce = data.into_buf();
        Ok(())
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        check_range(
            self.block_len,
            self.block_count,
            lba,
            (blocks * self.block_len as u64) as usize,
        )?;
        if !self.desc.bdev().io_type_supported(IoType::Unmap) {
            return Ok(());
        }
        self.run(IoType::Unmap, lba, blocks, IoData::None)
            .map(|_| ())
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        check_range(
            self.block_len,
            self.block_count,
            lba,
            (blocks * self.block_len as u64) as usize,
        )?;
        if self.desc.bdev().io_type_supported(IoType::WriteZeroes) {
            return self
                .run(IoType::WriteZeroes, lba, blocks, IoData::None)
                .map(|_| ());
        }
        let chunk = (1u64 << 20) / self.block_len as u64;
        let zeros = vec![0u8; (chunk * self.block_len as u64) as usize];
        let mut done = 0;
        while done < blocks {
            let n = chunk.min(blocks - done);
            self.write(lba + done, &zeros[..(n * self.block_len as u64) as usize])?;
            done += n;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.desc.bdev().io_type_supported(IoType::Flush) {
            return Ok(());
        }
        self.run(IoType::Flush, 0, self.block_count, IoData::None)
            .map(|_| ())
    }
}
