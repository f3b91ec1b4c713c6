//! io_devices (SPDK's `spdk_io_device_register`): a process-wide registry
//! of devices that hand each thread its own channel context.

use super::io_channel::{ChannelEntry, ChannelInner, IoChannel};
use super::{Thread, ThreadError, ThreadHandle};
use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The error a channel create callback returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What identifies an io_device (SPDK uses the device's address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IoDeviceKey(pub u64);

static NEXT_KEY: AtomicU64 = AtomicU64::new(1 << 63);
static NEXT_DEV_ID: AtomicU64 = AtomicU64::new(1);

impl IoDeviceKey {
    /// A key no other call returns (from a range `from_ptr` never yields).
    pub fn unique() -> IoDeviceKey {
        IoDeviceKey(NEXT_KEY.fetch_add(1, Ordering::Relaxed))
    }

    /// The address of `obj` as a key, as SPDK keys devices by pointer.
    pub fn from_ptr<T: ?Sized>(obj: &T) -> IoDeviceKey {
        IoDeviceKey((obj as *const T).cast::<u8>() as usize as u64)
    }
}

pub(crate) struct DevState {
    /// Threads holding a channel, by thread id (for_each visits in this order).
    pub(crate) threads: BTreeMap<u64, ThreadHandle>,
    pub(crate) for_each: usize,
    pub(crate) unregistering: bool,
    on_unregistered: Option<(ThreadHandle, Box<dyn FnOnce() + Send>)>,
}

pub(crate) struct DeviceCore {
    pub(crate) key: IoDeviceKey,
    pub(crate) id: u64,
    pub(crate) name: String,
    /// Set by unregister: a lock-free check for get_io_channel.
    gone: AtomicBool,
    state: Mutex<DevState>,
}

impl DeviceCore {
    pub(crate) fn lock(&self) -> MutexGuard<'_, DevState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Completes a pending unregister once no channel and no for_each is left.
    pub(crate) fn maybe_finish(&self, mut st: MutexGuard<'_, DevState>) {
        if !(st.unregistering && st.threads.is_empty() && st.for_each == 0) {
            return;
        }
        let Some((origin, done)) = st.on_unregistered.take() else {
            return;
        };
        drop(st);
        if origin.send_internal(done).is_err() {
            log::warn!(
                "io_device '{}' unregistered, but thread '{}' that asked has exited: its callback is dropped",
                self.name,
                origin.name()
            );
        }
    }
}

pub(crate) struct DeviceShared<T> {
    pub(crate) core: Arc<DeviceCore>,
    create: Box<dyn Fn() -> Result<T, BoxError> + Send + Sync>,
    pub(crate) destroy: Box<dyn Fn(&mut T) + Send + Sync>,
    _t: PhantomData<fn() -> T>,
}

/// A registered io_device whose channels carry a context of type `T`.
/// `Send + Sync` and cheap to clone; the context `T` itself need not be
/// `Send` (each channel's context lives and dies on its thread).
pub struct IoDevice<T: 'static> {
    pub(crate) shared: Arc<DeviceShared<T>>,
}

impl<T> Clone for IoDevice<T> {
    fn clone(&self) -> Self {
        IoDevice {
            shared: self.shared.clone(),
        }
    }
}

