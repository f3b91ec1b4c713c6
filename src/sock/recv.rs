//! The receive side: a preallocated buffer filled by one read per poll,
//! from which the owner takes whole frames or streams payload bytes.

use super::{SockError, Socket};

/// A receive buffer of fixed capacity (allocated once).
///
/// Bytes read but not yet taken stay at `start..end`; they are moved to
/// the front only when the free tail is smaller than a frame header could
/// need, so a frame is always contiguous when it is handed out.
#[derive(Debug)]
pub struct RecvBuffer {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl RecvBuffer {
    /// A buffer of `capacity` bytes: the largest frame it can hand out
    /// whole (payloads longer than that are streamed with [`RecvBuffer::take`]).
    pub fn new(capacity: usize) -> Self {
        RecvBuffer {
            buf: vec![0u8; capacity.max(1)].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Bytes received and not yet taken.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when no received byte is waiting.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The bytes received and not yet taken.
    pub fn peek(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Drops `n` bytes from the front (at most what is there).
    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Bytes the next [`fill`](Self::fill) can read at most (it moves
    /// waiting bytes to the front first when the end is reached). A fill
    /// that reads fewer found the socket drained.
    pub fn room(&self) -> usize {
        if self.end == self.buf.len() && self.start > 0 {
            self.buf.len() - self.len()
        } else {
            self.buf.len() - self.end
        }
    }

    /// One read from `sock` into the free space: the bytes read, 0 when
    /// the socket had nothing or the buffer is full. Moves waiting bytes
    /// to the front first when that makes room.
    pub fn fill(&mut self, sock: &Socket) -> Result<usize, SockError> {
        self.fill_max(sock, usize::MAX)
    }

    /// As [`fill`](Self::fill), reading at most `max` bytes: a caller that
    /// expects a large payload next reads only the header in front of it,
    /// so the payload can be read straight to where it belongs instead of
    /// being copied out of this buffer.
    pub fn fill_max(&mut self, sock: &Socket, max: usize) -> Result<usize, SockError> {
        if self.end == self.buf.len() && self.start > 0 {
            self.compact();
        }
        let end = self.buf.len().min(self.end.saturating_add(max));
        let n = sock.recv(&mut self.buf[self.end..end])?;
        self.end += n;
        Ok(n)
    }

    fn compact(&mut self) {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }

    /// The next whole frame, or `None` until all of it has arrived.
    ///
    /// `frame_len` looks at the waiting bytes and says how long the frame
    /// at the front is (`None` when it cannot tell yet, e.g. the length
    /// field has not arrived). The frame is taken off the buffer and
    /// returned; a frame longer than the capacity is an error, since it
    /// could never arrive whole.
    pub fn next_frame<F>(&mut self, frame_len: F) -> Result<Option<&[u8]>, SockError>
    where
        F: FnOnce(&[u8]) -> Option<usize>,
    {
        let Some(len) = frame_len(self.peek()) else {
            return Ok(None);
        };
        if len > self.buf.len() {
            return Err(SockError::FrameTooLarge {
                len,
                capacity: self.buf.len(),
            });
        }
        if self.len() < len {
            if self.start + len > self.buf.len() {
                // The rest would not fit behind it: make room now.
                self.compact();
            }
            return Ok(None);
        }
        let at = self.start;
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(&self.buf[at..at + len]))
    }

    /// Up to `max` waiting bytes, taken off the buffer (a payload streamed
    /// to its destination as it arrives).
    pub fn take(&mut self, max: usize) -> &[u8] {
        let n = max.min(self.len());
        let at = self.start;
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        &self.buf[at..at + n]
    }
}
