//! The application entry (SPDK's `spdk_app_start` / `spdk_app_stop`): the
//! env, reactors on a core mask, the app thread with the method table and
//! the JSON-RPC server, subsystems initialised in dependency order (at
//! once, from a `--json` config, or on `framework_start_init` with
//! `--wait-for-rpc`), and a clean shutdown on SIGINT/SIGTERM,
//! `spdk_kill_instance` or [`stop`]: the server closes after answering what
//! it had, subsystems finish in reverse order (every bdev unregistered,
//! controllers detached), the reactors stop and the env's memory is
//! returned.

use super::ctx::{self, AppCtx, InitState};
use super::jsonrpc::{RpcServer, SocketLock};
use super::{config, log as elog, methods, subsystem, AppOpts, EventError, MethodTable};
use crate::env::{self, EnvOpts};
use crate::thread::{sleep, spawn_local, CpuMask, ReactorSet, ThreadOpts};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// How long the shutdown waits for in-flight requests to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the main thread waits for the app thread to finish.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

static RUNNING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
static STOP_CODE: AtomicI32 = AtomicI32::new(0);

/// Asks the running application to shut down (SPDK's `spdk_app_stop`),
/// from any thread; [`run`] then returns. `code` 0 is a clean stop.
pub fn stop(code: i32) {
    STOP_CODE.store(code, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

pub(super) struct RunningGuard;
impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// What the app thread tells the main thread.
enum AppEvent {
    /// Starting failed (socket in use, config error, init failure).
    Fatal(EventError),
    /// The shutdown finished on the app thread.
    Finished,
}

thread_local! {
    static SERVER: RefCell<Option<RpcServer>> = const { RefCell::new(None) };
}

/// The start shared by [`run`] and [`start`](super::start): one
/// application per process (until the guard drops), the stop flag
/// cleared, the log flags set.
pub(super) fn begin(opts: &AppOpts) -> Result<RunningGuard, EventError> {
    if RUNNING.swap(true, Ordering::SeqCst) {
        return Err(EventError::AlreadyRunning);
    }
    let guard = RunningGuard;
    STOP.store(false, Ordering::SeqCst);
    elog::init();
    for f in &opts.log_flags {
        if !elog::set_flag(f) {
            return Err(EventError::Config(format!(
                "unknown log flag '{f}': flags are {} and all",
                elog::FLAGS.join(", ")
            )));
        }
        elog::set_print_level(elog::Level::Debug);
    }
    Ok(guard)
}

/// Brings the env up unless the program already did; whether it is ours
/// to finish.
pub(super) fn init_env(opts: &AppOpts) -> Result<bool, EventError> {
    if env::is_initialized() {
        return Ok(false);
    }
    let make = |no_huge: bool| EnvOpts {
        name: opts.name.clone(),
        mem_size_mb: opts.mem_size_mb,
        ..if no_huge {
            EnvOpts::no_huge()
        } else {
            EnvOpts::default()
        }
    };
    if opts.no_huge {
        env::init(make(true))?;
    } else if let Err(e) = env::init(make(false)) {
        log::warn!(
            "hugepage DMA memory unavailable ({e}); using ordinary pinned pages (as --no-huge)"
        );
        env::init(make(true))?;
    }
    Ok(true)
}

/// Runs the application until it is stopped (SPDK's `spdk_app_start`,
/// which blocks the same way): `on_started` runs on the app thread once the
/// subsystems are initialised (after `framework_start_init` with
/// `--wait-for-rpc`). Returns `Ok` after a clean shutdown by signal,
/// `spdk_kill_instance` or [`stop`]`(0)`; an error if start-up failed
/// (the RPC socket is in use, the config failed, a subsystem failed) or
/// [`stop`] was called with a non-zero code.
///
/// SIGINT and SIGTERM are blocked in the calling thread (and so in the
/// reactors it starts) and read from a signalfd while the app runs. One
/// application per process.
pub fn run(opts: AppOpts, on_started: impl FnOnce() + Send + 'static) -> Result<(), EventError> {
    let _guard = begin(&opts)?;
    let config_text = match &opts.json_config {
        None => None,
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            EventError::Config(format!("cannot read JSON config {}: {e}", p.display()))
        })?),
    };
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.thread_block().map_err(|source| EventError::Signals {
        op: "block SIGINT/SIGTERM",
        source,
    })?;
    let sfd = SignalFd::with_flags(&sigs, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(
        |source| EventError::Signals {
            op: "signalfd",
            source,
        },
    )?;
    let result = run_blocked(opts, config_text, &sfd, Box::new(on_started));
    drop(sfd);
    let _ = sigs.thread_unblock();
    result
}

