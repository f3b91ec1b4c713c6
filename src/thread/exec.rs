//! The per-thread local executor: `spawn_local` runs `!Send` futures on a
//! lightweight thread, polled from [`Thread::poll`].
//!
//! A task is one heap allocation (its future) plus its waker and join
//! state, made once at spawn. Waking it costs no allocation: on its own
//! thread the waker pushes the task's slot index on the ready queue; from
//! anywhere else it sends the thread a message that does (the message
//! carries one `Arc`, so it is stored inline).

use super::join::{join_pair, JoinHandle};
use super::{Thread, ThreadError, ThreadHandle};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

struct TaskWaker {
    thread: ThreadHandle,
    idx: u32,
    gen: u32,
    /// Set while the task sits in a ready queue (or a wake message is in
    /// flight), so repeated wakes queue it once.
    scheduled: AtomicBool,
}

impl TaskWaker {
    fn enqueue_on(&self, t: &Thread) {
        t.inner
            .exec
            .ready
            .borrow_mut()
            .push_back((self.idx, self.gen));
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let local = Thread::with_current(|t| match t {
            Some(t) if t.id() == self.thread.id() => {
                self.enqueue_on(t);
                true
            }
            _ => false,
        });
        if !local {
            let me = self.clone();
            let _ = self.thread.send_internal(move || {
                if let Some(t) = Thread::current() {
                    me.enqueue_on(&t);
                }
            });
        }
    }
}

struct Task {
    fut: Pin<Box<dyn Future<Output = ()>>>,
    waker: Waker,
    flag: Arc<TaskWaker>,
}

struct Slot {
    gen: u32,
    task: Option<Task>,
}

/// A thread's tasks.
#[derive(Default)]
pub(crate) struct Executor {
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
    ready: RefCell<VecDeque<(u32, u32)>>,
    count: Cell<usize>,
}

impl Executor {
    pub(crate) fn task_count(&self) -> usize {
        self.count.get()
    }

    /// Polls each task that was ready when called; returns busy.
    pub(crate) fn run_ready(&self) -> bool {
        let n = self.ready.borrow().len();
        for _ in 0..n {
            let Some((idx, gen)) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            let task = {
                let mut slots = self.slots.borrow_mut();
                match slots.get_mut(idx as usize) {
                    Some(s) if s.gen == gen => s.task.take(),
                    _ => None,
                }
            };
            let Some(mut task) = task else { continue };
            task.flag.scheduled.store(false, Ordering::Release);
            let mut cx = Context::from_waker(&task.waker);
            match task.fut.as_mut().poll(&mut cx) {
                Poll::Ready(()) => {
                    {
                        let mut slots = self.slots.borrow_mut();
                        let s = &mut slots[idx as usize];
                        s.gen = s.gen.wrapping_add(1);
                    }
                    self.free.borrow_mut().push(idx);
                    self.count.set(self.count.get() - 1);
                    drop(task);
                }
                Poll::Pending => self.slots.borrow_mut()[idx as usize].task = Some(task),
            }
        }
        n > 0
    }

    /// Drops every task (thread destruction).
    pub(crate) fn clear(&self) {
        let tasks: Vec<_> = self
            .slots
            .borrow_mut()
            .iter_mut()
            .filter_map(|s| {
                s.gen = s.gen.wrapping_add(1);
                s.task.take()
            })
            .collect();
        self.count.set(0);
        self.ready.borrow_mut().clear();
        drop(tasks);
    }
}

impl Thread {
    /// Spawns a `!Send` future on this thread's executor; it is first
    /// polled at the thread's next poll. Error: [`ThreadError::ThreadExited`].
    pub fn spawn_local<F>(&self, fut: F) -> Result<JoinHandle<F::Output>, ThreadError>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        if self.is_exited() {
            return Err(ThreadError::ThreadExited {
                thread: self.inner.shared.name.clone(),
            });
        }
        let (body, handle) = join_pair(fut, self.inner.shared.name.clone());
        let exec = &self.inner.exec;
        let idx = match exec.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                let mut slots = exec.slots.borrow_mut();
                slots.push(Slot { gen: 0, task: None });
                (slots.len() - 1) as u32
            }
        };
        let gen = exec.slots.borrow()[idx as usize].gen;
        let flag = Arc::new(TaskWaker {
            thread: self.handle(),
            idx,
            gen,
            scheduled: AtomicBool::new(true),
        });
        let task = Task {
            fut: Box::pin(body),
            waker: Waker::from(flag.clone()),
            flag,
        };
        exec.slots.borrow_mut()[idx as usize].task = Some(task);
        exec.count.set(exec.count.get() + 1);
        exec.ready.borrow_mut().push_back((idx, gen));
        Ok(handle)
    }
}

/// Spawns a `!Send` future on the current thread; see [`Thread::spawn_local`].
pub fn spawn_local<F>(fut: F) -> Result<JoinHandle<F::Output>, ThreadError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    Thread::current_or_err()?.spawn_local(fut)
}
