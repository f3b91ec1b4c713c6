//! The error-injection virtual bdev (`bdev_error_create`, named
//! `EE_<base>`): forwards I/O to its base, except that injected rules make
//! chosen I/O types fail, report NOMEM (exercising the retry path) or stay
//! pending until a reset or the base's removal aborts them.

use super::vbdev::{BaseLink, Forwarder};
use super::{
    get_by_name, Bdev, BdevError, BdevModule, BdevOps, BdevProps, Completer, IoData, IoId,
    IoRequest, IoStatus, IoType, ModuleChannel, Result,
};
use serde::Deserialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Parameters of `bdev_error_create` (SPDK's names).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ErrorOpts {
    /// The base bdev.
    pub base_name: String,
    /// Optional UUID.
    #[serde(default)]
    pub uuid: Option<String>,
}

impl ErrorOpts {
    /// An error bdev (`EE_<base_name>`) over `base_name`, with a random UUID.
    pub fn new(base_name: impl Into<String>) -> ErrorOpts {
        ErrorOpts {
            base_name: base_name.into(),
            uuid: None,
        }
    }
}

/// What an injected rule does (`error_type` of `bdev_error_inject_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    /// Complete with `IoStatus::Failed`.
    Failure,
    /// Hold the I/O until a reset or the base's removal aborts it.
    Pending,
    /// Complete with NOMEM (the bdev layer retries it).
    Nomem,
}

struct Rule {
    io_type: Option<IoType>,
    kind: ErrorType,
    left: u64,
}

#[derive(Default)]
struct Inject {
    armed: AtomicBool,
    rules: Mutex<Vec<Rule>>,
}

impl Inject {
    fn take(&self, t: IoType) -> Option<ErrorType> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        let mut r = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        let hit = r
            .iter_mut()
            .find(|x| x.left > 0 && x.io_type.map_or(true, |y| y == t))
            .map(|x| {
                x.left -= 1;
                x.kind
            });
        r.retain(|x| x.left > 0);
        if r.is_empty() {
            self.armed.store(false, Ordering::Relaxed);
        }
        hit
    }
}

struct ErrorModule;

impl BdevModule for ErrorModule {
    fn name(&self) -> &'static str {
        "error"
    }
    fn examine(&self, bdev: &Arc<Bdev>) {
        let ready: Vec<ErrorOpts> = {
            let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
            let (now, later) = p.drain(..).partition(|o| o.base_name == bdev.name());
            *p = later;
            now
        };
        for o in ready {
            if let Err(e) = build(o) {
                log::error!("error bdev on '{}': {e}", bdev.name());
            }
        }
    }
    fn module_fini(&self) {
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

pub(crate) fn module() -> Arc<dyn BdevModule> {
    Arc::new(ErrorModule)
}

/// Error bdevs configured before their base exists (a config saved by
/// SPDK lists `bdev_error_create` before the bases): made when it appears.
static PENDING: Mutex<Vec<ErrorOpts>> = Mutex::new(Vec::new());

struct ErrorBdev {
    base: BaseLink,
    inject: Arc<Inject>,
    opts: ErrorOpts,
}

struct ErrorChannel {
    fwd: Forwarder,
    inject: Arc<Inject>,
    held: Vec<(IoId, IoData)>,
}

impl ErrorChannel {
    /// Reports every held request as aborted.
    fn abort_all(&mut self) {
        for (id, data) in self.held.drain(..) {
            self.fwd
                .done
                .complete_with_data(id, IoStatus::Aborted, data);
        }
    }
}

impl ModuleChannel for ErrorChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        match self.inject.take(io.io_type) {
            None => self.fwd.forward(io, 0),
            Some(ErrorType::Failure) => self.fwd.fail(&mut io, IoStatus::Failed),
            Some(ErrorType::Nomem) => self.fwd.fail(&mut io, IoStatus::NoMem),
            Some(ErrorType::Pending) => {
                let data = io.take_data().unwrap_or(IoData::None);
                self.held.push((io.id, data));
            }
        }
    }

    fn poll(&mut self) -> usize {
        let n = self.fwd.poll();
        if !self.held.is_empty() && self.fwd.desc.bdev().is_removed() {
            self.abort_all();
        }
        n
    }

    /// A reset walks every channel: what each holds is aborted (as SPDK's
    /// error module aborts its pending I/O on a reset).
    fn abort_held(&mut self) {
        self.abort_all();
    }

    fn outstanding(&self) -> usize {
        self.held.len()
    }

    fn shutdown(&mut self) -> bool {
        self.fwd.shutdown()
    }
}

