//! A bdev's life: registration (then every module examines it),
//! unregistration (hot remove: descriptors are told, locks end), and the
//! module's destruct once the last descriptor closes.

use super::device::{Bdev, BdevProps, BdevState, OpenDesc};
use super::ops::BdevOps;
use super::range_lock::LockTable;
use super::uuid::Uuid;
use super::{per_thread, registry, BdevError, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

impl Bdev {
    /// Registers a bdev made by `module` (`spdk_bdev_register`), then lets
    /// every module examine it (so virtual bdevs configured on top of it
    /// are created).
    pub fn register(props: BdevProps, module: &str, ops: Box<dyn BdevOps>) -> Result<Arc<Bdev>> {
        if props.name.is_empty() {
            return Err(BdevError::InvalidParam(
                "bdev name must not be empty".into(),
            ));
        }
        if props.block_size < 512 {
            return Err(BdevError::InvalidParam(format!(
                "block_size {} of '{}' must be at least 512",
                props.block_size, props.name
            )));
        }
        if props.num_blocks == 0 {
            return Err(BdevError::InvalidParam(format!(
                "bdev '{}' must have at least one block",
                props.name
            )));
        }
        let uuid = props.uuid.unwrap_or_else(Uuid::random);
        let io_device = per_thread::register(&props.name)?;
        let bdev = Arc::new(Bdev {
            blockcnt: AtomicU64::new(props.num_blocks),
            aliases: Mutex::new(props.aliases.clone()),
            props,
            uuid,
            module: module.to_string(),
            ops,
            removed: AtomicBool::new(false),
            state: Mutex::new(BdevState::default()),
            qos: super::qos::Qos::default(),
            io_device,
            locks: Mutex::new(LockTable::default()),
            resets: Mutex::default(),
        });
        if let Err(e) = registry::insert(&bdev) {
            bdev.io_device.unregister_detached();
            return Err(e);
        }
        log::info!("bdev '{}' registered by module {}", bdev.name(), module);
        super::module::examine(&bdev);
        Ok(bdev)
    }

    /// Unregisters the bdev (`spdk_bdev_unregister`): it can no longer be
    /// opened, every open descriptor gets [`super::BdevEvent::Remove`],
    /// new I/O fails with [`BdevError::Removed`], and the module's
    /// `destruct` runs once the last descriptor closes.
    pub fn unregister(self: &Arc<Self>) {
        if self.removed.swap(true, Ordering::AcqRel) {
            return;
        }
        registry::remove(self);
        log::info!("bdev '{}' unregistered", self.name());
        let descs: Vec<Arc<dyn OpenDesc>> =
            self.lock().descs.iter().filter_map(Weak::upgrade).collect();
        super::lock_end::bdev_removed(self);
        for d in descs {
            d.notify_remove();
        }
        self.maybe_destruct();
    }

    pub(crate) fn maybe_destruct(&self) {
        let run = {
            let mut st = self.lock();
            st.descs.retain(|w| w.strong_count() > 0);
            let run = self.is_removed() && st.descs.is_empty() && !st.destructed;
            if run {
                st.destructed = true;
            }
            run
        };
        if run {
            self.io_device.unregister_detached();
            self.ops.destruct();
        }
    }
}
