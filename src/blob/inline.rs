//! The synchronous facade: an asynchronous blobstore operation on a device
//! that completes inline (RAM, file, power-cut) finishes in its first poll,
//! so a synchronous call polls it once. On a device that does not complete
//! inline the call is refused before anything starts ([`BlobError::NotInline`]),
//! never spun on.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::error::{BlobError, Result};

struct Noop;

impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

thread_local! {
    static NOOP: Waker = Waker::from(Arc::new(Noop));
}

/// Refuses a synchronous `op` on a device that does not complete inline.
pub(crate) fn check(inline: bool, op: &'static str) -> Result<()> {
    if inline {
        Ok(())
    } else {
        Err(BlobError::NotInline { op })
    }
}

/// Runs `fut` to completion in one poll; a future that is still pending
/// (its device did not complete inline after all) is dropped and reported.
pub(crate) fn now<T>(op: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let mut fut = pin!(fut);
    NOOP.with(|w| match fut.as_mut().poll(&mut Context::from_waker(w)) {
        Poll::Ready(r) => r,
        Poll::Pending => Err(BlobError::NotInline { op }),
    })
}
