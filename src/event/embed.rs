//! The embedding entry: [`start`] runs one future to completion inside the
//! application framework on the calling OS thread, then tears everything
//! down — the role of `spdk_app_start` for a program that embeds spdk-io,
//! and of `tokio_uring::start`.
//!
//! It shares its start-up and teardown with the daemon's [`run`](super::run):
//! one application per process, the log flags, the env (brought up unless
//! the program already did, finished only if brought up here), the
//! subsystems initialised in dependency order and finished in reverse, the
//! method table, and the reactors. It differs where a library must: no
//! signal handling, and the app thread is hosted by the calling OS thread
//! (so the future need not be `Send`); the other cores of the mask get
//! reactors, reachable with [`reactors`].

use super::app::{begin, init_env, make_ctx, stop_reactors};
use super::jsonrpc::RpcServer;
use super::{ctx, AppOpts, EventError};
use crate::env;
use crate::thread::{CpuMask, ReactorSet, Thread, ThreadOpts};
use std::future::Future;
use std::sync::Arc;

/// Runs `main()` to completion on the app thread, hosted by the calling OS
/// thread, inside the application framework; returns its output.
///
/// Before: the env (unless already initialised; `opts.no_huge` or a
/// hugepage failure gives ordinary pinned pages), reactors on the mask's
/// cores after the first, the app thread, the subsystems (the bdev layer),
/// and the JSON-RPC server when `opts.rpc_socket` is set. After `main`
/// completes: the server closes, the subsystems finish in reverse order
/// (every bdev is unregistered), the app thread exits, the reactors stop
/// and the env is finished if it was brought up here.
///
/// Errors: another application runs in this process, the env or the
/// reactors cannot start, a subsystem fails, the RPC socket is in use;
/// [`EventError::Thread`] when `main` can never complete (it awaits
/// something nothing wakes) or the app thread cannot exit cleanly (a
/// channel `main` leaked elsewhere).
///
/// ```
/// use spdk_io::bdev::{self, malloc::{self, MallocOpts}, IoBuf};
/// use spdk_io::event::{self, AppOpts};
///
/// let opts = AppOpts { name: "doc".into(), no_huge: true, rpc_socket: None, ..AppOpts::default() };
/// let read = event::start(opts, || async {
///     malloc::create(MallocOpts::new("Malloc0", 64, 512))?;
///     let desc = bdev::open("Malloc0", true)?;
///     let ch = desc.get_io_channel()?;
///     desc.write_async(&ch, IoBuf::from_vec(vec![7; 512]), 0).await?;
///     let buf = desc.read_async(&ch, IoBuf::new(512), 0).await?;
///     Ok::<_, Box<dyn std::error::Error>>(buf.to_vec())
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(read, vec![7; 512]);
/// ```
pub fn start<F, Fut>(opts: AppOpts, main: F) -> Result<Fut::Output, EventError>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let _guard = begin(&opts)?;
    let env_ours = init_env(&opts)?;
    let r = run_app(&opts, main);
    if env_ours {
        env::fini();
    }
    r
}

fn run_app<F, Fut>(opts: &AppOpts, main: F) -> Result<Fut::Output, EventError>
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let first = opts.cpumask.iter().next().ok_or_else(|| {
        EventError::Reactor("core mask is empty: give at least one core (-m)".into())
    })?;
    let mut others = opts.cpumask;
    others.clear(first);
    let reactors = if others.is_empty() {
        None
    } else {
        Some(Arc::new(
            ReactorSet::start(others, opts.reactor_opts.clone())
                .map_err(EventError::ReactorStart)?,
        ))
    };
    let weak = reactors
        .as_ref()
        .map_or_else(std::sync::Weak::new, Arc::downgrade);
    let app = Thread::with_opts(ThreadOpts {
        name: "app_thread".into(),
        cpumask: CpuMask::single(first),
        ..ThreadOpts::default()
    });
    let started = app.enter(|| -> Result<_, EventError> {
        let ctx = make_ctx(opts, weak)?;
        let server = match &opts.rpc_socket {
            Some(path) => Some(RpcServer::listen(path, ctx.table.clone())?),
            None => None,
        };
        Ok((ctx, server))
    });
    let out = match started {
        Ok((ctx, server)) => {
            let out = match ctx.start_init() {
                Ok(()) => app.block_on(main()).map_err(EventError::from),
                Err(e) => Err(e),
            };
            app.enter(|| {
                if let Some(s) = server {
                    s.stop_listening();
                    s.close();
                }
                ctx.fini();
                ctx::set(None);
            });
            out
        }
        Err(e) => Err(e),
    };
    let exited = app.shutdown();
    let _ = app.destroy();
    if let Some(r) = reactors {
        stop_reactors(r);
    }
    let v = out?;
    exited?;
    Ok(v)
}

/// The reactors of the running application (the mask's cores other than
/// the app thread's under [`start`]; every core under
/// [`run`](super::run)), from the app thread: place lightweight threads
/// on them with [`ReactorSet::spawn_thread`]. `None` elsewhere, or when
/// the mask has one core under [`start`].
pub fn reactors() -> Option<Arc<ReactorSet>> {
    ctx::get().ok()?.reactors.upgrade()
}
