//! The target of the process: created at the subsystem's init, its poll
//! groups started on every thread by `nvmf_create_transport`, the TCP
//! transport (listeners and acceptor) kept on the app thread.

use crate::nvmf::tcp::{PollGroup, PollGroupHandle, TcpTransport};
use crate::nvmf::{NvmfError, Target, TransportOpts};
use crate::rpc::RpcError;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

struct State {
    target: Arc<Target>,
    groups: Vec<PollGroupHandle>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

thread_local! {
    /// The transport, on the thread that created it (the app thread).
    static TRANSPORT: RefCell<Option<TcpTransport>> = const { RefCell::new(None) };
}

fn lock() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Brings the subsystem up: a target with the discovery subsystem.
pub fn init() -> Result<(), String> {
    let target = Target::new(TransportOpts::default()).map_err(|e| e.to_string())?;
    *lock() = Some(State {
        target,
        groups: Vec::new(),
    });
    Ok(())
}

/// Tears it down: poll groups stop (closing their connections), the
/// listeners close, the subsystems are forgotten.
pub fn fini() {
    if let Some(s) = lock().take() {
        for g in s.groups {
            g.stop();
        }
    }
    TRANSPORT.with(|t| t.borrow_mut().take());
}

/// The process's target, when the subsystem is up.
pub fn target() -> Option<Arc<Target>> {
    lock().as_ref().map(|s| s.target.clone())
}

pub(super) fn target_or_err() -> Result<Arc<Target>, RpcError> {
    target().ok_or_else(|| RpcError::internal("the nvmf subsystem is not initialized"))
}

/// The poll groups (one per thread) once the transport exists.
pub(super) fn groups() -> Vec<PollGroupHandle> {
    lock().as_ref().map_or_else(Vec::new, |s| s.groups.clone())
}

/// True once `nvmf_create_transport` made the TCP transport.
pub(super) fn has_transport() -> bool {
    TRANSPORT.with(|t| t.borrow().is_some())
}

/// Runs `f` with the transport (on the thread that made it).
pub(super) fn with_transport<R>(f: impl FnOnce(&TcpTransport) -> R) -> Option<R> {
    TRANSPORT.with(|t| t.borrow().as_ref().map(f))
}

/// Starts a poll group on every thread, then the transport on this one.
pub(super) async fn create_transport(opts: TransportOpts) -> Result<(), RpcError> {
    let target = target_or_err()?;
    if has_transport() {
        return Err(RpcError::errno_msg(
            libc::EEXIST,
            "Transport type 'TCP' already exists",
        ));
    }
    target
        .set_opts(opts)
        .map_err(|e| RpcError::invalid_params(e.to_string()))?;
    let handles = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (h, t, d) = (handles.clone(), target.clone(), done.clone());
    crate::thread::for_each_thread(
        move || match PollGroup::start(t.clone()) {
            Ok(g) => h.lock().unwrap_or_else(|e| e.into_inner()).push(g.detach()),
            Err(e) => log::error!("nvmf: poll group: {e}"),
        },
        move || d.store(true, Ordering::Release),
    )
    .map_err(|e| RpcError::internal(format!("starting poll groups: {e}")))?;
    let start = Instant::now();
    while !done.load(Ordering::Acquire) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(RpcError::internal("poll groups did not start within 10 s"));
        }
        crate::thread::yield_now().await;
    }
    let groups = std::mem::take(&mut *handles.lock().unwrap_or_else(|e| e.into_inner()));
    let transport = TcpTransport::new(target, groups.clone())
        .map_err(|e: NvmfError| RpcError::internal(e.to_string()))?;
    if let Some(s) = lock().as_mut() {
        s.groups = groups;
    }
    TRANSPORT.with(|t| *t.borrow_mut() = Some(transport));
    Ok(())
}
