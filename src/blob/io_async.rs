//! Blob I/O as `async fn`s on the store itself, for any device: what the
//! metadata thread does for a [`super::BlobIoChannel`] (first writes to a
//! cluster, which allocate it, copy-on-write from a snapshot), and blob I/O
//! on a store whose device completes asynchronously. Buffers are owned
//! ([`IoBuf`]) and given back; an I/O within one cluster goes to the device
//! with the caller's buffer, one that spans clusters is split through
//! buffers of its own.

use crate::bdev::IoBuf;

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::store::{io_err, Blobstore};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    /// Reads within one logical cluster from io unit `unit`, following the
    /// parent chain, into the owned `buf`.
    pub(crate) async fn read_logical_buf(
        &mut self,
        mut id: BlobId,
        cluster: u64,
        unit: u64,
        mut buf: IoBuf,
    ) -> Result<IoBuf> {
        loop {
            let md = self.md(id)?;
            let c = md.clusters.get(cluster as usize).copied();
            match (c, md.parent()) {
                (Some(c), _) if c != 0 => {
                    let lba = self.unit_lba(c, unit);
                    let n = buf.len() as u64 / self.dev.block_len() as u64;
                    let f = self.dev.read_buf(lba, buf);
                    return f.await.map_err(io_err("read", lba, n));
                }
                (Some(_), Some(parent)) => id = parent,
                _ => {
                    buf.fill(0);
                    return Ok(buf);
                }
            }
        }
    }

    /// Each cluster-bounded piece of an I/O: (io unit offset, byte range in the buffer).
    fn pieces(
        &self,
        offset: u64,
        units: u64,
    ) -> impl Iterator<Item = (u64, std::ops::Range<usize>)> {
        let upc = self.io_units_per_cluster();
        let unit = self.sb.io_unit_size as usize;
        let end = offset + units;
        let mut off = offset;
        std::iter::from_fn(move || {
            if off >= end {
                return None;
            }
            let n = (upc - off % upc).min(end - off);
            let r = (off - offset) as usize * unit..(off - offset + n) as usize * unit;
            let at = off;
            off += n;
            Some((at, r))
        })
    }

    /// Reads `buf.len()` bytes at io unit `offset` of blob `id` (spdk_blob_io_read).
    pub async fn read_async(&mut self, id: BlobId, offset: u64, mut buf: IoBuf) -> Result<IoBuf> {
        let units = self.io_range(id, offset, buf.len())?;
        let upc = self.io_units_per_cluster();
        if offset % upc + units <= upc {
            return self
                .read_logical_buf(id, offset / upc, offset % upc, buf)
                .await;
        }
        let pieces: Vec<_> = self.pieces(offset, units).collect();
        for (off, r) in pieces {
            let part = IoBuf::new(r.len());
            let part = self
                .read_logical_buf(id, off / upc, off % upc, part)
                .await?;
            buf[r].copy_from_slice(&part);
        }
        Ok(buf)
    }

    /// Writes `buf` at io unit `offset` of blob `id` (spdk_blob_io_write):
    /// clusters the blob owns are written in place; others are allocated,
    /// filled from the parent (or zeroes) with the write on top, and the
    /// new map persisted.
    pub async fn write_async(&mut self, id: BlobId, offset: u64, buf: IoBuf) -> Result<IoBuf> {
        self.check_writable()?;
        if self.md(id)?.data_ro() {
            return Err(BlobError::ReadOnly(id));
        }
        let units = self.io_range(id, offset, buf.len())?;
        let upc = self.io_units_per_cluster();
        let bl = self.dev.block_len() as u64;
        let c = self.md(id)?.clusters[(offset / upc) as usize];
        if c != 0 && offset % upc + units <= upc {
            let lba = self.unit_lba(c, offset % upc);
            let n = buf.len() as u64 / bl;
            let f = self.dev.write_buf(lba, buf);
            return f.await.map_err(io_err("write", lba, n));
        }
        let mut allocated = false;
        let pieces: Vec<_> = self.pieces(offset, units).collect();
        for (off, r) in pieces {
            let cluster = (off / upc) as usize;
            let c = self.md(id)?.clusters[cluster];
            if c != 0 {
                let lba = self.unit_lba(c, off % upc);
                let n = r.len() as u64 / bl;
                let mut part = IoBuf::new(r.len());
                part.copy_from_slice(&buf[r]);
                let f = self.dev.write_buf(lba, part);
                f.await.map_err(io_err("write", lba, n))?;
            } else {
                self.allocate_cluster(id, cluster, Some((off % upc, &buf[r])))
                    .await?;
                allocated = true;
            }
        }
        if allocated {
            self.persist(id).await?;
        }
        Ok(buf)
    }

    /// Unmaps `len` io units of blob `id` (spdk_blob_io_unmap): the blob's
    /// own clusters are unmapped on the device.
    pub async fn unmap_async(&mut self, id: BlobId, offset: u64, len: u64) -> Result<()> {
        self.range_async(id, offset, len, false).await
    }

    /// Makes `len` io units of blob `id` read as zeroes (spdk_blob_io_write_zeroes).
    pub async fn write_zeroes_async(&mut self, id: BlobId, offset: u64, len: u64) -> Result<()> {
        self.range_async(id, offset, len, true).await
    }

    async fn range_async(&mut self, id: BlobId, offset: u64, len: u64, zeroes: bool) -> Result<()> {
        self.check_writable()?;
        if self.md(id)?.data_ro() {
            return Err(BlobError::ReadOnly(id));
        }
        let unit = self.sb.io_unit_size as u64;
        let bytes = usize::try_from(len.saturating_mul(unit))
            .map_err(|_| BlobError::InvalidArgument(format!("{len} io units")))?;
        let units = self.io_range(id, offset, bytes)?;
        let upc = self.io_units_per_cluster();
        let bpu = unit / self.dev.block_len() as u64;
        let mut allocated = false;
        let pieces: Vec<_> = self.pieces(offset, units).collect();
        for (off, r) in pieces {
            let cluster = (off / upc) as usize;
            let n = r.len() as u64 / unit;
            let (c, parent) = {
                let md = self.md(id)?;
                (md.clusters[cluster], md.parent())
            };
            if c != 0 {
                let lba = self.unit_lba(c, off % upc);
                let blocks = n * bpu;
                let (f, op) = if zeroes {
                    (self.dev.write_zeroes_async(lba, blocks), "write_zeroes")
                } else {
                    (self.dev.unmap_async(lba, blocks), "unmap")
                };
                f.await.map_err(io_err(op, lba, blocks))?;
            } else if zeroes && parent.is_some() {
                // Reads through to the snapshot: give it zeroed data of its own.
                let zero = vec![0u8; r.len()];
                self.allocate_cluster(id, cluster, Some((off % upc, &zero)))
                    .await?;
                allocated = true;
            }
        }
        if allocated {
            self.persist(id).await?;
        }
        Ok(())
    }
}
