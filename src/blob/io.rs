//! Blob I/O in io units: read, write, readv, writev, unmap, write_zeroes.
//! Reads of unallocated clusters go to the parent snapshot (or read zeroes);
//! the first write to one allocates a cluster, fills it with the parent's
//! data (copy-on-write) or zeroes, applies the write, and persists the new
//! cluster map. I/O to allocated clusters goes straight to the device with
//! no allocation.

use crate::bdev::IoBuf;

use super::dev::BsDev;
use super::error::{BlobError, Result};
use super::inline;
use super::io_map::Entry;
use super::ops::Blob;
use super::store::{io_err, Blobstore};
use super::BlobId;

impl<D: BsDev> Blobstore<D> {
    pub(crate) fn io_range(&self, id: BlobId, offset: u64, bytes: usize) -> Result<u64> {
        let unit = self.sb.io_unit_size as u64;
        if bytes as u64 % unit != 0 {
            return Err(BlobError::InvalidArgument(format!(
                "I/O of {bytes} bytes is not a multiple of the io unit ({unit} bytes)"
            )));
        }
        let len = bytes as u64 / unit;
        let size = self.md(id)?.clusters.len() as u64 * self.io_units_per_cluster();
        if offset.checked_add(len).map_or(true, |end| end > size) {
            return Err(BlobError::OutOfRange {
                id,
                offset,
                len,
                size,
            });
        }
        Ok(len)
    }

    /// Device block of io unit `unit_in_cluster` of physical cluster `c`.
    pub(crate) fn unit_lba(&self, c: u32, unit_in_cluster: u64) -> u64 {
        self.cluster_lba(c) + unit_in_cluster * (self.sb.io_unit_size / self.dev.block_len()) as u64
    }

    /// Reads `buf.len()` bytes at io unit `offset` (spdk_blob_io_read).
    pub fn read(&mut self, blob: &Blob, offset: u64, buf: &mut [u8]) -> Result<()> {
        inline::check(self.dev.completes_inline(), "read")?;
        self.io_range(blob.id, offset, buf.len())?;
        let upc = self.io_units_per_cluster();
        let unit = self.sb.io_unit_size as usize;
        let (mut off, mut done) = (offset, 0usize);
        while done < buf.len() {
            let n = ((upc - off % upc) as usize * unit).min(buf.len() - done);
            self.read_logical(blob.id, off / upc, off % upc, &mut buf[done..done + n])?;
            done += n;
            off += (n / unit) as u64;
        }
        Ok(())
    }

    /// Reads within one logical cluster, following the parent chain.
    pub(crate) fn read_logical(
        &mut self,
        mut id: BlobId,
        cluster: u64,
        unit: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        loop {
            let md = self.md(id)?;
            let c = md.clusters.get(cluster as usize).copied();
            match (c, md.parent()) {
                (Some(c), _) if c != 0 => {
                    let lba = self.unit_lba(c, unit);
                    let n = buf.len() as u64 / self.dev.block_len() as u64;
                    return self.dev.read(lba, buf).map_err(io_err("read", lba, n));
                }
                (Some(_), Some(parent)) => id = parent,
                _ => {
                    buf.fill(0);
                    return Ok(());
                }
            }
        }
    }

    /// Writes `buf` at io unit `offset` (spdk_blob_io_write).
    pub fn write(&mut self, blob: &Blob, offset: u64, buf: &[u8]) -> Result<()> {
        inline::check(self.dev.completes_inline(), "write")?;
        self.write_inner(blob.id, offset, buf, false)
    }

    pub(crate) fn write_inner(
        &mut self,
        id: BlobId,
        offset: u64,
        buf: &[u8],
        zeroes: bool,
    ) -> Result<()> {
        self.check_writable()?;
        let md = self.md(id)?;
        if md.data_ro() {
            return Err(BlobError::ReadOnly(id));
        }
        let units = self.io_range(id, offset, buf.len())?;
        let upc = self.io_units_per_cluster();
        let unit = self.sb.io_unit_size as usize;
        let (mut off, end) = (offset, offset + units);
        let mut allocated = false;
        while off < end {
            let n = (upc - off % upc).min(end - off);
            let cluster = (off / upc) as usize;
            let c = self.md(id)?.clusters[cluster];
            let range = (off - offset) as usize * unit..(off - offset + n) as usize * unit;
            let piece = &buf[range];
            if c != 0 {
                let lba = self.unit_lba(c, off % upc);
                let blocks = piece.len() as u64 / self.dev.block_len() as u64;
                if zeroes {
                    self.dev.write_zeroes(lba, blocks).map_err(io_err(
                        "write_zeroes",
                        lba,
                        blocks,
                    ))?;
                } else {
                    self.dev
                        .write(lba, piece)
                        .map_err(io_err("write", lba, blocks))?;
                }
            } else if !(zeroes && self.md(id)?.parent().is_none()) {
                inline::now(
                    "write",
                    self.allocate_cluster(id, cluster, Some((off % upc, piece))),
                )?;
                allocated = true;
            }
            off += n;
        }
        if allocated {
            inline::now("write", self.persist(id))?;
        }
        Ok(())
    }

