//! Bdev modules (SPDK's `struct spdk_bdev_module`): init and fini of the
//! whole module, and the examine hook through which virtual-bdev modules
//! see every new bdev and may claim it as a base.

use super::device::Bdev;
use super::Result;
use std::sync::atomic::{AtomicBool, Ordering};
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
static AUTO_EXAMINE: AtomicBool = AtomicBool::new(true);
/// Bdevs named by `bdev_examine` (examined although auto examine is off).
static ALLOWLIST: Mutex<Vec<String>> = Mutex::new(Vec::new());
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

/// Whether every new bdev is examined (SPDK's `bdev_auto_examine`, on by
/// default). Off, only bdevs named by [`examine_bdev`] are.
pub fn set_auto_examine(on: bool) {
    AUTO_EXAMINE.store(on, Ordering::Relaxed);
}

/// See [`set_auto_examine`].
pub fn auto_examine() -> bool {
    AUTO_EXAMINE.load(Ordering::Relaxed)
}

/// The bdevs named by [`examine_bdev`], in order.
pub fn examine_allowlist() -> Vec<String> {
    ALLOWLIST.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `bdev_examine`: lets the modules examine bdev `name` (now if it exists,
/// else when it is registered). Refused while auto examine is on, and for
/// a name already given.
pub fn examine_bdev(name: &str) -> Result<()> {
    if auto_examine() {
        return Err(super::BdevError::InvalidParam(format!(
            "bdev_examine {name}: manual examine is not allowed while auto examine is on (bdev_set_options bdev_auto_examine=false first)"
        )));
    }
    {
        let mut l = ALLOWLIST.lock().unwrap_or_else(|e| e.into_inner());
        if l.iter().any(|n| n == name) {
            return Err(super::BdevError::Exists(name.to_string()));
        }
        l.push(name.to_string());
    }
    if let Some(b) = super::registry::get_by_name(name) {
        examine_now(&b);
    }
    Ok(())
}

pub(crate) fn examine(bdev: &Arc<Bdev>) {
    if !auto_examine() {
        let allowed = ALLOWLIST
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|n| n == bdev.name() || bdev.aliases().contains(n));
        if !allowed {
            return;
        }
    }
    examine_now(bdev);
}

fn examine_now(bdev: &Arc<Bdev>) {
    for m in modules() {
        if bdev.is_removed() {
            return;
        }
        m.examine(bdev);
    }
}
