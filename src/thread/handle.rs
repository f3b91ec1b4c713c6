//! `ThreadHandle`: the `Send + Sync` face of a lightweight thread, through
//! which any OS thread sends it messages.

use super::{CpuMask, Msg, ThreadError};
use crossbeam_queue::{ArrayQueue, SegQueue};
use crossbeam_utils::atomic::AtomicCell;
use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

pub(crate) const STATE_RUNNING: u8 = 0;
pub(crate) const STATE_EXITING: u8 = 1;
pub(crate) const STATE_EXITED: u8 = 2;

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);

/// The part of a thread that other OS threads may touch.
pub(crate) struct Shared {
    pub(crate) id: u64,
    /// Shared with errors, so reporting one allocates nothing.
    pub(crate) name: Arc<str>,
    pub(crate) cpumask: CpuMask,
    /// The bounded lock-free message ring (many producers, one consumer).
    pub(crate) ring: ArrayQueue<Msg>,
    /// Messages the layer itself must not lose (continuations, wakes,
    /// channel bookkeeping) go here when the ring is full.
    pub(crate) overflow: SegQueue<Msg>,
    pub(crate) critical: AtomicCell<Option<fn()>>,
    pub(crate) state: AtomicU8,
    /// Senders between their state check and their push (see exit); on
    /// its own cache line so senders do not bounce the receiver's lines.
    pub(crate) senders: CachePadded<AtomicUsize>,
}

impl Shared {
    pub(crate) fn new(name: String, cpumask: CpuMask, ring_size: usize) -> Shared {
        Shared {
            id: NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed),
            name: name.into(),
            cpumask,
            ring: ArrayQueue::new(ring_size.max(1)),
            overflow: SegQueue::new(),
            critical: AtomicCell::new(None),
            state: AtomicU8::new(STATE_RUNNING),
            senders: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// A new thread's shared part, listed in the process-wide thread list.
    pub(crate) fn new_registered(name: String, cpumask: CpuMask, ring_size: usize) -> Arc<Shared> {
        let s = Arc::new(Shared::new(name, cpumask, ring_size));
        super::thread_list::insert(&s);
        s
    }

    pub(crate) fn has_messages(&self) -> bool {
        !self.ring.is_empty() || !self.overflow.is_empty() || self.critical.load().is_some()
    }

    fn exited_error(&self) -> ThreadError {
        ThreadError::Exited {
            thread: self.name.clone(),
        }
    }

    /// Pushes `msg`; on failure gives it back.
    // The error hands the message back unboxed so a sender can retry
    // without allocating.
    #[allow(clippy::result_large_err)]
    pub(crate) fn push(&self, msg: Msg, internal: bool) -> Result<(), (Msg, ThreadError)> {
        self.senders.fetch_add(1, Ordering::SeqCst);
        let res = if self.state.load(Ordering::SeqCst) == STATE_EXITED {
            Err((msg, self.exited_error()))
        } else {
            match self.ring.push(msg) {
                Ok(()) => Ok(()),
                Err(msg) if internal => {
                    self.overflow.push(msg);
                    Ok(())
                }
                Err(msg) => Err((
                    msg,
                    ThreadError::RingFull {
                        thread: self.name.clone(),
                        capacity: self.ring.capacity(),
                    },
                )),
            }
        };
        self.senders.fetch_sub(1, Ordering::SeqCst);
        res
    }
}

/// A `Send + Sync` handle to a lightweight thread: cheap to clone, held by
/// any OS thread that wants to send it messages. It keeps the thread's
/// message ring alive, not the thread itself.
#[derive(Clone)]
pub struct ThreadHandle {
    pub(crate) shared: Arc<Shared>,
}

impl ThreadHandle {
    /// The thread's unique id (never reused in a process).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The cores the thread may run on.
    pub fn cpumask(&self) -> CpuMask {
        self.shared.cpumask
    }

    /// Whether the thread has exited (it then accepts no messages).
    pub fn is_exited(&self) -> bool {
        self.shared.state.load(Ordering::SeqCst) == STATE_EXITED
    }

    /// Sends `f` to run on the thread (SPDK's `spdk_thread_send_msg`).
    ///
    /// Never runs `f` inline, even when called on the target thread itself:
    /// it runs during a later [`Thread::poll`](super::Thread::poll). Messages
    /// from one sender run in the order sent. Costs no heap allocation when
    /// `f` captures at most [`MSG_INLINE_SIZE`](super::MSG_INLINE_SIZE) bytes.
    ///
    /// Errors: [`ThreadError::RingFull`] (poll the target and retry; `f` is
    /// dropped — use [`try_send`](Self::try_send) to get it back) and
    /// [`ThreadError::Exited`].
    pub fn send_msg<F: FnOnce() + Send + 'static>(&self, f: F) -> Result<(), ThreadError> {
        self.try_send(Msg::new(f)).map_err(|(_, e)| e)
    }

    /// Sends a prepared [`Msg`]; on failure the message is handed back
    /// with the error so the caller can retry it (no allocation).
    #[allow(clippy::result_large_err)]
    pub fn try_send(&self, msg: Msg) -> Result<(), (Msg, ThreadError)> {
        self.shared.push(msg, false)
    }

    /// Sends a message the layer must not lose: if the ring is full it goes
    /// to an unbounded overflow queue. Fails only if the thread exited.
    pub(crate) fn send_internal<F: FnOnce() + Send + 'static>(
        &self,
        f: F,
    ) -> Result<(), ThreadError> {
        self.shared.push(Msg::new(f), true).map_err(|(_, e)| e)
    }

    /// Puts `f` in the thread's single critical-message slot
    /// (SPDK's `spdk_thread_send_critical_msg`): no allocation, no ring,
    /// safe to call from a signal handler. It runs first at the next poll.
    /// Errors: [`ThreadError::CriticalBusy`] if the slot is taken,
    /// [`ThreadError::Exited`].
    pub fn send_critical_msg(&self, f: fn()) -> Result<(), ThreadError> {
        if self.is_exited() {
            return Err(self.shared.exited_error());
        }
        self.shared
            .critical
            .compare_exchange(None, Some(f))
            .map(|_| ())
            .map_err(|_| ThreadError::CriticalBusy {
                thread: self.shared.name.clone(),
            })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        super::thread_list::remove(self.id);
    }
}

impl PartialEq for ThreadHandle {
    fn eq(&self, other: &Self) -> bool {
        self.shared.id == other.shared.id
    }
}

impl Eq for ThreadHandle {}

impl std::fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ThreadHandle({}, '{}')",
            self.shared.id, self.shared.name
        )
    }
}

/// Sends `f` to `thread` (SPDK's `spdk_thread_send_msg`); see
/// [`ThreadHandle::send_msg`].
pub fn send_msg<F: FnOnce() + Send + 'static>(
    thread: &ThreadHandle,
    f: F,
) -> Result<(), ThreadError> {
    thread.send_msg(f)
}
