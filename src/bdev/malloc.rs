//! The malloc bdev (`bdev_malloc_create`): a RAM disk.
//!
//! As in SPDK, the disk lives in DMA memory (hugepages unless the env runs
//! `no_huge`), so [`env::init`](crate::env::init) must have run. Every
//! thread's channel copies straight in and out of it with no lock
//! ([`SharedDmaBuf`]): I/O to different blocks from different threads is
//! independent; I/O to the same blocks in flight at once from different
//! threads leaves those blocks unspecified, as on a real disk.
//!
//! Compare-and-write is not native here: the bdev layer emulates it (range
//! lock on every channel, Compare, Write, unlock), which makes it atomic
//! against writes and compare-and-writes from every thread. A native one
//! could only serialize compare-and-writes among themselves, since plain
//! writes copy without a lock.

use super::{
    Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoData, IoId, IoRequest, IoStatus,
    IoType, ModuleChannel, Result, Uuid,
};
use crate::env::SharedDmaBuf;
use crate::util::prefault;
use serde::Deserialize;
use std::sync::Arc;

/// Parameters of `bdev_malloc_create` (SPDK's names).
///
/// Outside this crate, build it with [`MallocOpts::new`] (or `Default`)
/// and set fields: more options may come, as SPDK's grow.
/// ```
/// use spdk_io::bdev::malloc::MallocOpts;
/// let mut o = MallocOpts::new("Malloc0", 2048, 512);
/// o.optimal_io_boundary = 8;
/// ```
/// A struct literal would break when a field is added, so it is refused:
/// ```compile_fail
/// let o = spdk_io::bdev::malloc::MallocOpts {
///     name: None, num_blocks: 1, block_size: 512, uuid: None, optimal_io_boundary: 0, md_size: 0,
/// };
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MallocOpts {
    /// Bdev name (SPDK makes `MallocN` when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Optional UUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Optimal I/O boundary in blocks (I/O crossing it is split).
    #[serde(default)]
    pub optimal_io_boundary: u64,
    /// Metadata size (only 0 is supported).
    #[serde(default)]
    pub md_size: u32,
}

impl Default for MallocOpts {
    /// No name (SPDK's `MallocN`), no blocks yet, 512-byte blocks.
    fn default() -> Self {
        MallocOpts {
            name: None,
            num_blocks: 0,
            block_size: 512,
            uuid: None,
            optimal_io_boundary: 0,
            md_size: 0,
        }
    }
}

impl MallocOpts {
    /// A disk named `name` of `num_blocks` blocks of `block_size` bytes;
    /// the other options at their defaults (no UUID, no I/O boundary).
    pub fn new(name: impl Into<String>, num_blocks: u64, block_size: u32) -> MallocOpts {
        MallocOpts {
            name: Some(name.into()),
            num_blocks,
            block_size,
            ..MallocOpts::default()
        }
    }
}

struct MallocModule;

impl BdevModule for MallocModule {
    fn name(&self) -> &'static str {
        "malloc"
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(MallocModule)
}

/// The disk's memory: DMA memory every channel copies in and out of
/// without a lock (see [`SharedDmaBuf`] for what racing I/O to the same
/// blocks does).
pub(crate) struct Ram {
    mem: SharedDmaBuf,
}

impl Ram {
    pub(crate) fn new(bytes: usize) -> Result<Ram> {
        let mem = SharedDmaBuf::alloc_zeroed(bytes, 4096).map_err(|e| {
            BdevError::InvalidParam(format!(
                "malloc: cannot allocate {bytes} bytes of DMA memory: {e}"
            ))
        })?;
        Ok(Ram { mem })
    }
}

fn done_status(ok: bool) -> IoStatus {
    if ok {
        IoStatus::Success
    } else {
        IoStatus::Failed
    }
}

struct MallocBdev {
    ram: Arc<Ram>,
    opts: MallocOpts,
}

/// How many queued reads ahead of the one being copied have their source
/// lines asked for (see [`MallocChannel::copy_reads`]).
const PREFETCH_AHEAD: usize = 2;

struct MallocChannel {
    ram: Arc<Ram>,
    done: Completer,
    /// Reads taken from their requests and not copied yet, in submission
    /// order: the channel's next poll copies them all, each one's source
    /// asked for while the ones before it copy, so the misses of a batch
    /// of reads out of a disk larger than the cache overlap instead of
    /// following one another.
    reads: Vec<QueuedRead>,
}

/// A read waiting for its copy: the request, where it reads, its buffers.
struct QueuedRead {
    id: IoId,
    pos: usize,
    len: usize,
    data: IoData,
}

impl MallocChannel {
    /// Copies every queued read, in order, and reports each with its
    /// buffers; returns how many. While one copies, the source lines of
    /// the read [`PREFETCH_AHEAD`] places behind it are already on their
    /// way.
    fn copy_reads(&mut self) -> usize {
        let n = self.reads.len();
        if n == 0 {
            return 0;
        }
        let mem = &self.ram.mem;
        for r in self.reads.iter().take(PREFETCH_AHEAD) {
            mem.prefetch(r.pos, r.len);
        }
        let mut queued = self.reads.drain(..);
        while let Some(mut r) = queued.next() {
            if let Some(next) = queued.as_slice().get(PREFETCH_AHEAD - 1) {
                mem.prefetch(next.pos, next.len);
            }
            let mut ok = true;
            let mut pos = r.pos;
            r.data.for_each_mut(0, r.len, |seg| {
                ok &= mem.read_at(pos, seg).is_ok();
                pos += seg.len();
            });
            self.done.complete_with_data(r.id, done_status(ok), r.data);
        }
        n
    }
}

