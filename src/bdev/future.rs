//! Async I/O: `desc.read_blocks_async(&ch, buf, off, n).await` on the
//! channel's thread. The future parks its waker in the pooled request; the
//! channel's poll wakes it, and the result waits in the request until the
//! future collects it. No allocation per I/O. Dropping the future before
//! completion detaches it: the I/O still finishes and its buffers are freed.

use super::buf::{IoBuf, IoData};
use super::channel::Channel;
use super::desc::Desc;
use super::io::{IoId, IoStatus, IoType};
use super::pool::{Cb, State};
use super::BdevError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A failed async I/O: why, and the buffers handed back.
#[derive(Debug)]
pub struct IoFailed {
    /// Why it failed.
    pub error: BdevError,
    /// The buffers the I/O took.
    pub data: IoData,
}

impl std::fmt::Display for IoFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for IoFailed {}

/// The future of one I/O; resolves to the buffers (success) or [`IoFailed`].
pub struct IoFuture<'a> {
    ch: &'a Channel,
    st: FutState,
}

enum FutState {
    Failed(Option<Box<IoFailed>>),
    InFlight(IoId),
    Finished,
}

impl Future for IoFuture<'_> {
    type Output = Result<IoData, Box<IoFailed>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = match &mut self.st {
            FutState::Failed(f) => {
                let f = f.take().map(Err).unwrap_or_else(|| Err(finished_twice()));
                self.st = FutState::Finished;
                return Poll::Ready(f);
            }
            FutState::Finished => return Poll::Ready(Err(finished_twice())),
            FutState::InFlight(id) => *id,
        };
        let mut pool = self.ch.0.pool.borrow_mut();
        let s = &mut pool.slots[id.index() as usize];
        if s.gen != id.gen() {
            drop(pool);
            self.st = FutState::Finished;
            return Poll::Ready(Err(finished_twice()));
        }
        if s.state == State::AsyncDone {
            let data = std::mem::take(&mut s.data);
            let status = s.status;
            pool.release(id.index());
            drop(pool);
            self.st = FutState::Finished;
            return Poll::Ready(match status {
                IoStatus::Success => Ok(data),
                st => Err(Box::new(IoFailed {
                    error: BdevError::IoStatus(st),
                    data,
                })),
            });
        }
        match &mut s.cb {
            Cb::Waker(Some(w)) if w.will_wake(cx.waker()) => {}
            // First wait (not per poll): is anyone going to poll the channel?
            Cb::Waker(None) if self.ch.0.unpolled_on_a_thread() => {
                // Detached as a dropped future is: the completion frees it.
                s.cb = Cb::None;
                drop(pool);
                let bdev = self.ch.0.bdev.name().to_string();
                self.st = FutState::Finished;
                return Poll::Ready(Err(Box::new(IoFailed {
                    error: BdevError::ChannelNotPolled { bdev },
                    data: IoData::None,
                })));
            }
            cb => *cb = Cb::Waker(Some(cx.waker().clone())),
        }
        Poll::Pending
    }
}

fn finished_twice() -> Box<IoFailed> {
    Box::new(IoFailed {
        error: BdevError::InvalidParam("I/O future polled after completion".into()),
        data: IoData::None,
    })
}

impl Drop for IoFuture<'_> {
    fn drop(&mut self) {
        if let FutState::InFlight(id) = self.st {
            let Ok(mut pool) = self.ch.0.pool.try_borrow_mut() else {
                log::error!("bdev I/O future dropped while its channel is busy; request leaked");
                return;
            };
            let s = &mut pool.slots[id.index() as usize];
            if s.gen == id.gen() {
                if s.state == State::AsyncDone {
                    pool.release(id.index());
                } else {
                    s.cb = Cb::None;
                }
            }
        }
    }
}

