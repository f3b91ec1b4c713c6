//! Async forms of the LBA range lock calls: `lock_lba_range_async`,
//! `quiesce_range_async` and `quiesce_async` resolve when the lock is held.
//!
//! A future dropped before it resolved does not leave a lock behind: if
//! the lock is granted after the drop (or was granted but not yet
//! collected), it is released at once.

use super::channel::Channel;
use super::desc::Desc;
use super::Result;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct Slot {
    result: Option<Result<()>>,
    waker: Option<Waker>,
    /// The future is gone: a grant arriving now is released at once.
    abandoned: bool,
}

/// What releases the lock if nobody collects it. It holds the descriptor
/// and channel weakly: it must not keep either open (closing them ends
/// their locks anyway).
#[derive(Clone)]
struct Release {
    desc: std::sync::Weak<super::desc::DescInner>,
    ch: Weak<super::channel::ChannelInner>,
    offset_blocks: u64,
    num_blocks: u64,
    quiesce: bool,
}

impl Release {
    fn run(&self) {
        let (Some(d), Some(c)) = (self.desc.upgrade(), self.ch.upgrade()) else {
            // The descriptor or channel is gone, and its locks with it.
            return;
        };
        let (desc, ch) = (Desc { inner: d }, Channel(c));
        let r = if self.quiesce {
            desc.unquiesce_range(&ch, self.offset_blocks, self.num_blocks)
        } else {
            desc.unlock_lba_range(&ch, self.offset_blocks, self.num_blocks)
        };
        if let Err(e) = r {
            log::warn!("releasing a lock whose future was dropped: {e}");
        }
    }
}

/// Resolves when the lock is held (or could not be taken).
struct Granted {
    slot: Rc<RefCell<Slot>>,
    release: Release,
}

impl Future for Granted {
    type Output = Result<()>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut s = self.slot.borrow_mut();
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl Drop for Granted {
    fn drop(&mut self) {
        let granted_uncollected = {
            let mut s = self.slot.borrow_mut();
            s.abandoned = true;
            s.waker = None;
            matches!(s.result.take(), Some(Ok(())))
        };
        if granted_uncollected {
            self.release.run();
        }
    }
}

impl Desc {
    fn lock_future(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
        quiesce: bool,
    ) -> Result<Granted> {
        let slot = Rc::new(RefCell::new(Slot::default()));
        let release = Release {
            desc: std::sync::Arc::downgrade(&self.inner),
            ch: Rc::downgrade(&ch.0),
            offset_blocks,
            num_blocks,
            quiesce,
        };
        let (s2, rel2) = (slot.clone(), release.clone());
        let cb = move |r: Result<()>| {
            let mut s = s2.borrow_mut();
            if s.abandoned {
                drop(s);
                if r.is_ok() {
                    rel2.run();
                }
                return;
            }
            s.result = Some(r);
            let w = s.waker.take();
            drop(s);
            if let Some(w) = w {
                w.wake();
            }
        };
        if quiesce {
            self.quiesce_range(ch, offset_blocks, num_blocks, cb)?;
        } else {
            self.lock_lba_range(ch, offset_blocks, num_blocks, cb)?;
        }
        Ok(Granted { slot, release })
    }

    /// [`Desc::lock_lba_range`] as a future: resolves once the range is
    /// locked against other channels' writes. Release it with
    /// [`Desc::unlock_lba_range`]. Dropping the future before it resolves
    /// releases the lock if it is granted later.
    pub async fn lock_lba_range_async(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<()> {
        self.lock_future(ch, offset_blocks, num_blocks, false)?
            .await
    }

    /// [`Desc::quiesce_range`] as a future: resolves once no I/O of any
    /// channel touches the range and new I/O waits. End it with
    /// [`Desc::unquiesce_range`]. Dropping the future before it resolves
    /// ends the quiesce if it is granted later.
    pub async fn quiesce_range_async(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<()> {
        self.lock_future(ch, offset_blocks, num_blocks, true)?.await
    }

    /// [`Desc::quiesce`] as a future: the whole bdev.
    pub async fn quiesce_async(&self, ch: &Channel) -> Result<()> {
        self.quiesce_range_async(ch, 0, self.bdev().num_blocks())
            .await
    }
}