struct Registered {
    core: Arc<DeviceCore>,
    typed: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

fn registry() -> MutexGuard<'static, HashMap<IoDeviceKey, Registered>> {
    static REG: OnceLock<Mutex<HashMap<IoDeviceKey, Registered>>> = OnceLock::new();
    REG.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Registers an io_device (SPDK's `spdk_io_device_register`): `create`
/// makes a thread's channel context the first time that thread calls
/// [`IoDevice::get_io_channel`]; `destroy` runs on that thread when its
/// last channel reference is put. Error: [`ThreadError::DeviceExists`] if
/// `key` is registered.
pub fn io_device_register<T, C, D>(
    key: IoDeviceKey,
    name: &str,
    create: C,
    destroy: D,
) -> Result<IoDevice<T>, ThreadError>
where
    T: 'static,
    C: Fn() -> Result<T, BoxError> + Send + Sync + 'static,
    D: Fn(&mut T) + Send + Sync + 'static,
{
    let mut reg = registry();
    if let Some(r) = reg.get(&key) {
        return Err(ThreadError::DeviceExists {
            key,
            name: r.core.name.clone(),
        });
    }
    let core = Arc::new(DeviceCore {
        key,
        id: NEXT_DEV_ID.fetch_add(1, Ordering::Relaxed),
        name: name.to_string(),
        gone: AtomicBool::new(false),
        state: Mutex::new(DevState {
            threads: BTreeMap::new(),
            for_each: 0,
            unregistering: false,
            on_unregistered: None,
        }),
    });
    let shared = Arc::new(DeviceShared {
        core: core.clone(),
        create: Box::new(create),
        destroy: Box::new(destroy),
        _t: PhantomData,
    });
    reg.insert(
        key,
        Registered {
            core,
            typed: shared.clone(),
            type_name: std::any::type_name::<T>(),
        },
    );
    Ok(IoDevice { shared })
}

impl<T: 'static> IoDevice<T> {
    /// Finds a registered device by key, checking its context type.
    /// Errors: [`ThreadError::UnknownDevice`], [`ThreadError::DeviceTypeMismatch`].
    pub fn lookup(key: IoDeviceKey) -> Result<IoDevice<T>, ThreadError> {
        let reg = registry();
        let r = reg.get(&key).ok_or(ThreadError::UnknownDevice { key })?;
        let typed = r.typed.clone().downcast::<DeviceShared<T>>().map_err(|_| {
            ThreadError::DeviceTypeMismatch {
                key,
                name: r.core.name.clone(),
                actual: r.type_name,
                wanted: std::any::type_name::<T>(),
            }
        })?;
        Ok(IoDevice { shared: typed })
    }

    /// The device's key.
    pub fn key(&self) -> IoDeviceKey {
        self.shared.core.key
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.shared.core.name
    }

    /// How many threads hold a channel to it now.
    pub fn channel_count(&self) -> usize {
        self.shared.core.lock().threads.len()
    }

    /// Gets the current thread's channel (SPDK's `spdk_get_io_channel`):
    /// creates the context on the thread's first call, otherwise takes
    /// another reference to the same channel. After [`unregister`](Self::unregister)
    /// it fails on every thread, as in SPDK. Errors:
    /// [`ThreadError::NoCurrentThread`], [`ThreadError::ThreadExited`],
    /// [`ThreadError::DeviceUnregistering`], [`ThreadError::ChannelCreate`].
    pub fn get_io_channel(&self) -> Result<IoChannel<T>, ThreadError> {
        let t = Thread::current_or_err()?;
        let core = &self.shared.core;
        let unregistering = || ThreadError::DeviceUnregistering {
            name: core.name.clone(),
        };
        // As SPDK: once unregister is called, no thread gets the device's
        // channel any more, not even one it already holds (clones of a
        // held IoChannel still work).
        if core.gone.load(Ordering::Acquire) {
            return Err(unregistering());
        }
        if t.is_exited() {
            return Err(ThreadError::ThreadExited {
                thread: t.inner.shared.name.clone(),
            });
        }
        if let Some(ch) = t.inner.channels.lookup::<T>(core.id) {
            return Ok(ch);
        }
        let mut ctx = (self.shared.create)().map_err(|source| ThreadError::ChannelCreate {
            name: core.name.clone(),
            source,
        })?;
        {
            let mut st = core.lock();
            if st.unregistering {
                drop(st);
                (self.shared.destroy)(&mut ctx);
                return Err(unregistering());
            }
            st.threads.insert(t.id(), t.handle());
        }
        let inner = Rc::new(ChannelInner::new(self.clone(), ctx, &t));
        t.inner
            .channels
            .insert(core.id, inner.clone() as Rc<dyn ChannelEntry>);
        Ok(IoChannel::from_inner(inner))
    }

    /// The current thread's channel to this device if it holds one
    /// (another reference to it); never makes a new one, and works after
    /// [`unregister`](Self::unregister) too, for code that must reach a
    /// channel its thread still holds.
    pub fn current_channel(&self) -> Option<IoChannel<T>> {
        Thread::with_current(|t| t?.inner.channels.lookup::<T>(self.shared.core.id))
    }

    /// Unregisters the device (SPDK's `spdk_io_device_unregister`): it
    /// leaves the registry at once (its key may be registered again) and
    /// hands out no new channels; `done` runs on the calling thread once
    /// every channel is destroyed and no for_each_channel is in flight.
    /// Errors: [`ThreadError::NoCurrentThread`], [`ThreadError::UnknownDevice`]
    /// if it is not (or no longer) registered.
    pub fn unregister<F: FnOnce() + Send + 'static>(&self, done: F) -> Result<(), ThreadError> {
        let t = Thread::current_or_err()?;
        let core = &self.shared.core;
        {
            let mut reg = registry();
            match reg.get(&core.key) {
                Some(r) if r.core.id == core.id => {
                    reg.remove(&core.key);
                }
                _ => return Err(ThreadError::UnknownDevice { key: core.key }),
            }
        }
        core.gone.store(true, Ordering::Release);
        let mut st = core.lock();
        st.unregistering = true;
        st.on_unregistered = Some((t.handle(), Box::new(done)));
        core.maybe_finish(st);
        Ok(())
    }
}

impl<T: 'static> IoDevice<T> {
    /// [`unregister`](Self::unregister) for an owner that may be outside
    /// any thread and wants no completion: the device leaves the registry
    /// at once (if still there) and hands out no new channels; channels
    /// still held go when their holders put them. Idempotent.
    pub fn unregister_detached(&self) {
        let core = &self.shared.core;
        {
            let mut reg = registry();
            if reg.get(&core.key).is_some_and(|r| r.core.id == core.id) {
                reg.remove(&core.key);
            }
        }
        core.gone.store(true, Ordering::Release);
        core.lock().unregistering = true;
    }
}

impl<T> std::fmt::Debug for IoDevice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IoDevice({:?}, '{}')",
            self.shared.core.key, self.shared.core.name
        )
    }
}
