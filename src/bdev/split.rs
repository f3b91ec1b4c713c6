//! The split virtual bdev (`bdev_split_create`): cuts a base bdev into N
//! equal parts named `<base>p0`, `<base>p1`, ...

use super::vbdev::{BaseLink, Forwarder};
use super::{
    bdevs, get_by_name, Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, Desc,
    IoRequest, IoType, ModuleChannel, Result,
};
use serde::Deserialize;
use std::sync::{Arc, Mutex};

/// Parameters of `bdev_split_create` (SPDK's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SplitOpts {
    /// The base bdev (may not exist yet: split when it appears).
    pub base_bdev: String,
    /// Number of parts.
    pub split_count: u32,
    /// Size of each part in MiB; 0 or absent = the base divided evenly.
    #[serde(default)]
    pub split_size_mb: u64,
}

impl SplitOpts {
    /// `split_count` equal parts of `base_bdev`.
    pub fn new(base_bdev: impl Into<String>, split_count: u32) -> SplitOpts {
        SplitOpts {
            base_bdev: base_bdev.into(),
            split_count,
            split_size_mb: 0,
        }
    }
}

struct SplitModule {
    pending: Mutex<Vec<SplitOpts>>,
}

impl BdevModule for SplitModule {
    fn name(&self) -> &'static str {
        "split"
    }
    fn examine(&self, bdev: &Arc<Bdev>) {
        let ready: Vec<SplitOpts> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let (now, later) = p.drain(..).partition(|o| o.base_bdev == bdev.name());
            *p = later;
            now
        };
        for o in ready {
            if let Err(e) = build(&o) {
                log::error!("split of '{}': {e}", o.base_bdev);
            }
        }
    }
    fn module_fini(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

static MODULE: std::sync::OnceLock<Arc<SplitModule>> = std::sync::OnceLock::new();

fn the_module() -> &'static Arc<SplitModule> {
    MODULE.get_or_init(|| {
        Arc::new(SplitModule {
            pending: Mutex::new(Vec::new()),
        })
    })
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    the_module().clone()
}

struct Part {
    desc: Desc,
    offset_blocks: u64,
    index: u32,
    opts: SplitOpts,
    _base: Option<Arc<BaseLink>>,
}

struct PartChannel {
    fwd: Forwarder,
    shift: u64,
}

impl ModuleChannel for PartChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        self.fwd.forward(io, self.shift);
    }
    fn poll(&mut self) -> usize {
        self.fwd.poll()
    }
    fn shutdown(&mut self) -> bool {
        self.fwd.shutdown()
    }
}

impl BdevOps for Part {
    fn io_type_supported(&self, t: IoType) -> bool {
        self.desc.bdev().io_type_supported(t)
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(PartChannel {
            fwd: Forwarder::new(self.desc.clone(), done)?,
            shift: self.offset_blocks,
        }))
    }
    fn dump_info_json(&self) -> serde_json::Value {
        serde_json::json!({"split": {"base_bdev": self.opts.base_bdev, "offset_blocks": self.offset_blocks}})
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        (self.index == 0).then(|| {
            serde_json::json!({"method": "bdev_split_create", "params": {
                "base_bdev": self.opts.base_bdev, "split_count": self.opts.split_count,
                "split_size_mb": self.opts.split_size_mb}})
        })
    }
}

fn build(o: &SplitOpts) -> Result<Vec<Arc<Bdev>>> {
    if o.split_count == 0 {
        return Err(BdevError::InvalidParam(
            "split_count must be at least 1".into(),
        ));
    }
    let base = Arc::new(BaseLink::open(&o.base_bdev, "split")?);
    let b = base.desc.bdev().props().clone();
    let part_blocks = if o.split_size_mb > 0 {
        let want = (o.split_size_mb << 20) / b.block_size as u64;
        if want * o.split_count as u64 > b.num_blocks {
            return Err(BdevError::InvalidParam(format!(
                "split_count {} x split_size_mb {} exceeds base '{}' ({} MiB)",
                o.split_count,
                o.split_size_mb,
                o.base_bdev,
                (b.num_blocks * b.block_size as u64) >> 20
            )));
        }
        want
    } else {
        b.num_blocks / o.split_count as u64
    };
    if part_blocks == 0 {
        return Err(BdevError::InvalidParam(format!(
            "base '{}' is too small for {} parts",
            o.base_bdev, o.split_count
        )));
    }
    let setter = base.top_setter();
    let mut out = Vec::new();
    for i in 0..o.split_count {
        let mut p = BdevProps::new(format!("{}p{}", o.base_bdev, i), b.block_size, part_blocks);
        p.product_name = "Split Disk".into();
        p.write_cache = b.write_cache;
        let part = Part {
            desc: base.desc.clone(),
            offset_blocks: i as u64 * part_blocks,
            index: i,
            opts: o.clone(),
            _base: Some(base.clone()),
        };
        match Bdev::register(p, "split", Box::new(part)) {
            Ok(bd) => {
                setter.set(&bd);
                out.push(bd);
            }
            Err(e) => {
                for bd in &out {
                    bd.unregister();
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// Splits `base_bdev` now if it exists (returning the parts), else when it appears.
pub fn create(opts: SplitOpts) -> Result<Vec<Arc<Bdev>>> {
    if get_by_name(&opts.base_bdev).is_some() {
        return build(&opts);
    }
    let mut pending = the_module()
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if pending.iter().any(|o| o.base_bdev == opts.base_bdev) {
        return Err(BdevError::Exists(format!("split of {}", opts.base_bdev)));
    }
    log::info!("split of '{}' waits for the base to appear", opts.base_bdev);
    pending.push(opts);
    Ok(Vec::new())
}

/// Removes every part of `base_bdev` (`bdev_split_delete`), and a split
/// still waiting for that base.
pub fn delete(base_bdev: &str) -> Result<()> {
    let was_pending = {
        let mut p = the_module()
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let before = p.len();
        p.retain(|o| o.base_bdev != base_bdev);
        p.len() != before
    };
    let parts: Vec<_> = bdevs()
        .into_iter()
        .filter(|b| {
            b.module_name() == "split"
                && b.name()
                    .strip_prefix(base_bdev)
                    .is_some_and(|r| r.starts_with('p'))
        })
        .collect();
    if parts.is_empty() && !was_pending {
        return Err(BdevError::NotFound(format!("split parts of {base_bdev}")));
    }
    for p in parts {
        p.unregister();
    }
    Ok(())
}