fn run_blocked(
    opts: AppOpts,
    config_text: Option<String>,
    sfd: &SignalFd,
    on_started: Box<dyn FnOnce() + Send>,
) -> Result<(), EventError> {
    // The socket's lock first: a second instance stops before it takes memory.
    let lock = match &opts.rpc_socket {
        Some(p) => Some(SocketLock::acquire(p)?),
        None => None,
    };
    let env_ours = init_env(&opts)?;
    let first = opts.cpumask.iter().next().ok_or_else(|| {
        EventError::Reactor("core mask is empty: give at least one core (-m)".into())
    })?;
    let reactors = Arc::new(
        ReactorSet::start(opts.cpumask, opts.reactor_opts.clone())
            .map_err(EventError::ReactorStart)?,
    );
    let (tx, rx) = mpsc::channel::<AppEvent>();
    let weak = Arc::downgrade(&reactors);
    let tx_app = tx.clone();
    let app_opts = opts.clone();
    let app = reactors
        .spawn_thread(
            first,
            ThreadOpts {
                name: "app_thread".into(),
                cpumask: CpuMask::single(first),
                ..ThreadOpts::default()
            },
            move || app_thread_start(app_opts, lock, config_text, weak, tx_app, on_started),
        )
        .map_err(EventError::ReactorStart)?;

    let mut failure = None;
    loop {
        match sfd.read_signal() {
            Ok(Some(si)) => {
                log::info!("received signal {}: shutting down", si.ssi_signo);
                break;
            }
            Ok(None) => {}
            Err(e) => log::warn!("reading the signalfd: {e}"),
        }
        if STOP.load(Ordering::SeqCst) {
            let code = STOP_CODE.load(Ordering::SeqCst);
            if code != 0 {
                failure = Some(EventError::Stopped(code));
            }
            break;
        }
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(AppEvent::Fatal(e)) => {
                failure = Some(e);
                break;
            }
            Ok(AppEvent::Finished) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if app.send_msg(app_thread_shutdown).is_ok() {
        let deadline = Instant::now() + FINISH_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(AppEvent::Finished) => break,
                Ok(AppEvent::Fatal(e)) => {
                    failure.get_or_insert(e);
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(_) => {
                    log::error!("the app thread did not finish its shutdown in {FINISH_TIMEOUT:?}");
                    break;
                }
            }
        }
    }
    drop(tx);
    stop_reactors(reactors);
    if env_ours {
        env::fini();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Stops the reactors once the app thread has let go of its weak reference.
pub(super) fn stop_reactors(mut reactors: Arc<ReactorSet>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Arc::try_unwrap(reactors) {
            Ok(set) => return set.stop(),
            Err(r) if Instant::now() < deadline => {
                reactors = r;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(r) => {
                log::error!("reactors still referenced at shutdown; stopping them on drop");
                drop(r);
                return;
            }
        }
    }
}

/// The app thread's state, shared by [`run`] and [`start`](super::start):
/// the subsystems in dependency order, the method table (the framework's,
/// each subsystem's and the program's), made current on this OS thread.
pub(super) fn make_ctx(
    opts: &AppOpts,
    reactors: std::sync::Weak<ReactorSet>,
) -> Result<Rc<AppCtx>, EventError> {
    let subsystems = subsystem::sort(subsystem::builtin())?;
    let mut table = MethodTable::new();
    table.register(methods::methods());
    for s in &subsystems {
        table.register((s.methods)());
    }
    table.register(opts.extra_methods.iter().copied());
    methods::record_cpu_times(opts.cpumask.iter());
    let ctx = Rc::new(AppCtx::new(
        Rc::new(table),
        subsystems,
        opts.cpumask,
        reactors,
    ));
    ctx::set(Some(ctx.clone()));
    Ok(ctx)
}

/// The app thread's first message: the table, the subsystems, the server,
/// then the configuration or the initialisation.
fn app_thread_start(
    opts: AppOpts,
    lock: Option<SocketLock>,
    config_text: Option<String>,
    reactors: std::sync::Weak<ReactorSet>,
    tx: mpsc::Sender<AppEvent>,
    on_started: Box<dyn FnOnce() + Send>,
) {
    FINISH_TX.with(|t| *t.borrow_mut() = Some(tx.clone()));
    let fatal = |e: EventError| {
        let _ = tx.send(AppEvent::Fatal(e));
    };
    let ctx = match make_ctx(&opts, reactors) {
        Ok(c) => c,
        Err(e) => return fatal(e),
    };
    let table = ctx.table.clone();
    if let (Some(path), Some(lock)) = (&opts.rpc_socket, lock) {
        match RpcServer::listen_locked(path, lock, table) {
            Ok(s) => {
                log::info!("JSON-RPC server listening on {}", path.display());
                SERVER.with(|c| *c.borrow_mut() = Some(s));
            }
            Err(e) => return fatal(e),
        }
    }
    let c = ctx.clone();
    let tx2 = tx.clone();
    let starting = async move {
        let r = match &config_text {
            Some(text) => {
                config::load(&c, text, opts.wait_for_rpc, opts.json_ignore_init_errors).await
            }
            None if !opts.wait_for_rpc => c.start_init(),
            None => Ok(()),
        };
        if let Err(e) = r {
            if !c.shutting_down.get() {
                let _ = tx2.send(AppEvent::Fatal(e));
            }
            return;
        }
        if opts.wait_for_rpc {
            log::info!("waiting for framework_start_init over RPC");
        }
        if c.wait_init().await.is_ok() {
            log::info!("application started on cores {}", opts.cpumask);
            on_started();
        }
    };
    if let Err(e) = spawn_local(starting) {
        fatal(EventError::ReactorStart(e));
    }
}

/// The shutdown on the app thread: stop listening, answer what is in
/// flight, close the server, finish the subsystems, tell the main thread.
fn app_thread_shutdown() {
    let finished = || {
        if let Some(tx) = FINISH_TX.with(|t| t.borrow_mut().take()) {
            let _ = tx.send(AppEvent::Finished);
        }
    };
    let Ok(ctx) = ctx::get() else {
        return finished();
    };
    let server = SERVER.with(|c| c.borrow_mut().take());
    let task = async move {
        // framework_wait_init callers are answered (with an error) first.
        ctx.shutting_down.set(true);
        if matches!(
            *ctx.init.borrow(),
            InitState::NotStarted | InitState::SubsystemsUp
        ) {
            ctx.abandon_init("the application is shutting down");
        }
        if let Some(s) = &server {
            s.stop_listening();
            let deadline = Instant::now() + DRAIN_TIMEOUT;
            while !s.is_idle() && Instant::now() < deadline {
                let _ = sleep(Duration::from_millis(1)).await;
            }
            s.close();
        }
        // lvstores unload cleanly before the bdevs under them go.
        crate::lvol::vbdev::unload_all().await;
        ctx.fini();
        ctx::set(None);
        finished();
    };
    if spawn_local(task).is_err() {
        log::error!("cannot run the shutdown on the app thread");
        finished();
    }
}

thread_local! {
    static FINISH_TX: RefCell<Option<mpsc::Sender<AppEvent>>> = const { RefCell::new(None) };
}
