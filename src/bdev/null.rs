//! The null bdev (`bdev_null_create`): accepts every I/O and moves no data.
//! It measures the bdev layer itself.

use super::{
    Bdev, BdevModule, BdevOps, BdevProps, Completer, IoRequest, IoStatus, IoType, ModuleChannel,
    Result, Uuid,
};
use serde::Deserialize;
use std::sync::Arc;

/// Parameters of `bdev_null_create` (SPDK's names).
///
/// Outside this crate, build it with [`NullOpts::new`] (or `Default`) and
/// set fields: more options may come, as SPDK's grow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct NullOpts {
    /// Bdev name.
    pub name: String,
    /// Size in blocks.
    pub num_blocks: u64,
    /// Block size in bytes.
    pub block_size: u32,
    /// Optional UUID.
    #[serde(default)]
    pub uuid: Option<String>,
    /// Metadata size (only 0 is supported).
    #[serde(default)]
    pub md_size: u32,
    /// Data-integrity type (only 0 is supported).
    #[serde(default)]
    pub dif_type: u32,
}

impl Default for NullOpts {
    /// No name yet, no blocks yet, 512-byte blocks.
    fn default() -> Self {
        NullOpts {
            name: String::new(),
            num_blocks: 0,
            block_size: 512,
            uuid: None,
            md_size: 0,
            dif_type: 0,
        }
    }
}

impl NullOpts {
    /// A disk named `name` of `num_blocks` blocks of `block_size` bytes;
    /// the other options at their defaults.
    pub fn new(name: impl Into<String>, num_blocks: u64, block_size: u32) -> NullOpts {
        NullOpts {
            name: name.into(),
            num_blocks,
            block_size,
            ..NullOpts::default()
        }
    }
}

struct NullModule;

impl BdevModule for NullModule {
    fn name(&self) -> &'static str {
        "null"
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(NullModule)
}

struct NullBdev {
    opts: NullOpts,
}

struct NullChannel {
    done: Completer,
}

impl ModuleChannel for NullChannel {
    #[inline]
    fn submit_request(&mut self, io: IoRequest<'_>) {
        self.done.complete(io.id, IoStatus::Success);
    }
    /// Every request completes inside `submit_request`: nothing to poll.
    fn needs_poll(&self) -> bool {
        false
    }
}

impl BdevOps for NullBdev {
    fn io_type_supported(&self, t: IoType) -> bool {
        !matches!(t, IoType::Compare | IoType::CompareAndWrite)
    }
    fn emulate_compare_and_write(&self) -> bool {
        false
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(NullChannel { done }))
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        let o = &self.opts;
        Some(serde_json::json!({"method": "bdev_null_create", "params": {
            "name": o.name, "num_blocks": o.num_blocks, "block_size": o.block_size, "uuid": o.uuid}}))
    }
}

/// Creates a null bdev.
pub fn create(mut opts: NullOpts) -> Result<Arc<Bdev>> {
    if opts.md_size != 0 || opts.dif_type != 0 {
        return Err(super::BdevError::InvalidParam(format!(
            "null bdev '{}': metadata (md_size/dif_type) is not supported; set them to 0",
            opts.name
        )));
    }
    if opts
        .num_blocks
        .checked_mul(u64::from(opts.block_size))
        .is_none()
    {
        return Err(super::BdevError::InvalidParam(format!(
            "null bdev '{}': {} blocks of {} bytes is more than 2^64 bytes; give fewer blocks",
            opts.name, opts.num_blocks, opts.block_size
        )));
    }
    if opts
        .num_blocks
        .checked_mul(u64::from(opts.block_size))
        .is_none()
    {
        return Err(super::BdevError::InvalidParam(format!(
            "null bdev '{}': {} blocks of {} bytes is more than 2^64 bytes; give fewer blocks",
            opts.name, opts.num_blocks, opts.block_size
        )));
    }
    let uuid = super::config::parse_uuid(opts.uuid.as_deref())?.unwrap_or_else(Uuid::random);
    opts.uuid = Some(uuid.to_string());
    let mut p = BdevProps::new(opts.name.clone(), opts.block_size, opts.num_blocks);
    p.product_name = "Null disk".into();
    p.uuid = Some(uuid);
    Bdev::register(p, "null", Box::new(NullBdev { opts }))
}
