//! Bdev modules (SPDK's `struct spdk_bdev_module`): init and fini of the
//! whole module, and the examine hook through which virtual-bdev modules
//! see every new bdev and may claim it as a base.

use super::device::Bdev;
use super::Result;
use std::sync::{Arc, Mutex, Once};

/// A bdev module: a kind of bdev (null, malloc, file, ...) or of virtual
/// bdev (split, passthru, ...).
pub trait BdevModule: Send + Sync + 'static {
    /// Module name, as bdevs report it (`"malloc"`, `"split"`).
    fn name(&self) -> &'static str;

    /// Called once by [`init`] (`module_init`).
    fn module_init(&self) -> Result<()> {
        Ok(())
    }

    /// Called once by [`fini`] after every bdev is unregistered (`module_fini`).
    fn module_fini(&self) {}

    /// Sees every newly registered bdev (`examine_config` + `examine_disk`):
    /// a virtual-bdev module opens and claims the bases it was configured
    /// for and registers its bdevs on top.
    fn examine(&self, _bdev: &Arc<Bdev>) {}
}

static MODULES: Mutex<Vec<Arc<dyn BdevModule>>> = Mutex::new(Vec::new());
static BUILTIN: Once = Once::new();

fn modules() -> Vec<Arc<dyn BdevModule>> {
    BUILTIN.call_once(|| {
        let mut m = MODULES.lock().unwrap_or_else(|e| e.into_inner());
        for b in super::builtin_modules() {
            if !m.iter().any(|x| x.name() == b.name()) {
                m.push(b);
            }
        }
    });
    MODULES.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Adds a module (SPDK_BDEV_MODULE_REGISTER); the built-in ones are always there.
pub fn register_module(m: Arc<dyn BdevModule>) {
    modules();
    let mut all = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    if !all.iter().any(|x| x.name() == m.name()) {
        all.push(m);
    }
}

/// Names of the registered modules.
pub fn module_names() -> Vec<&'static str> {
    modules().iter().map(|m| m.name()).collect()
}

/// Runs every module's `module_init` (`spdk_bdev_initialize`).
pub fn init() -> Result<()> {
    for m in modules() {
        m.module_init()?;
    }
    Ok(())
}

/// Unregisters every bdev, newest first (so virtual bdevs go before their
/// bases), then runs every module's `module_fini` (`spdk_bdev_finish`).
pub fn fini() {
    for b in super::registry::bdevs().into_iter().rev() {
        b.unregister();
    }
    for m in modules() {
        m.module_fini();
    }
}

pub(crate) fn examine(bdev: &Arc<Bdev>) {
    for m in modules() {
        if bdev.is_removed() {
            return;
        }
        m.examine(bdev);
    }
}
