//! Each channel's statistics gathered on its own thread (SPDK's
//! `spdk_bdev_for_each_channel` with `spdk_bdev_get_io_stat`, what
//! `bdev_get_iostat` with `per_channel` shows): a walk of the bdev's
//! io_device reads every channel of each thread there, with the thread's
//! id, and completes on the calling thread.

use super::channel::ChannelInner;
use super::device::Bdev;
use super::per_thread::channel_error;
use super::stat::IoStat;
use super::Result;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// One channel's statistics and the lightweight thread it lives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelIoStat {
    /// The id of the channel's thread (SPDK's `thread_id`), as
    /// `thread_get_stats` lists it; a channel made outside any thread
    /// shows its OS thread's host thread.
    pub thread_id: u64,
    /// The channel's counters.
    pub stat: IoStat,
}

impl Bdev {
    /// Reads each channel's statistics on its own thread, one thread after
    /// another; `done` runs on the calling thread with them, in thread-id
    /// order. Must be called on a lightweight thread (the walk completes
    /// there); otherwise [`BdevError::Channel`](super::BdevError::Channel).
    pub fn for_each_channel_iostat(
        &self,
        done: impl FnOnce(Vec<ChannelIoStat>) + Send + 'static,
    ) -> Result<()> {
        let acc: Arc<Mutex<Vec<ChannelIoStat>>> = Arc::default();
        let seen = acc.clone();
        self.io_device
            .for_each_channel(
                move |io, it| {
                    let thread_id = io.thread_id();
                    let mut chans = io.ctx_mut().live::<ChannelInner>();
                    chans.sort_by_key(|c| c.id);
                    let mut v = seen.lock().unwrap_or_else(|e| e.into_inner());
                    for c in chans {
                        v.push(ChannelIoStat {
                            thread_id,
                            stat: c.stat.snapshot(),
                        });
                    }
                    drop(v);
                    it.continue_with(0)
                },
                move |_| {
                    done(std::mem::take(
                        &mut *acc.lock().unwrap_or_else(|e| e.into_inner()),
                    ))
                },
            )
            .map_err(|e| channel_error(self.name(), e))
    }

    /// [`Bdev::for_each_channel_iostat`] as a future, for a task on a
    /// lightweight thread.
    pub fn channel_iostats_async(&self) -> ChannelIoStats {
        let slot: Arc<Mutex<Slot>> = Arc::default();
        let s = slot.clone();
        let started = self.for_each_channel_iostat(move |v| {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.result = Some(v);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        ChannelIoStats {
            slot,
            error: started.err(),
        }
    }
}

#[derive(Default)]
struct Slot {
    result: Option<Vec<ChannelIoStat>>,
    waker: Option<Waker>,
}

/// Resolves to each channel's statistics (see [`Bdev::channel_iostats_async`]).
pub struct ChannelIoStats {
    slot: Arc<Mutex<Slot>>,
    error: Option<super::BdevError>,
}

impl Future for ChannelIoStats {
    type Output = Result<Vec<ChannelIoStat>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(e) = self.error.take() {
            return Poll::Ready(Err(e));
        }
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(v) => Poll::Ready(Ok(v)),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
