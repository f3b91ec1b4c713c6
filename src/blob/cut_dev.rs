//! A device that loses power: every write after the first `limit` is
//! silently dropped, and the last one that lands may be torn (only its
//! first half of blocks written). Used to prove the commit protocol.

use std::io;

use super::dev::{BsDev, RamDev};

/// A [`RamDev`] with a write budget. Writes, unmaps and write-zeroes all
/// count as writes.
#[derive(Debug, Clone)]
pub struct PowerCutDev {
    inner: RamDev,
    writes: u64,
    limit: Option<u64>,
    tear_last: bool,
}

impl PowerCutDev {
    /// Wraps `inner`; with `limit` = Some(n) only the first n writes land,
    /// and with `tear_last` only the first half of the n-th write's blocks
    /// land (rounded down: a one-block write is lost whole).
    pub fn new(inner: RamDev, limit: Option<u64>, tear_last: bool) -> PowerCutDev {
        PowerCutDev {
            inner,
            writes: 0,
            limit,
            tear_last,
        }
    }

    /// Writes issued so far (landed or not).
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// The device contents as they would be found after the power cut.
    pub fn into_inner(self) -> RamDev {
        self.inner
    }

    /// What happens to the write being issued now.
    fn admit(&mut self) -> Admit {
        self.writes += 1;
        match self.limit {
            None => Admit::Full,
            Some(l) if self.writes < l => Admit::Full,
            Some(l) if self.writes == l => {
                if self.tear_last {
                    Admit::Torn
                } else {
                    Admit::Full
                }
            }
            Some(_) => Admit::Dropped,
        }
    }
}

enum Admit {
    Full,
    Torn,
    Dropped,
}

impl BsDev for PowerCutDev {
    fn block_len(&self) -> u32 {
        self.inner.block_len()
    }
    fn block_count(&self) -> u64 {
        self.inner.block_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read(lba, buf)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> io::Result<()> {
        super::dev::check_range(self.block_len(), self.block_count(), lba, buf.len())?;
        match self.admit() {
            Admit::Full => self.inner.write(lba, buf),
            Admit::Torn => {
                let bl = self.block_len() as usize;
                // Blocks are atomic: the first half of them (rounded down) land.
                let keep = buf.len() / bl / 2 * bl;
                self.inner.write(lba, &buf[..keep])
            }
            Admit::Dropped => Ok(()),
        }
    }
    fn unmap(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        match self.admit() {
            Admit::Dropped => Ok(()),
            Admit::Torn => self.inner.unmap(lba, blocks / 2),
            Admit::Full => self.inner.unmap(lba, blocks),
        }
    }
    fn write_zeroes(&mut self, lba: u64, blocks: u64) -> io::Result<()> {
        match self.admit() {
            Admit::Dropped => Ok(()),
            Admit::Torn => self.inner.write_zeroes(lba, blocks / 2),
            Admit::Full => self.inner.write_zeroes(lba, blocks),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
