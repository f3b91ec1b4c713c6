//! The passthru virtual bdev (`bdev_passthru_create`): sits on a base bdev
//! and forwards every I/O unchanged. It is the template for writing a
//! virtual bdev:
//!
//! 1. a module whose `examine` creates configured vbdevs when their base appears;
//! 2. at creation, open the base for writing and claim it ([`BaseLink`]);
//! 3. register a bdev with the base's geometry and [`BdevOps`];
//! 4. per thread, a [`ModuleChannel`] that forwards requests through a
//!    [`Forwarder`] (which passes them through to the base's module channel
//!    whenever the base's channel allows), polls the base channel, and
//!    waits for what it passed through when it closes;
//! 5. when the base is removed, the vbdev is unregistered (done by `BaseLink`).

use super::vbdev::{BaseLink, Forwarder};
use super::{
    get_by_name, Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoRequest, IoType,
    ModuleChannel, Result,
};
use serde::Deserialize;
use std::sync::{Arc, Mutex};

/// Parameters of `bdev_passthru_create` (SPDK's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PassthruOpts {
    /// The base bdev (may not exist yet: created when it appears).
    pub base_bdev_name: String,
    /// The passthru bdev's name.
    pub name: String,
    /// Optional UUID.
    #[serde(default)]
    pub uuid: Option<String>,
}

impl PassthruOpts {
    /// A passthru bdev `name` over `base_bdev_name`, with a random UUID.
    pub fn new(base_bdev_name: impl Into<String>, name: impl Into<String>) -> PassthruOpts {
        PassthruOpts {
            base_bdev_name: base_bdev_name.into(),
            name: name.into(),
            uuid: None,
        }
    }
}

struct PassthruModule {
    pending: Mutex<Vec<PassthruOpts>>,
}

impl BdevModule for PassthruModule {
    fn name(&self) -> &'static str {
        "passthru"
    }
    fn examine(&self, bdev: &Arc<Bdev>) {
        let ready: Vec<PassthruOpts> = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let (now, later) = p.drain(..).partition(|o| o.base_bdev_name == bdev.name());
            *p = later;
            now
        };
        for o in ready {
            if let Err(e) = build(&o) {
                log::error!("passthru '{}' on '{}': {e}", o.name, o.base_bdev_name);
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

static MODULE: std::sync::OnceLock<Arc<PassthruModule>> = std::sync::OnceLock::new();

fn the_module() -> &'static Arc<PassthruModule> {
    MODULE.get_or_init(|| {
        Arc::new(PassthruModule {
            pending: Mutex::new(Vec::new()),
        })
    })
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    the_module().clone()
}

struct Passthru {
    base: BaseLink,
    opts: PassthruOpts,
}

struct PassthruChannel {
    fwd: Forwarder,
}

impl ModuleChannel for PassthruChannel {
    fn submit_request(&mut self, io: IoRequest<'_>) {
        self.fwd.forward(io, 0);
    }
    fn poll(&mut self) -> usize {
        self.fwd.poll()
    }
    fn shutdown(&mut self) -> bool {
        self.fwd.shutdown()
    }
}

impl BdevOps for Passthru {
    fn io_type_supported(&self, t: IoType) -> bool {
        self.base.desc.bdev().io_type_supported(t)
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(PassthruChannel {
            fwd: Forwarder::new(self.base.desc.clone(), done)?,
        }))
    }
    fn dump_info_json(&self) -> serde_json::Value {
        serde_json::json!({"passthru": {"name": self.opts.name, "base_bdev_name": self.opts.base_bdev_name}})
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        Some(
            serde_json::json!({"method": "bdev_passthru_create", "params": {
            "base_bdev_name": self.opts.base_bdev_name, "name": self.opts.name, "uuid": self.opts.uuid}}),
        )
    }
}

fn build(o: &PassthruOpts) -> Result<Arc<Bdev>> {
    let base = BaseLink::open(&o.base_bdev_name, "passthru")?;
    let b = base.desc.bdev().props().clone();
    let mut p = BdevProps::new(o.name.clone(), b.block_size, b.num_blocks);
    p.product_name = "passthru".into();
    p.uuid = super::config::parse_uuid(o.uuid.as_deref())?;
    p.write_cache = b.write_cache;
    let top = base.top_setter();
    let bdev = Bdev::register(
        p,
        "passthru",
        Box::new(Passthru {
            base,
            opts: o.clone(),
        }),
    )?;
    top.set(&bdev);
    Ok(bdev)
}

/// Creates a passthru bdev now if its base exists, else when the base is
/// registered. Returns the bdev when it was created now.
pub fn create(opts: PassthruOpts) -> Result<Option<Arc<Bdev>>> {
    if get_by_name(&opts.name).is_some() {
        return Err(BdevError::Exists(opts.name));
    }
    if get_by_name(&opts.base_bdev_name).is_some() {
        return build(&opts).map(Some);
    }
    log::info!(
        "passthru '{}' waits for base '{}'",
        opts.name,
        opts.base_bdev_name
    );
    the_module()
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(opts);
    Ok(None)
}

/// Deletes a passthru bdev (`bdev_passthru_delete`).
pub fn delete(name: &str) -> Result<()> {
    match get_by_name(name) {
        Some(b) if b.module_name() == "passthru" => {
            b.unregister();
            Ok(())
        }
        _ => Err(BdevError::NotFound(name.into())),
    }
}
