//! The running application's state, kept on the app thread: the method
//! table, the subsystems and whether they are initialised, the reactors.
//! The framework's methods reach it through [`with`].

use super::{EventError, MethodTable, Subsystem};
use crate::rpc::{MethodStates, RpcError};
use crate::thread::{CpuMask, ReactorSet};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Where the subsystems are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum InitState {
    /// Waiting for `framework_start_init` (or the config loader).
    NotStarted,
    /// Subsystems initialised, the table in the runtime state, the
    /// config's runtime entries still loading.
    SubsystemsUp,
    /// All initialised and configured.
    Done,
    /// One failed (its message).
    Failed(String),
}

/// The application's state on the app thread.
pub(crate) struct AppCtx {
    pub table: Rc<MethodTable>,
    /// In dependency order.
    pub subsystems: Vec<Subsystem>,
    /// How many of `subsystems` are initialised (the first ones).
    pub initialised: Cell<usize>,
    pub init: RefCell<InitState>,
    /// A `--json` config's runtime entries load after the subsystems are up.
    pub config_pending: Cell<bool>,
    /// The shutdown has begun (an init abandoned then is not a failure).
    pub shutting_down: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
    pub cores: CpuMask,
    pub reactors: std::sync::Weak<ReactorSet>,
}

thread_local! {
    static CTX: RefCell<Option<Rc<AppCtx>>> = const { RefCell::new(None) };
}

impl AppCtx {
    pub fn new(
        table: Rc<MethodTable>,
        subsystems: Vec<Subsystem>,
        cores: CpuMask,
        reactors: std::sync::Weak<ReactorSet>,
    ) -> AppCtx {
        AppCtx {
            table,
            subsystems,
            initialised: Cell::new(0),
            init: RefCell::new(InitState::NotStarted),
            config_pending: Cell::new(false),
            shutting_down: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
            cores,
            reactors,
        }
    }

    /// Initialises every subsystem in order (SPDK's `spdk_subsystem_init`)
    /// and moves the table to the runtime state; the init is done then,
    /// unless a config's runtime entries are still to load
    /// ([`finish_init`](Self::finish_init)). A second call does nothing.
    pub fn start_init(&self) -> Result<(), EventError> {
        if *self.init.borrow() != InitState::NotStarted {
            return match &*self.init.borrow() {
                InitState::Failed(m) => Err(EventError::Config(m.clone())),
                _ => Ok(()),
            };
        }
        for s in &self.subsystems[self.initialised.get()..] {
            if let Err(msg) = (s.init)() {
                let e = EventError::SubsystemInit {
                    name: s.name.into(),
                    msg,
                };
                *self.init.borrow_mut() = InitState::Failed(e.to_string());
                self.wake();
                return Err(e);
            }
            self.initialised.set(self.initialised.get() + 1);
        }
        self.table.set_state(MethodStates::RUNTIME);
        *self.init.borrow_mut() = if self.config_pending.get() {
            InitState::SubsystemsUp
        } else {
            InitState::Done
        };
        self.wake();
        Ok(())
    }

    /// The config's runtime entries are loaded: the init is done.
    pub fn finish_init(&self) {
        self.config_pending.set(false);
        if *self.init.borrow() == InitState::SubsystemsUp {
            *self.init.borrow_mut() = InitState::Done;
            self.wake();
        }
    }

    /// Finishes the initialised subsystems in reverse order.
    pub fn fini(&self) {
        for s in self.subsystems[..self.initialised.get()].iter().rev() {
            log::info!("finishing subsystem {}", s.name);
            (s.fini)();
        }
        self.initialised.set(0);
    }

    /// Marks an initialisation that never started as failed (shutdown
    /// before `framework_start_init`), releasing `framework_wait_init` callers.
    pub fn abandon_init(&self, why: &str) {
        *self.init.borrow_mut() = InitState::Failed(why.into());
        self.wake();
    }

    fn wake(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Resolves once the init is done: subsystems up and the config's
    /// runtime entries loaded (or something failed).
    pub fn wait_init(self: &Rc<Self>) -> WaitInit {
        WaitInit {
            ctx: self.clone(),
            subsystems_only: false,
        }
    }

    /// Resolves once the subsystems are initialised (or failed).
    pub fn wait_subsystems(self: &Rc<Self>) -> WaitInit {
        WaitInit {
            ctx: self.clone(),
            subsystems_only: true,
        }
    }
}

/// The future of [`AppCtx::wait_init`] and [`AppCtx::wait_subsystems`].
pub(crate) struct WaitInit {
    ctx: Rc<AppCtx>,
    subsystems_only: bool,
}

impl Future for WaitInit {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &*self.ctx.init.borrow() {
            InitState::Done => return Poll::Ready(Ok(())),
            InitState::Failed(m) => return Poll::Ready(Err(m.clone())),
            InitState::SubsystemsUp if self.subsystems_only => return Poll::Ready(Ok(())),
            InitState::NotStarted | InitState::SubsystemsUp => {}
        }
        self.ctx.waiters.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

/// Makes `ctx` the app thread's state (or clears it).
pub(crate) fn set(ctx: Option<Rc<AppCtx>>) {
    CTX.with(|c| *c.borrow_mut() = ctx);
}

/// The app's state, or `-32603` when called off the app thread.
pub(crate) fn get() -> Result<Rc<AppCtx>, RpcError> {
    CTX.with(|c| c.borrow().clone())
        .ok_or_else(|| RpcError::internal("no application framework runs on this thread"))
}
