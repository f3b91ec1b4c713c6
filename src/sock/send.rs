//! The send side: frames queued since the last flush go out with one
//! `sendmsg` of many iovecs, and a partial send resumes where it stopped.

use super::{SockError, Socket};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Most iovecs given to one `sendmsg` (a flush sends more in further calls).
pub const MAX_IOVS: usize = 64;

/// One queued piece: staged bytes, or a payload found again by key.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    Staged { start: usize, len: usize },
    Payload { key: u64, off: usize, len: usize },
}

impl Chunk {
    fn len(&self) -> usize {
        match *self {
            Chunk::Staged { len, .. } | Chunk::Payload { len, .. } => len,
        }
    }
}

/// A queue of outgoing bytes with fixed capacity (allocated once).
///
/// Headers are copied into the staging area ([`SendQueue::push`]);
/// payloads are queued by key ([`SendQueue::push_payload`]) and looked up
/// with the resolver given to [`SendQueue::flush`], so they are sent from
/// where they live. Bytes go out in the order they were queued.
#[derive(Debug)]
pub struct SendQueue {
    staging: Vec<u8>,
    staging_cap: usize,
    chunks: VecDeque<Chunk>,
    max_chunks: usize,
    /// Bytes of the front chunk already sent.
    sent_of_front: usize,
    queued: usize,
}

impl SendQueue {
    /// A queue with `staging_bytes` of header staging and room for
    /// `max_chunks` queued pieces.
    pub fn new(staging_bytes: usize, max_chunks: usize) -> Self {
        SendQueue {
            staging: Vec::with_capacity(staging_bytes),
            staging_cap: staging_bytes,
            chunks: VecDeque::with_capacity(max_chunks),
            max_chunks,
            sent_of_front: 0,
            queued: 0,
        }
    }

    /// Bytes queued and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.queued
    }

    /// True when everything queued has been sent.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Whether `bytes` more staged bytes and `chunks` more pieces fit now.
    pub fn has_room(&self, bytes: usize, chunks: usize) -> bool {
        self.chunks.len() + chunks <= self.max_chunks
            && (self.staging.len() + bytes <= self.staging_cap
                || self.staged_live() + bytes <= self.staging_cap)
    }

    /// Staged bytes still to be sent.
    fn staged_live(&self) -> usize {
        self.chunks
            .iter()
            .map(|c| match c {
                Chunk::Staged { len, .. } => *len,
                Chunk::Payload { .. } => 0,
            })
            .sum()
    }

    fn room_for_chunk(&self) -> Result<(), SockError> {
        if self.chunks.len() >= self.max_chunks {
            return Err(SockError::SendQueueFull { what: "entries" });
        }
        Ok(())
    }

    /// Copies `bytes` (a frame header, a small frame) into the queue
    /// (nothing is queued for an empty slice).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), SockError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.room_for_chunk()?;
        if self.staging.len() + bytes.len() > self.staging_cap {
            self.compact_staging();
            if self.staging.len() + bytes.len() > self.staging_cap {
                return Err(SockError::SendQueueFull {
                    what: "staging bytes",
                });
            }
        }
        let start = self.staging.len();
        self.staging.extend_from_slice(bytes);
        match self.chunks.back_mut() {
            // Adjacent staged bytes go out as one iovec.
            Some(Chunk::Staged { start: s, len }) if *s + *len == start => *len += bytes.len(),
            _ => self.chunks.push_back(Chunk::Staged {
                start,
                len: bytes.len(),
            }),
        }
        self.queued += bytes.len();
        Ok(())
    }

    /// Queues `len` bytes from offset `off` of the payload named `key`
    /// (looked up at flush time by the resolver; not copied).
    pub fn push_payload(&mut self, key: u64, off: usize, len: usize) -> Result<(), SockError> {
        if len == 0 {
            return Ok(());
        }
        self.room_for_chunk()?;
        self.chunks.push_back(Chunk::Payload { key, off, len });
        self.queued += len;
        Ok(())
    }

    /// Moves the staged bytes still queued to the front of the staging area.
    fn compact_staging(&mut self) {
        let Some(first) = self.chunks.iter().find_map(|c| match c {
            Chunk::Staged { start, .. } => Some(*start),
            Chunk::Payload { .. } => None,
        }) else {
            self.staging.clear();
            return;
        };
        if first == 0 {
            return;
        }
        self.staging.copy_within(first.., 0);
        self.staging.truncate(self.staging.len() - first);
        for c in self.chunks.iter_mut() {
            if let Chunk::Staged { start, .. } = c {
                *start -= first;
            }
        }
    }

    /// Sends what is queued: `sendmsg` with up to [`MAX_IOVS`] iovecs,
    /// repeated while the kernel takes all it is given. Returns the bytes
    /// sent; what the kernel did not take stays queued for the next flush.
    ///
    /// `resolve(key)` gives the bytes of a payload queued with
    /// [`SendQueue::push_payload`].
    pub fn flush<'a, F>(&mut self, sock: &Socket, resolve: F) -> Result<usize, SockError>
    where
        F: Fn(u64) -> &'a [u8],
    {
        let mut total = 0;
        while !self.chunks.is_empty() {
            let (offered, sent) = {
                let mut iov = [IoSlice::new(&[]); MAX_IOVS];
                let mut n = 0;
                let mut offered = 0;
                for (i, c) in self.chunks.iter().take(MAX_IOVS).enumerate() {
                    let skip = if i == 0 { self.sent_of_front } else { 0 };
                    let bytes = match *c {
                        Chunk::Staged { start, len } => &self.staging[start + skip..start + len],
                        Chunk::Payload { key, off, len } => {
                            let p = resolve(key);
                            let need = off + len;
                            let Some(b) = p.get(off + skip..need) else {
                                return Err(SockError::PayloadShort {
                                    key,
                                    need,
                                    have: p.len(),
                                });
                            };
                            b
                        }
                    };
                    iov[n] = IoSlice::new(bytes);
                    n += 1;
                    offered += bytes.len();
                }
                (offered, sock.send_vectored(&iov[..n])?)
            };
            self.advance(sent);
            total += sent;
            // A send that took nothing ends the flush even when nothing
            // was offered: the loop never spins on an empty piece.
            if sent == 0 || sent < offered {
                break;
            }
        }
        Ok(total)
    }

    /// Drops `n` sent bytes from the front.
    fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                break;
            };
            let left = front.len() - self.sent_of_front;
            if n < left {
                self.sent_of_front += n;
                return;
            }
            n -= left;
            self.sent_of_front = 0;
            self.chunks.pop_front();
        }
        if self
            .chunks
            .iter()
            .all(|c| matches!(c, Chunk::Payload { .. }))
        {
            self.staging.clear();
        }
    }

    /// Forgets everything queued (the connection is being torn down).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.staging.clear();
        self.sent_of_front = 0;
        self.queued = 0;
    }
}
