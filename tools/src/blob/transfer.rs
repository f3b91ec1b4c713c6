//! `blob import` and `blob export`: copies between a file and a blob in
//! bounded chunks (at most [`CHUNK`] bytes in memory, whatever the blob's
//! size). Export writes the blob's whole logical content — what a read of
//! the blob returns, snapshot data below a clone included — and leaves
//! holes where the blob reads zeroes because no cluster backs it.

use spdk_io::blob::{BlobId, Blobstore, BsDev};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The most bytes held in memory at once.
pub const CHUNK: u64 = 1 << 20;

type Error = Box<dyn std::error::Error>;

fn file_err(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// Copies `path` into blob `id` from offset 0, growing the blob to hold
/// it; returns the bytes copied. The last io unit is padded with zeroes.
pub fn import<D: BsDev>(bs: &mut Blobstore<D>, id: BlobId, path: &Path) -> Result<u64, Error> {
    let mut file = File::open(path).map_err(file_err(path))?;
    let len = file.metadata().map_err(file_err(path))?.len();
    let unit = bs.io_unit_size() as u64;
    let h = bs.open_blob(id)?;
    let r = (|| -> Result<u64, Error> {
        let need = len.div_ceil(bs.cluster_size() as u64);
        if bs.num_clusters(&h) < need {
            bs.resize_blob(&h, need)?;
            bs.sync_md(&h)?;
        }
        let mut buf = vec![0u8; CHUNK.min(len.div_ceil(unit) * unit) as usize];
        let mut done = 0u64;
        while done < len {
            let n = CHUNK.min(len - done) as usize;
            file.read_exact(&mut buf[..n]).map_err(file_err(path))?;
            let padded = (n as u64).div_ceil(unit) * unit;
            buf[n..padded as usize].fill(0);
            bs.write(&h, done / unit, &buf[..padded as usize])
                .map_err(|e| format!("{e} (the first {done} of {len} bytes were written)"))?;
            done += n as u64;
        }
        Ok(len)
    })();
    let closed = bs.close_blob(h);
    let n = r?;
    closed?;
    Ok(n)
}

/// Writes blob `id`'s whole logical content to `path`; returns its size.
pub fn export<D: BsDev>(bs: &mut Blobstore<D>, id: BlobId, path: &Path) -> Result<u64, Error> {
    let h = bs.open_blob(id)?;
    let r = (|| -> Result<u64, Error> {
        let unit = bs.io_unit_size() as u64;
        let cs = bs.cluster_size() as u64;
        let size = bs.num_io_units(&h) * unit;
        let file = File::create(path).map_err(file_err(path))?;
        let mut buf = vec![0u8; CHUNK.min(cs).min(size) as usize];
        for cluster in 0..size / cs {
            if !bs.cluster_has_data(&h, cluster)? {
                continue;
            }
            let mut off = cluster * cs;
            while off < (cluster + 1) * cs {
                let n = CHUNK.min((cluster + 1) * cs - off) as usize;
                bs.read(&h, off / unit, &mut buf[..n])?;
                file.write_all_at(&buf[..n], off).map_err(file_err(path))?;
                off += n as u64;
            }
        }
        file.set_len(size).map_err(file_err(path))?;
        Ok(size)
    })();
    let closed = bs.close_blob(h);
    let n = r?;
    closed?;
    Ok(n)
}
