//! `blob import` and `blob export`: copies between a file and a blob in
//! bounded chunks (at most [`CHUNK`] bytes in memory, whatever the blob's
//! size), through the blobstore's asynchronous I/O with one owned buffer.
//! Export writes the blob's whole logical content — what a read of the
//! blob returns, snapshot data below a clone included — and leaves holes
//! where the blob reads zeroes because no cluster backs it.

use spdk_io::bdev::IoBuf;
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
pub async fn import<D: BsDev>(
    bs: &mut Blobstore<D>,
    id: BlobId,
    path: &Path,
) -> Result<u64, Error> {
    let h = bs.open_blob(id)?;
    let r = import_open(bs, id, path).await;
    let closed = bs.close_blob_async(h).await;
    let n = r?;
    closed?;
    Ok(n)
}

async fn import_open<D: BsDev>(
    bs: &mut Blobstore<D>,
    id: BlobId,
    path: &Path,
) -> Result<u64, Error> {
    let mut file = File::open(path).map_err(file_err(path))?;
    let len = file.metadata().map_err(file_err(path))?.len();
    let unit = bs.io_unit_size() as u64;
    let need = len.div_ceil(bs.cluster_size() as u64);
    if bs.blob_info(id)?.num_clusters < need {
        let h = bs.open_blob(id)?;
        let r = bs.resize_blob(&h, need);
        bs.close_blob_async(h).await?;
        r?;
    }
    let mut done = 0u64;
    let mut buf = IoBuf::new(0);
    while done < len {
        let n = CHUNK.min(len - done) as usize;
        let padded = (n as u64).div_ceil(unit) * unit;
        if buf.len() != padded as usize {
            buf = IoBuf::new(padded as usize);
        }
        file.read_exact(&mut buf[..n]).map_err(file_err(path))?;
        buf[n..].fill(0);
        buf = bs
            .write_async(id, done / unit, buf)
            .await
            .map_err(|e| format!("{e} (the first {done} of {len} bytes were written)"))?;
        done += n as u64;
    }
    Ok(len)
}

/// Writes blob `id`'s whole logical content to `path`; returns its size.
pub async fn export<D: BsDev>(
    bs: &mut Blobstore<D>,
    id: BlobId,
    path: &Path,
) -> Result<u64, Error> {
    let h = bs.open_blob(id)?;
    let unit = bs.io_unit_size() as u64;
    let cs = bs.cluster_size() as u64;
    let size = bs.num_io_units(&h) * unit;
    let r = async {
        let file = File::create(path).map_err(file_err(path))?;
        let mut buf = IoBuf::new(CHUNK.min(cs).min(size) as usize);
        for cluster in 0..size / cs {
            if !bs.cluster_has_data(&h, cluster)? {
                continue;
            }
            let mut off = cluster * cs;
            while off < (cluster + 1) * cs {
                let n = CHUNK.min((cluster + 1) * cs - off) as usize;
                if buf.len() != n {
                    buf = IoBuf::new(n);
                }
                buf = bs.read_async(id, off / unit, buf).await?;
                file.write_all_at(&buf, off).map_err(file_err(path))?;
                off += n as u64;
            }
        }
        file.set_len(size).map_err(file_err(path))?;
        Ok::<_, Error>(size)
    }
    .await;
    let closed = bs.close_blob_async(h).await;
    let n = r?;
    closed?;
    Ok(n)
}
