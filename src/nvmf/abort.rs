//! Abort of an I/O command (SPDK's `nvmf_ctrlr_abort` and the TCP
//! transport's `qpair_abort_request`): the admin queue posts the request
//! into its controller's mailbox, the I/O queue named by SQID (possibly
//! served by another thread) answers whether it took the command back,
//! and the admin queue completes the Abort with that answer, or with "not
//! aborted" when no answer came within [`ABORT_TIMEOUT`].
//!
//! A command can be taken back while it is still in the target: its data
//! not all received (in the capsule, or by R2T), or the first half of a
//! fused pair waiting for the second. A command handed to the bdev layer
//! is not aborted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an Abort waits for the I/O queue's answer (SPDK's
/// `abort_timeout_sec` default).
pub const ABORT_TIMEOUT: Duration = Duration::from_secs(1);

/// Most Abort commands waiting at once per controller (more are answered
/// "not aborted" at once).
pub const MAX_PENDING_ABORTS: usize = 16;

#[derive(Debug)]
struct Request {
    ticket: u64,
    sqid: u16,
    cid: u16,
    posted: Instant,
    /// The queue looked once and did not find the command.
    looked: bool,
    answer: Option<bool>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    reqs: Vec<Request>,
}

/// A controller's Abort requests on their way between its admin queue
/// and its I/O queues.
#[derive(Debug, Default)]
pub struct AbortBox {
    /// Some request waits for its I/O queue (one relaxed load per I/O
    /// queue poll when nothing does).
    unanswered: AtomicBool,
    inner: Mutex<Inner>,
}

impl AbortBox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Posts an Abort of command `cid` on I/O queue `sqid`; its ticket,
    /// or `None` when [`MAX_PENDING_ABORTS`] already wait.
    pub fn post(&self, sqid: u16, cid: u16) -> Option<u64> {
        let mut g = self.lock();
        if g.reqs.len() >= MAX_PENDING_ABORTS {
            return None;
        }
        g.next += 1;
        let ticket = g.next;
        g.reqs.push(Request {
            ticket,
            sqid,
            cid,
            posted: Instant::now(),
            looked: false,
            answer: None,
        });
        self.unanswered.store(true, Ordering::Release);
        Some(ticket)
    }

    /// True when some request waits for an I/O queue's answer.
    pub fn has_unanswered(&self) -> bool {
        self.unanswered.load(Ordering::Acquire)
    }

    /// Answers the requests for queue `sqid`: `take_back(cid)` says
    /// whether the queue took command `cid` back (`Some(true)`), could
    /// not (`Some(false)`), or has no such command (`None`). A command
    /// not found is looked for once more at the queue's next poll (it may
    /// be in the socket, sent before the Abort but not yet read), then
    /// answered "not aborted".
    pub fn answer(&self, sqid: u16, mut take_back: impl FnMut(u16) -> Option<bool>) {
        let mut g = self.lock();
        for r in g.reqs.iter_mut() {
            if r.sqid == sqid && r.answer.is_none() {
                r.answer = match take_back(r.cid) {
                    Some(a) => Some(a),
                    None if r.looked => Some(false),
                    None => {
                        r.looked = true;
                        None
                    }
                };
            }
        }
        let left = g.reqs.iter().any(|r| r.answer.is_none());
        self.unanswered.store(left, Ordering::Release);
    }

    /// The answer to `ticket` once given (the request is then forgotten);
    /// `false` (not aborted) once `now` is [`ABORT_TIMEOUT`] past its
    /// posting; `None` while it waits.
    pub fn take_answer(&self, ticket: u64, now: Option<Instant>) -> Option<bool> {
        let mut g = self.lock();
        let k = g.reqs.iter().position(|r| r.ticket == ticket)?;
        let r = &g.reqs[k];
        let answer = match (r.answer, now) {
            (Some(a), _) => a,
            (None, Some(now)) if now.duration_since(r.posted) >= ABORT_TIMEOUT => false,
            _ => return None,
        };
        g.reqs.remove(k);
        let left = g.reqs.iter().any(|r| r.answer.is_none());
        self.unanswered.store(left, Ordering::Release);
        Some(answer)
    }

    /// Forgets `ticket` (its admin queue is gone).
    pub fn cancel(&self, ticket: u64) {
        let mut g = self.lock();
        g.reqs.retain(|r| r.ticket != ticket);
        let left = g.reqs.iter().any(|r| r.answer.is_none());
        self.unanswered.store(left, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abort_is_answered_by_its_queue_and_only_its_queue() {
        let b = AbortBox::default();
        assert!(!b.has_unanswered());
        let t = b.post(2, 7).unwrap();
        assert!(b.has_unanswered());
        b.answer(1, |_| {
            panic!("queue 1 is not asked about queue 2's command")
        });
        assert_eq!(b.take_answer(t, None), None, "no answer yet");
        b.answer(2, |cid| (cid == 7).then_some(true));
        assert!(!b.has_unanswered());
        assert_eq!(b.take_answer(t, None), Some(true));
        assert_eq!(b.take_answer(t, None), None, "taken once");
    }

    #[test]
    fn a_command_not_found_is_looked_for_at_one_more_poll_before_not_aborted() {
        let b = AbortBox::default();
        let t = b.post(1, 7).unwrap();
        b.answer(1, |_| None);
        assert!(b.has_unanswered(), "looked once");
        assert_eq!(b.take_answer(t, None), None);
        b.answer(1, |_| None);
        assert_eq!(b.take_answer(t, None), Some(false), "not aborted");
        let t = b.post(1, 8).unwrap();
        b.answer(1, |_| None);
        b.answer(1, |_| Some(true));
        assert_eq!(
            b.take_answer(t, None),
            Some(true),
            "found at the second look"
        );
    }

    #[test]
    fn an_unanswered_abort_times_out_as_not_aborted() {
        let b = AbortBox::default();
        let t = b.post(1, 3).unwrap();
        let late = Instant::now() + ABORT_TIMEOUT;
        assert_eq!(b.take_answer(t, Some(late)), Some(false));
        assert!(!b.has_unanswered());
        let t = b.post(1, 4).unwrap();
        b.cancel(t);
        assert!(!b.has_unanswered());
        for _ in 0..MAX_PENDING_ABORTS {
            b.post(1, 5).unwrap();
        }
        assert_eq!(b.post(1, 6), None, "bounded");
    }
}
