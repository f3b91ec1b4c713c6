//! The malloc bdev (`bdev_malloc_create`): a RAM disk.
//!
//! The RAM is shared by the channels of every thread. Safe Rust needs
//! exclusive access to copy into shared memory, so the disk is cut into
//! 2 MiB stripes, each behind its own mutex; an I/O locks only the stripes
//! it touches, uncontended unless two threads hit the same stripe at once.
//! Each stripe is an anonymous mapping backed by a transparent huge page
//! where the kernel allows (few TLB misses, as SPDK's hugepage memory),
//! faulted in at creation so no I/O pays a page fault.

use super::{
    Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoRequest, IoStatus, IoType,
    ModuleChannel, Result, Uuid,
};
use memmap2::MmapMut;
use serde::Deserialize;
use std::sync::{Arc, Mutex, MutexGuard};

/// Parameters of `bdev_malloc_create` (SPDK's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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

struct MallocModule;

impl BdevModule for MallocModule {
    fn name(&self) -> &'static str {
        "malloc"
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(MallocModule)
}

const STRIPE: usize = 2 << 20;

pub(crate) struct Ram {
    stripes: Vec<Mutex<MmapMut>>,
    stripe: usize,
}

impl Ram {
    pub(crate) fn new(bytes: usize, block_size: usize) -> Result<Ram> {
        let stripe = (STRIPE / block_size).max(1) * block_size;
        let n = bytes.div_ceil(stripe);
        let mut stripes = Vec::with_capacity(n);
        for i in 0..n {
            let len = stripe.min(bytes - i * stripe);
            let mut m = MmapMut::map_anon(len).map_err(|e| {
                BdevError::InvalidParam(format!("malloc: cannot map {len} bytes of RAM: {e}"))
            })?;
            #[cfg(target_os = "linux")]
            let _ = m.advise(memmap2::Advice::HugePage);
            // Fault every page in now (one fault per huge page when THP applies).
            for page in m.chunks_mut(4096) {
                page[0] = 0;
            }
            stripes.push(Mutex::new(m));
        }
        Ok(Ram { stripes, stripe })
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, MmapMut> {
        self.stripes[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Visits `len` bytes of the disk from byte `pos` stripe by stripe.
    fn walk(&self, mut pos: usize, mut len: usize, mut f: impl FnMut(&mut [u8])) {
        while len > 0 {
            let (i, o) = (pos / self.stripe, pos % self.stripe);
            let n = (self.stripe - o).min(len);
            f(&mut self.lock(i)[o..o + n]);
            pos += n;
            len -= n;
        }
    }

    pub(crate) fn read(&self, pos: usize, dst: &mut [u8]) {
        let mut at = 0;
        self.walk(pos, dst.len(), |s| {
            dst[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        });
    }

    pub(crate) fn write(&self, pos: usize, src: &[u8]) {
        let mut at = 0;
        self.walk(pos, src.len(), |s| {
            s.copy_from_slice(&src[at..at + s.len()]);
            at += s.len();
        });
    }

    fn zero(&self, pos: usize, len: usize) {
        self.walk(pos, len, |s| s.fill(0));
    }

    fn equal(&self, pos: usize, other: &[u8]) -> bool {
        let mut at = 0;
        let mut eq = true;
        self.walk(pos, other.len(), |s| {
            eq &= s == &other[at..at + s.len()];
            at += s.len();
        });
        eq
    }

    /// Compare-and-write under the locks of every stripe involved, taken in order.
    fn compare_and_write(&self, pos: usize, cmp: &[u8], data: &[u8]) -> bool {
        let first = pos / self.stripe;
        let last = (pos + cmp.len() - 1) / self.stripe;
        let mut guards: Vec<_> = (first..=last).map(|i| self.lock(i)).collect();
        let mut check = |write: bool| {
            let mut at = 0;
            let mut p = pos;
            for g in guards.iter_mut() {
                let o = p % self.stripe;
                let n = (g.len() - o).min(cmp.len() - at);
                if write {
                    g[o..o + n].copy_from_slice(&data[at..at + n]);
                } else if g[o..o + n] != cmp[at..at + n] {
                    return false;
                }
                at += n;
                p += n;
            }
            true
        };
        check(false) && check(true)
    }
}

struct MallocBdev {
    ram: Arc<Ram>,
    opts: MallocOpts,
}

struct MallocChannel {
    ram: Arc<Ram>,
    done: Completer,
}

impl ModuleChannel for MallocChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let mut pos = io.offset_bytes() as usize;
        let len = io.len_bytes();
        let status = match io.io_type {
            IoType::Read => {
                let ram = &self.ram;
                io.for_each_mut(|seg| {
                    ram.read(pos, seg);
                    pos += seg.len();
                });
                IoStatus::Success
            }
            IoType::Write => {
                let ram = &self.ram;
                io.for_each(|seg| {
                    ram.write(pos, seg);
                    pos += seg.len();
                });
                IoStatus::Success
            }
            IoType::Unmap | IoType::WriteZeroes => {
                self.ram.zero(pos, len);
                IoStatus::Success
            }
            IoType::Compare => {
                let mut eq = true;
                let ram = &self.ram;
                io.for_each(|seg| {
                    eq &= ram.equal(pos, seg);
                    pos += seg.len();
                });
                if eq {
                    IoStatus::Success
                } else {
                    IoStatus::Miscompare
                }
            }
            IoType::CompareAndWrite => {
                let ok = match (io.compare_half(), io.write_half()) {
                    (Some(c), Some(w)) => self.ram.compare_and_write(pos, c, w),
                    _ => false,
                };
                if ok {
                    IoStatus::Success
                } else {
                    IoStatus::Miscompare
                }
            }
            IoType::Flush | IoType::Reset => IoStatus::Success,
        };
        self.done.complete(io.id, status);
    }
}

impl BdevOps for MallocBdev {
    fn io_type_supported(&self, _t: IoType) -> bool {
        true
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(MallocChannel {
            ram: self.ram.clone(),
            done,
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
    let ram = Arc::new(Ram::new(bytes as usize, opts.block_size as usize)?);
    Bdev::register(p, "malloc", Box::new(MallocBdev { ram, opts }))
}
