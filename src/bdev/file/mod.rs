//! The file bdev (`bdev_aio_create`, `bdev_uring_create`): a regular file
//! or a kernel block device driven through io_uring — the persistent bdev
//! that needs no hardware.
//!
//! The file is opened twice: with `O_DIRECT` where the filesystem allows
//! it, used for I/O whose buffers are 4 KiB-aligned, and buffered, used
//! for everything else (and when `O_DIRECT` is refused). Each channel owns
//! an io_uring; requests are queued in `submit_request` and handed to the
//! kernel by one `io_uring_enter` per poll, which also reaps completions.
//!
//! A file bdev opened for writing holds an exclusive [`lock`] on its file
//! (a read-only one a shared lock), so a second process cannot write the
//! same file under it.

pub mod lock;
mod uring;

use super::{
    Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoType, ModuleChannel, Result, Uuid,
};
use serde::Deserialize;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::Arc;

/// Parameters of `bdev_aio_create` / `bdev_uring_create` (SPDK's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FileOpts {
    /// Bdev name.
    pub name: String,
    /// Path of the regular file or block device.
    pub filename: String,
    /// Block size in bytes (default 512).
    #[serde(default)]
    pub block_size: Option<u32>,
    /// Open read-only (`bdev_aio_create`).
    #[serde(default)]
    pub readonly: bool,
    /// Accepted for compatibility (`bdev_aio_create`); space is not preallocated.
    #[serde(default)]
    pub fallocate: bool,
    /// Optional UUID.
    #[serde(default)]
    pub uuid: Option<String>,
}

impl FileOpts {
    /// A writable file bdev `name` on `filename`, 512-byte blocks, random UUID.
    pub fn new(name: impl Into<String>, filename: impl Into<String>) -> FileOpts {
        FileOpts {
            name: name.into(),
            filename: filename.into(),
            block_size: Some(512),
            readonly: false,
            fallocate: false,
            uuid: None,
        }
    }
}

struct FileModule;

impl BdevModule for FileModule {
    fn name(&self) -> &'static str {
        "file"
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(FileModule)
}

/// The open file, shared by every channel.
pub(crate) struct Backing {
    pub buffered: File,
    pub direct: Option<File>,
    pub readonly: bool,
    /// Held while the bdev exists.
    _lock: lock::FileLock,
}

struct FileBdev {
    backing: Arc<Backing>,
    opts: FileOpts,
    method: &'static str,
}

impl BdevOps for FileBdev {
    fn io_type_supported(&self, t: IoType) -> bool {
        match t {
            IoType::Read => true,
            IoType::Write | IoType::Flush | IoType::Unmap | IoType::WriteZeroes | IoType::Reset => {
                !self.backing.readonly
            }
            IoType::Compare | IoType::CompareAndWrite => false,
        }
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(uring::UringChannel::new(
            self.backing.clone(),
            done,
            &self.opts.filename,
        )?))
    }
    fn dump_info_json(&self) -> serde_json::Value {
        serde_json::json!({"file": {"filename": self.opts.filename, "o_direct": self.backing.direct.is_some(),
            "readonly": self.backing.readonly}})
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        let o = &self.opts;
        let params = if self.method == "bdev_uring_create" {
            serde_json::json!({"name": o.name, "filename": o.filename, "block_size": o.block_size, "uuid": o.uuid})
        } else {
            serde_json::json!({"name": o.name, "filename": o.filename, "block_size": o.block_size, "readonly": o.readonly,
                "fallocate": o.fallocate, "uuid": o.uuid})
        };
        Some(serde_json::json!({"method": self.method, "params": params}))
    }
}

fn os(op: &'static str, path: &str, e: std::io::Error) -> BdevError {
    BdevError::Os {
        op,
        path: path.to_string(),
        source: e.into(),
    }
}

/// Creates a file bdev; `method` is the RPC it was made by (`bdev_aio_create`
/// or `bdev_uring_create`), kept for `save_config`.
pub fn create(mut opts: FileOpts, method: &str) -> Result<Arc<Bdev>> {
    let path = opts.filename.clone();
    let meta = std::fs::metadata(&path).map_err(|e| os("open file bdev", &path, e))?;
    if !(meta.is_file() || meta.file_type().is_block_device()) {
        return Err(BdevError::InvalidParam(format!(
            "'{path}' is neither a regular file nor a block device"
        )));
    }
    let open = |direct: bool| {
        let mut o = OpenOptions::new();
        o.read(true).write(!opts.readonly);
        if direct {
            o.custom_flags(libc::O_DIRECT);
        }
        o.open(&path)
    };
    let mut buffered = open(false).map_err(|e| os("open file bdev", &path, e))?;
    let file_lock =
        lock::lock_file(&buffered, &path, !opts.readonly).map_err(|e| os("lock", &path, e))?;
    let direct = match open(true) {
        Ok(f) => Some(f),
        Err(e) => {
            log::info!(
                "file bdev '{}': O_DIRECT refused on {path} ({e}); using buffered I/O",
                opts.name
            );
            None
        }
    };
    let bytes = buffered
        .seek(SeekFrom::End(0))
        .map_err(|e| os("size of", &path, e))?;
    let block_size = opts.block_size.unwrap_or(512);
    if block_size < 512 || !block_size.is_power_of_two() {
        return Err(BdevError::InvalidParam(format!(
            "block_size {block_size} must be a power of two of at least 512"
        )));
    }
    let num_blocks = bytes / block_size as u64;
    if num_blocks == 0 {
        return Err(BdevError::InvalidParam(format!(
            "'{path}' holds {bytes} bytes, less than one {block_size}-byte block: grow it (truncate -s 64M {path})"
        )));
    }
    let uuid = super::config::parse_uuid(opts.uuid.as_deref())?.unwrap_or_else(Uuid::random);
    opts.uuid = Some(uuid.to_string());
    opts.block_size = Some(block_size);
    let mut p = BdevProps::new(opts.name.clone(), block_size, num_blocks);
    p.product_name = if method == "bdev_uring_create" {
        "URING bdev"
    } else {
        "AIO disk"
    }
    .into();
    p.uuid = Some(uuid);
    p.write_cache = true;
    let backing = Arc::new(Backing {
        buffered,
        direct,
        readonly: opts.readonly,
        _lock: file_lock,
    });
    let method = if method == "bdev_uring_create" {
        "bdev_uring_create"
    } else {
        "bdev_aio_create"
    };
    Bdev::register(
        p,
        "file",
        Box::new(FileBdev {
            backing,
            opts,
            method,
        }),
    )
}
