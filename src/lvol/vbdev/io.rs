//! The lvol bdev's function table and what `bdev_get_bdevs` shows of it;
//! its per-thread channel is in `channel`.

use super::super::md_ops::Lvol;
use super::channel::LvolChannel;
use super::LvsBdev;
use crate::bdev::{BdevOps, Completer, IoType, ModuleChannel, Result as BdevResult};
use crate::blob::{Blob, BlobId};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What `bdev_get_bdevs` shows of an lvol (`vbdev_lvol_dump_info_json`),
/// refreshed after every lvol operation of its store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shown {
    pub thin: bool,
    pub allocated: u64,
    pub snapshot: bool,
    pub clone: bool,
    pub base_snapshot: Option<String>,
    pub clones: Vec<String>,
}

/// One lvol bdev.
pub(crate) struct LvolBdevOps {
    pub lvs: Arc<LvsBdev>,
    pub blob_id: BlobId,
    pub read_only: AtomicBool,
    pub shown: Mutex<Shown>,
    /// The lvol's blob, open while the bdev is registered (blob I/O needs
    /// it open, as SPDK keeps `lvol->blob`).
    pub blob: Mutex<Option<Blob>>,
}

impl LvolBdevOps {
    pub fn new(lvs: Arc<LvsBdev>, l: &Lvol, read_only: bool) -> LvolBdevOps {
        LvolBdevOps {
            lvs,
            blob_id: l.blob_id,
            read_only: AtomicBool::new(read_only),
            shown: Mutex::new(Shown::default()),
            blob: Mutex::new(None),
        }
    }

    fn io_type_supported(&self, t: IoType) -> bool {
        match t {
            IoType::Read | IoType::Reset => true,
            IoType::Write | IoType::Unmap | IoType::WriteZeroes => {
                !self.read_only.load(Ordering::Relaxed)
            }
            _ => false,
        }
    }

    fn dump_info_json(&self) -> serde_json::Value {
        let s = self.shown.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut o = json!({
            "lvol_store_uuid": self.lvs.lvs.uuid().to_string(),
            "base_bdev": self.lvs.base,
            "thin_provision": s.thin,
            "num_allocated_clusters": s.allocated,
            "snapshot": s.snapshot,
            "clone": s.clone,
        });
        if let Some(b) = s.base_snapshot {
            o["base_snapshot"] = b.into();
        }
        if s.snapshot {
            o["clones"] = s.clones.into();
        }
        o["esnap_clone"] = false.into();
        json!({ "lvol": o })
    }
}

/// What the bdev layer holds: a shared handle, so the module can update
/// what the bdev shows. No `write_config_json`: an lvol lives on its base
/// device and comes back by examine (as SPDK's `vbdev_lvol_write_config_json`).
pub(crate) struct OpsRef(pub Arc<LvolBdevOps>);

impl BdevOps for OpsRef {
    fn io_type_supported(&self, t: IoType) -> bool {
        self.0.io_type_supported(t)
    }

    fn get_io_channel(&self, completer: Completer) -> BdevResult<Box<dyn ModuleChannel>> {
        Ok(Box::new(LvolChannel::new(
            self.0.lvs.clone(),
            self.0.blob_id,
            completer,
        )))
    }

    fn dump_info_json(&self) -> serde_json::Value {
        self.0.dump_info_json()
    }
}