impl BdevOps for ErrorBdev {
    fn io_type_supported(&self, t: IoType) -> bool {
        self.base.desc.bdev().io_type_supported(t)
    }
    fn get_io_channel(&self, done: Completer) -> Result<Box<dyn ModuleChannel>> {
        Ok(Box::new(ErrorChannel {
            fwd: Forwarder::new(self.base.desc.clone(), done)?,
            inject: self.inject.clone(),
            held: Vec::new(),
        }))
    }
    fn write_config_json(&self) -> Option<serde_json::Value> {
        Some(
            serde_json::json!({"method": "bdev_error_create", "params": {
            "base_name": self.opts.base_name, "uuid": self.opts.uuid}}),
        )
    }
}

static REGISTRY: Mutex<Vec<(String, std::sync::Weak<Inject>)>> = Mutex::new(Vec::new());

/// Creates `EE_<base_name>` on an existing base.
pub fn create(opts: ErrorOpts) -> Result<Arc<Bdev>> {
    build(opts)
}

/// `bdev_error_create`: creates `EE_<base_name>` now if the base exists
/// (returning it), else when the base is registered (as SPDK's error
/// module does).
pub fn create_or_wait(opts: ErrorOpts) -> Result<Option<Arc<Bdev>>> {
    let name = format!("EE_{}", opts.base_name);
    if get_by_name(&name).is_some() {
        return Err(BdevError::Exists(name));
    }
    if get_by_name(&opts.base_name).is_some() {
        return build(opts).map(Some);
    }
    let mut p = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if p.iter().any(|o| o.base_name == opts.base_name) {
        return Err(BdevError::Exists(name));
    }
    log::info!("error bdev {name} waits for base '{}'", opts.base_name);
    p.push(opts);
    Ok(None)
}

fn build(opts: ErrorOpts) -> Result<Arc<Bdev>> {
    let base = BaseLink::open(&opts.base_name, "error")?;
    let b = base.desc.bdev().props().clone();
    let name = format!("EE_{}", opts.base_name);
    let mut p = BdevProps::new(name.clone(), b.block_size, b.num_blocks);
    p.product_name = "Error Injection Disk".into();
    p.uuid = super::config::parse_uuid(opts.uuid.as_deref())?;
    let inject = Arc::new(Inject::default());
    let top = base.top_setter();
    let bdev = Bdev::register(
        p,
        "error",
        Box::new(ErrorBdev {
            base,
            inject: inject.clone(),
            opts,
        }),
    )?;
    top.set(&bdev);
    let mut r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.retain(|(_, w)| w.strong_count() > 0);
    r.push((name, Arc::downgrade(&inject)));
    Ok(bdev)
}

/// Removes every rule of error bdev `name` (`io_type` `clear` of
/// `bdev_error_inject_error`).
pub fn clear_errors(name: &str) -> Result<()> {
    let inj = injector(name)?;
    inj.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    inj.armed.store(false, Ordering::Relaxed);
    Ok(())
}

fn injector(name: &str) -> Result<Arc<Inject>> {
    if get_by_name(name).map_or(true, |b| b.module_name() != "error") {
        return Err(BdevError::NotFound(name.into()));
    }
    let r = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    r.iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, w)| w.upgrade())
        .ok_or_else(|| BdevError::NotFound(name.into()))
}

/// Adds a rule to error bdev `name` (`bdev_error_inject_error`): the next
/// `num` I/O of `io_type` (all types when `None`) get `kind`.
pub fn inject_error(name: &str, io_type: Option<IoType>, kind: ErrorType, num: u64) -> Result<()> {
    let inj = injector(name)?;
    inj.rules
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Rule {
            io_type,
            kind,
            left: num,
        });
    inj.armed.store(true, Ordering::Relaxed);
    Ok(())
}