    /// Gives logical cluster `cluster` of blob `id` its own physical
    /// cluster, filled with what the blob reads there now (parent data or
    /// zeroes) with `overlay` (io unit offset, bytes) applied on top, in one
    /// device write — or, with no overlay over a cluster that reads as
    /// zeroes, one write-zeroes (no cluster-sized buffer). The caller
    /// persists the metadata.
    pub(crate) async fn allocate_cluster(
        &mut self,
        id: BlobId,
        cluster: usize,
        overlay: Option<(u64, &[u8])>,
    ) -> Result<u32> {
        if self.md(id)?.md_ro() {
            return Err(BlobError::MdReadOnly(id));
        }
        let cs = self.sb.cluster_size as usize;
        let blocks = cs as u64 / self.dev.block_len() as u64;
        let parent = self.md(id)?.parent();
        let from_parent = parent.filter(|&p| self.io_entry(p, cluster as u64) != Entry::Zero);
        let r = match (from_parent, overlay) {
            (None, None) => {
                let c = self.alloc_cluster()?;
                let lba = self.cluster_lba(c);
                let f = self.dev.write_zeroes_async(lba, blocks);
                (c, f.await.map_err(io_err("write_zeroes", lba, blocks)))
            }
            (from, overlay) => {
                let mut data = IoBuf::new(cs);
                if let Some(parent) = from {
                    data = self
                        .read_logical_buf(parent, cluster as u64, 0, data)
                        .await?;
                }
                if let Some((unit, bytes)) = overlay {
                    let start = unit as usize * self.sb.io_unit_size as usize;
                    data[start..start + bytes.len()].copy_from_slice(bytes);
                }
                let c = self.alloc_cluster()?;
                let lba = self.cluster_lba(c);
                let f = self.dev.write_buf(lba, data);
                (c, f.await.map(drop).map_err(io_err("write", lba, blocks)))
            }
        };
        let c = match r {
            (c, Ok(())) => c,
            (c, Err(e)) => {
                self.used_clusters.clear(c);
                return Err(e);
            }
        };
        let md = self.md_mut(id)?;
        md.clusters[cluster] = c;
        md.dirty = true;
        self.counters.clusters_allocated += 1;
        if let Some(log) = &mut self.alloc_log {
            log.push((id, cluster as u64));
        }
        Ok(c)
    }

    /// Scatter read (spdk_blob_io_readv): each buffer a whole number of io units.
    pub fn readv(&mut self, blob: &Blob, mut offset: u64, bufs: &mut [&mut [u8]]) -> Result<()> {
        let unit = self.sb.io_unit_size as u64;
        for b in bufs.iter_mut() {
            self.read(blob, offset, b)?;
            offset += b.len() as u64 / unit;
        }
        Ok(())
    }

    /// Gather write (spdk_blob_io_writev): each buffer a whole number of io units.
    pub fn writev(&mut self, blob: &Blob, mut offset: u64, bufs: &[&[u8]]) -> Result<()> {
        let unit = self.sb.io_unit_size as u64;
        for b in bufs {
            self.write(blob, offset, b)?;
            offset += b.len() as u64 / unit;
        }
        Ok(())
    }

    /// Unmaps `len` io units (spdk_blob_io_unmap): allocated clusters are
    /// unmapped on the device; what they read afterwards is up to the device.
    pub fn unmap(&mut self, blob: &Blob, offset: u64, len: u64) -> Result<()> {
        self.range_op(blob.id, offset, len, false)
    }

    /// Makes `len` io units read as zeroes (spdk_blob_io_write_zeroes).
    pub fn write_zeroes(&mut self, blob: &Blob, offset: u64, len: u64) -> Result<()> {
        self.range_op(blob.id, offset, len, true)
    }

    fn range_op(&mut self, id: BlobId, offset: u64, len: u64, zeroes: bool) -> Result<()> {
        if self.md(id)?.data_ro() {
            return Err(BlobError::ReadOnly(id));
        }
        let unit = self.sb.io_unit_size as u64;
        let size = self.md(id)?.clusters.len() as u64 * self.io_units_per_cluster();
        if offset.checked_add(len).map_or(true, |end| end > size) {
            return Err(BlobError::OutOfRange {
                id,
                offset,
                len,
                size,
            });
        }
        let upc = self.io_units_per_cluster();
        let zero = std::mem::take(&mut self.zero_cluster);
        let (mut off, end) = (offset, offset + len);
        let mut r = Ok(());
        while off < end && r.is_ok() {
            let n = (upc - off % upc).min(end - off);
            let piece = &zero[..(n * unit) as usize];
            r = if zeroes {
                self.write_inner(id, off, piece, true)
            } else {
                self.unmap_piece(id, off, n)
            };
            off += n;
        }
        self.zero_cluster = zero;
        r
    }

    fn unmap_piece(&mut self, id: BlobId, off: u64, n: u64) -> Result<()> {
        let upc = self.io_units_per_cluster();
        let c = self.md(id)?.clusters[(off / upc) as usize];
        if c != 0 {
            let lba = self.unit_lba(c, off % upc);
            let blocks = n * (self.sb.io_unit_size / self.dev.block_len()) as u64;
            self.dev
                .unmap(lba, blocks)
                .map_err(io_err("unmap", lba, blocks))?;
        }
        Ok(())
    }
}