impl ModuleChannel for MallocChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let mut pos = io.offset_bytes() as usize;
        let len = io.len_bytes();
        if io.io_type == IoType::Read {
            // A whole request's buffers wait in the queue for the next
            // poll; a piece of a split one (its buffers are shared) is
            // copied now, after the reads queued before it.
            if let Some(data) = io.take_data() {
                self.reads.push(QueuedRead {
                    id: io.id,
                    pos,
                    len,
                    data,
                });
                return;
            }
        }
        // Everything else takes effect in submission order: the queued
        // reads first.
        self.copy_reads();
        let mem = &self.ram.mem;
        // The bdev layer checked the range, so the copies cannot fail; if
        // one did, the I/O fails rather than the program.
        let mut ok = true;
        let status = match io.io_type {
            IoType::Read => {
                io.for_each_mut(|seg| {
                    ok &= mem.read_at(pos, seg).is_ok();
                    pos += seg.len();
                });
                done_status(ok)
            }
            IoType::Write => {
                io.for_each(|seg| {
                    ok &= mem.write_at(pos, seg).is_ok();
                    pos += seg.len();
                });
                done_status(ok)
            }
            IoType::Unmap | IoType::WriteZeroes => done_status(mem.fill_zero(pos, len).is_ok()),
            IoType::Compare => {
                let mut eq = true;
                io.for_each(|seg| {
                    match mem.compare_at(pos, seg) {
                        Ok(e) => eq &= e,
                        Err(_) => ok = false,
                    }
                    pos += seg.len();
                });
                match (ok, eq) {
                    (false, _) => IoStatus::Failed,
                    (true, true) => IoStatus::Success,
                    (true, false) => IoStatus::Miscompare,
                }
            }
            // Emulated by the bdev layer; never sent here.
            IoType::CompareAndWrite => IoStatus::Failed,
            IoType::Flush | IoType::Reset => IoStatus::Success,
        };
        self.done.complete(io.id, status);
    }

    /// Copies the reads queued since the last poll.
    fn poll(&mut self) -> usize {
        self.copy_reads()
    }

    /// Copies the reads that the completions just delivered submitted, so
    /// they complete in the same channel poll.
    fn reap_more(&mut self) -> usize {
        self.copy_reads()
    }

    /// A reap copies every read queued since the last one.
    fn completes_on_reap(&self) -> bool {
        true
    }

    fn outstanding(&self) -> usize {
        self.reads.len()
    }
}

impl BdevOps for MallocBdev {
    fn io_type_supported(&self, t: IoType) -> bool {
        t != IoType::CompareAndWrite
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        // Room for a queue as deep as the channel's pool, written once, so
        // the first deep batch of a run neither grows nor faults it in.
        let reads = prefault::vec_with_capacity(super::io_pool_size(), || QueuedRead {
            id: IoId::new(0, 0),
            pos: 0,
            len: 0,
            data: IoData::None,
        });
        Ok(Box::new(MallocChannel {
            ram: self.ram.clone(),
            done,
            reads,
        }))
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        let o = &self.opts;
        Some(
            serde_json::json!({"method": "bdev_malloc_create", "params": {
            "name": o.name, "num_blocks": o.num_blocks, "block_size": o.block_size, "uuid": o.uuid,
            "optimal_io_boundary": o.optimal_io_boundary}}),
        )
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Creates a malloc bdev; its memory is zeroed.
pub fn create(mut opts: MallocOpts) -> Result<Arc<Bdev>> {
    if opts.md_size != 0 {
        return Err(BdevError::InvalidParam(
            "malloc: metadata (md_size) is not supported; set it to 0".into(),
        ));
    }
    if opts.block_size < 512 || opts.block_size % 512 != 0 {
        return Err(BdevError::InvalidParam(format!(
            "malloc: block_size {} must be a multiple of 512",
            opts.block_size
        )));
    }
    let bytes = opts
        .num_blocks
        .checked_mul(opts.block_size as u64)
        .filter(|b| *b > 0 && *b <= isize::MAX as u64)
        .ok_or_else(|| {
            BdevError::InvalidParam(format!(
                "malloc: num_blocks {} is too large or 0",
                opts.num_blocks
            ))
        })?;
    let name = opts.name.clone().unwrap_or_else(|| {
        format!(
            "Malloc{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    });
    opts.name = Some(name.clone());
    let uuid = super::config::parse_uuid(opts.uuid.as_deref())?.unwrap_or_else(Uuid::random);
    opts.uuid = Some(uuid.to_string());
    let mut p = BdevProps::new(name, opts.block_size, opts.num_blocks);
    p.product_name = "Malloc disk".into();
    p.uuid = Some(uuid);
    p.optimal_io_boundary = opts.optimal_io_boundary;
    p.split_on_optimal_io_boundary = opts.optimal_io_boundary != 0;
    let ram = Arc::new(Ram::new(bytes as usize)?);
    Bdev::register(p, "malloc", Box::new(MallocBdev { ram, opts }))
}
