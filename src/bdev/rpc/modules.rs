//! Create and delete for each bdev module (SPDK's
//! `module/bdev/*/bdev_*_rpc.c`), with every parameter the current client
//! (`spdk-rpc` 26.9) sends. Parameters for features this crate lacks
//! (metadata, protection information) are accepted at their "off" value
//! and refused otherwise, naming the feature.

use super::errors::Failure;
use super::params;
use crate::bdev::{self, error_inject, file, malloc, null, passthru, split, BdevError, IoType};
use crate::rpc::RpcError;
use serde::Deserialize;
use serde_json::Value;

type Res = Result<Value, Failure>;

fn unsupported(method: &str, what: &str) -> Failure {
    Failure::Bdev(BdevError::InvalidParam(format!(
        "{method}: {what} is not supported by this crate; leave it unset"
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MallocParams {
    #[serde(default)]
    name: Option<String>,
    num_blocks: u64,
    block_size: u32,
    #[serde(default)]
    physical_block_size: Option<u32>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    optimal_io_boundary: u64,
    #[serde(default)]
    md_size: u32,
    #[serde(default)]
    md_interleave: bool,
    #[serde(default)]
    dif_type: u32,
    #[serde(default)]
    dif_is_head_of_md: bool,
    #[serde(default)]
    dif_pi_format: u32,
    #[serde(default)]
    numa_id: Option<i32>,
}

/// `bdev_malloc_create`: the new bdev's name.
pub(super) fn malloc_create(p: Value) -> Res {
    let p: MallocParams = params(p)?;
    if p.md_size != 0
        || p.md_interleave
        || p.dif_type != 0
        || p.dif_is_head_of_md
        || p.dif_pi_format != 0
    {
        return Err(unsupported(
            "bdev_malloc_create",
            "metadata / protection information",
        ));
    }
    if p.physical_block_size
        .is_some_and(|s| s % 512 != 0 || s < p.block_size)
    {
        return Err(Failure::Bdev(BdevError::InvalidParam(
            "bdev_malloc_create: physical_block_size must be a multiple of 512 and at least block_size".into(),
        )));
    }
    let _ = p.numa_id;
    let b = malloc::create(malloc::MallocOpts {
        name: p.name,
        num_blocks: p.num_blocks,
        block_size: p.block_size,
        uuid: p.uuid,
        optimal_io_boundary: p.optimal_io_boundary,
        md_size: 0,
    })?;
    Ok(b.name().into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NullParams {
    name: String,
    num_blocks: u64,
    block_size: u32,
    #[serde(default)]
    physical_block_size: Option<u32>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    md_size: u32,
    #[serde(default)]
    dif_type: u32,
    #[serde(default)]
    dif_is_head_of_md: bool,
    #[serde(default)]
    dif_pi_format: u32,
    #[serde(default)]
    preferred_write_alignment: Option<u32>,
    #[serde(default)]
    preferred_write_granularity: Option<u32>,
    #[serde(default)]
    optimal_write_size: Option<u32>,
    #[serde(default)]
    preferred_unmap_alignment: Option<u32>,
    #[serde(default)]
    preferred_unmap_granularity: Option<u32>,
}

/// `bdev_null_create`: the new bdev's name.
pub(super) fn null_create(p: Value) -> Res {
    let p: NullParams = params(p)?;
    if p.md_size != 0 || p.dif_type != 0 || p.dif_is_head_of_md || p.dif_pi_format != 0 {
        return Err(unsupported(
            "bdev_null_create",
            "metadata / protection information",
        ));
    }
    if p.physical_block_size.is_some_and(|s| s % 512 != 0) {
        return Err(Failure::Bdev(BdevError::InvalidParam(
            "bdev_null_create: physical_block_size must be a multiple of 512".into(),
        )));
    }
    let hints = [
        p.preferred_write_alignment,
        p.preferred_write_granularity,
        p.optimal_write_size,
        p.preferred_unmap_alignment,
        p.preferred_unmap_granularity,
    ];
    if hints.iter().flatten().any(|&h| h != 0) {
        log::info!(
            "bdev_null_create {}: write/unmap hints are accepted but not reported",
            p.name
        );
    }
    let b = null::create(null::NullOpts {
        name: p.name,
        num_blocks: p.num_blocks,
        block_size: p.block_size,
        uuid: p.uuid,
        md_size: 0,
        dif_type: 0,
    })?;
    Ok(b.name().into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AioParams {
    name: String,
    filename: String,
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    fallocate: bool,
    #[serde(default)]
    uuid: Option<String>,
    /// Sent by newer clients (submit without blocking); io_uring here
    /// never blocks on submission, so it changes nothing.
    #[serde(default)]
    nowait: bool,
}

/// `bdev_aio_create` (served by the io_uring file module): the name.
pub(super) fn aio_create(p: Value) -> Res {
    let p: AioParams = params(p)?;
    let _ = p.nowait;
    let b = file::create(
        file::FileOpts {
            name: p.name,
            filename: p.filename,
            block_size: p.block_size.filter(|&s| s != 0),
            readonly: p.readonly,
            fallocate: p.fallocate,
            uuid: p.uuid,
        },
        "bdev_aio_create",
    )?;
    Ok(b.name().into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UringParams {
    name: String,
    filename: String,
    #[serde(default)]
    block_size: Option<u32>,
    #[serde(default)]
    uuid: Option<String>,
}

/// `bdev_uring_create`: the name.
pub(super) fn uring_create(p: Value) -> Res {
    let p: UringParams = params(p)?;
    let b = file::create(
        file::FileOpts {
            name: p.name,
            filename: p.filename,
            block_size: p.block_size.filter(|&s| s != 0),
            readonly: false,
            fallocate: false,
            uuid: p.uuid,
        },
        "bdev_uring_create",
    )?;
    Ok(b.name().into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Name {
    name: String,
}

/// The `_delete` of a module: unregisters bdev `name` if that module made
/// it (`-ENODEV` otherwise, as SPDK answers).
pub(super) fn delete_of(module: &'static str, p: Value) -> Res {
    let p: Name = params(p)?;
    match bdev::get_by_name(&p.name) {
        Some(b) if b.module_name() == module && b.name() == p.name => {
            b.unregister();
            Ok(Value::Bool(true))
        }
        _ => Err(Failure::Bdev(BdevError::NotFound(p.name))),
    }
}

/// `bdev_split_create`: the names of the parts (none yet when the base
/// does not exist: they appear with it). Failures are `-32602` with
/// SPDK's text ("Failed to create 4 split bdevs from 'X': File exists").
pub(super) fn split_create(p: Value) -> Res {
    let p: split::SplitOpts = params(p)?;
    let (count, base) = (p.split_count, p.base_bdev.clone());
    let parts = split::create(p).map_err(|e| {
        log::error!("bdev_split_create: {e}");
        Failure::Rpc(RpcError::invalid_params(format!(
            "Failed to create {count} split bdevs from '{base}': {}",
            crate::rpc::strerror(super::errno_of(&e))
        )))
    })?;
    Ok(parts.iter().map(|b| Value::from(b.name())).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitDelete {
    base_bdev: String,
}

/// `bdev_split_delete`: removes every part made on `base_bdev`; an
/// unknown base is `-32602` "No such file or directory", as SPDK sends it.
pub(super) fn split_delete(p: Value) -> Res {
    let p: SplitDelete = params(p)?;
    split::delete(&p.base_bdev).map_err(|e| {
        log::error!("bdev_split_delete: {e}");
        let errno = match e {
            BdevError::NotFound(_) => libc::ENOENT,
            ref o => super::errno_of(o),
        };
        Failure::Rpc(RpcError::invalid_params(crate::rpc::strerror(errno)))
    })?;
    Ok(Value::Bool(true))
}

/// `bdev_passthru_create`: the passthru bdev's name (also when its base
/// does not exist yet).
pub(super) fn passthru_create(p: Value) -> Res {
    let p: passthru::PassthruOpts = params(p)?;
    let name = p.name.clone();
    passthru::create(p)?;
    Ok(name.into())
}

/// `bdev_error_create`: `true`, as SPDK answers (the bdev is `EE_<base>`,
/// made when the base appears if it does not exist yet).
pub(super) fn error_create(p: Value) -> Res {
    let p: error_inject::ErrorOpts = params(p)?;
    error_inject::create_or_wait(p)?;
    Ok(Value::Bool(true))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inject {
    name: String,
    io_type: String,
    error_type: String,
    #[serde(default)]
    num: Option<u32>,
    #[serde(default)]
    queue_depth: Option<u64>,
    #[serde(default)]
    corrupt_offset: Option<u64>,
    #[serde(default)]
    corrupt_value: Option<u8>,
    #[serde(default)]
    nvme_sct: Option<u8>,
    #[serde(default)]
    nvme_sc: Option<u8>,
}

/// `bdev_error_inject_error`: the next `num` (default 1) I/Os of
/// `io_type` (read, write, flush, unmap, all; `clear` removes every rule)
/// get `error_type` (failure, pending, nomem).
pub(super) fn error_inject(p: Value) -> Res {
    let p: Inject = params(p)?;
    let io_type = match p.io_type.as_str() {
        "read" => Some(Some(IoType::Read)),
        "write" => Some(Some(IoType::Write)),
        "flush" => Some(Some(IoType::Flush)),
        "unmap" => Some(Some(IoType::Unmap)),
        "all" => Some(None),
        "clear" => None,
        o => {
            return Err(Failure::Params(format!(
            "Invalid parameters: io_type '{o}' is not one of read, write, flush, unmap, all, clear"
        )))
        }
    };
    let kind = match p.error_type.as_str() {
        "failure" => error_inject::ErrorType::Failure,
        "pending" => error_inject::ErrorType::Pending,
        "nomem" => error_inject::ErrorType::Nomem,
        "corrupt_data" => return Err(unsupported("bdev_error_inject_error", "error_type corrupt_data")),
        o => {
            return Err(Failure::Params(format!(
                "Invalid parameters: error_type '{o}' is not one of failure, pending, corrupt_data, nomem"
            )))
        }
    };
    if p.queue_depth.is_some_and(|q| q != 0) {
        return Err(unsupported("bdev_error_inject_error", "queue_depth"));
    }
    if p.nvme_sct.is_some_and(|x| x != 0) || p.nvme_sc.is_some_and(|x| x != 0) {
        return Err(unsupported(
            "bdev_error_inject_error",
            "an NVMe status (nvme_sct/nvme_sc)",
        ));
    }
    let _ = (p.corrupt_offset, p.corrupt_value);
    match io_type {
        None => error_inject::clear_errors(&p.name)?,
        Some(t) => error_inject::inject_error(&p.name, t, kind, u64::from(p.num.unwrap_or(1)))?,
    }
    Ok(Value::Bool(true))
}

/// `bdev_malloc_delete`.
pub(super) fn malloc_delete(p: Value) -> Res {
    delete_of("malloc", p)
}

/// `bdev_null_delete`.
pub(super) fn null_delete(p: Value) -> Res {
    delete_of("null", p)
}

/// `bdev_aio_delete` and `bdev_uring_delete` (one file module serves both).
pub(super) fn file_delete(p: Value) -> Res {
    delete_of("file", p)
}

/// `bdev_passthru_delete`.
pub(super) fn passthru_delete(p: Value) -> Res {
    delete_of("passthru", p)
}

/// `bdev_error_delete`.
pub(super) fn error_delete(p: Value) -> Res {
    delete_of("error", p)
}