impl Desc {
    /// Submits any I/O type and returns its future.
    pub fn submit_async<'a>(
        &self,
        ch: &'a Channel,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
        data: IoData,
    ) -> IoFuture<'a> {
        let st = match self.submit_cb(
            ch,
            io_type,
            offset_blocks,
            num_blocks,
            data,
            Cb::Waker(None),
        ) {
            Ok(id) => FutState::InFlight(id),
            Err((error, data, _)) => FutState::Failed(Some(Box::new(IoFailed { error, data }))),
        };
        IoFuture { ch, st }
    }

    /// Async read of `num_blocks` at `offset_blocks`; resolves to the buffer.
    pub async fn read_blocks_async(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<IoBuf, Box<IoFailed>> {
        self.buf_blocks_async(ch, IoType::Read, buf, offset_blocks, num_blocks)
            .await
    }

    /// Async write of `buf` at `offset_blocks`; resolves to the buffer.
    pub async fn write_blocks_async(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<IoBuf, Box<IoFailed>> {
        self.buf_blocks_async(ch, IoType::Write, buf, offset_blocks, num_blocks)
            .await
    }

    /// Async read at a byte offset (`buf.len()` bytes). Await it on the
    /// thread whose channel `ch` is (there the channel's poller completes
    /// it); awaited on a thread through a channel made outside any thread
    /// it fails with [`BdevError::ChannelNotPolled`].
    ///
    /// ```
    /// use spdk_io::bdev::{self, malloc::{self, MallocOpts}, IoBuf};
    /// use spdk_io::thread::Thread;
    /// spdk_io::env::init(spdk_io::env::EnvOpts::no_huge())?;
    /// malloc::create(MallocOpts::new("Malloc0", 64, 512))?;
    /// let t = Thread::new("app");
    /// let back = t.block_on(async {
    ///     let desc = bdev::open("Malloc0", true)?;
    ///     let ch = desc.get_io_channel()?; // this thread's channel, polled here
    ///     desc.write_async(&ch, IoBuf::from_vec(vec![3; 1024]), 512).await?;
    ///     let buf = desc.read_async(&ch, IoBuf::new(1024), 512).await?;
    ///     Ok::<_, Box<dyn std::error::Error>>(buf.to_vec())
    /// })??;
    /// assert_eq!(back, vec![3; 1024]);
    /// t.shutdown()?;
    /// t.destroy()?;
    /// # bdev::fini(); spdk_io::env::fini();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn read_async(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset: u64,
    ) -> Result<IoBuf, Box<IoFailed>> {
        self.buf_bytes_async(ch, IoType::Read, buf, offset).await
    }

    /// Async write at a byte offset.
    pub async fn write_async(
        &self,
        ch: &Channel,
        buf: IoBuf,
        offset: u64,
    ) -> Result<IoBuf, Box<IoFailed>> {
        self.buf_bytes_async(ch, IoType::Write, buf, offset).await
    }

    /// Async flush of a block range.
    pub async fn flush_blocks_async(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<(), Box<IoFailed>> {
        self.range_async(ch, IoType::Flush, offset_blocks, num_blocks)
            .await
    }

    /// Async unmap of a block range.
    pub async fn unmap_blocks_async(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<(), Box<IoFailed>> {
        self.range_async(ch, IoType::Unmap, offset_blocks, num_blocks)
            .await
    }

    /// Async write-zeroes of a block range.
    pub async fn write_zeroes_blocks_async(
        &self,
        ch: &Channel,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<(), Box<IoFailed>> {
        self.range_async(ch, IoType::WriteZeroes, offset_blocks, num_blocks)
            .await
    }

    /// Async reset (see [`Desc::reset`]).
    pub async fn reset_async(&self, ch: &Channel) -> Result<(), Box<IoFailed>> {
        self.range_async(ch, IoType::Reset, 0, 0).await
    }

    /// A read or write of `num_blocks` at `offset_blocks` with `buf`;
    /// resolves to the buffer.
    async fn buf_blocks_async(
        &self,
        ch: &Channel,
        io_type: IoType,
        buf: IoBuf,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<IoBuf, Box<IoFailed>> {
        let d = self
            .submit_async(ch, io_type, offset_blocks, num_blocks, IoData::Buf(buf))
            .await?;
        Ok(d.into_buf().unwrap_or_else(|| IoBuf::new(0)))
    }

    /// A read or write of `buf.len()` bytes at the byte offset `offset`
    /// (whole blocks, or the I/O fails with `buf` handed back).
    async fn buf_bytes_async(
        &self,
        ch: &Channel,
        io_type: IoType,
        buf: IoBuf,
        offset: u64,
    ) -> Result<IoBuf, Box<IoFailed>> {
        match self.bytes_to_blocks(offset, buf.len() as u64) {
            Ok((o, n)) => self.buf_blocks_async(ch, io_type, buf, o, n).await,
            Err(error) => Err(Box::new(IoFailed {
                error,
                data: IoData::Buf(buf),
            })),
        }
    }

    /// An I/O without data over a block range (flush, unmap, write
    /// zeroes, reset).
    async fn range_async(
        &self,
        ch: &Channel,
        io_type: IoType,
        offset_blocks: u64,
        num_blocks: u64,
    ) -> Result<(), Box<IoFailed>> {
        self.submit_async(ch, io_type, offset_blocks, num_blocks, IoData::None)
            .await
            .map(|_| ())
    }
}
