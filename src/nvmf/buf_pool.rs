//! The transport's shared data buffers (SPDK's `num_shared_buffers` and
//! `buf_cache_size` of `nvmf_create_transport`): one pool for every poll
//! group of the transport, and a cache per poll group in front of it.
//!
//! A command whose data is larger than its own small buffer (see the TCP
//! transport) takes one buffer here for as long as it runs, and gives it
//! back when its data has gone out (or come in and been written). When
//! none is free the command waits, in arrival order, until one comes
//! back: it never fails for want of a buffer.
//!
//! SPDK counts `num_shared_buffers` in buffers of `io_unit_size` bytes and
//! lets one command gather several of them. A command's data is one
//! contiguous buffer here, so the pool hands out whole buffers of
//! `max_io_size` bytes, as many as `num_shared_buffers` × `io_unit_size`
//! bytes make (with the defaults, where `io_unit_size` = `max_io_size`,
//! exactly `num_shared_buffers`); `buf_cache_size` is converted the same
//! way. Buffers are made the first time they are needed (so a target that
//! never sees large I/O never holds the memory) and kept from then on.
//!
//! The caches keep buffers on their poll group's thread without touching
//! the shared pool; while any group has commands waiting, the other groups
//! return what they free to the pool and empty their caches into it, so no
//! group waits on buffers idle in another's cache.

use super::{NvmfError, TransportOpts};
use crate::bdev::IoBuf;
use crate::env::{DmaBuf, EnvError};
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// SPDK's `buf_cache_size` default: the cache size is computed (three
/// quarters of the pool shared among the poll groups).
pub const BUF_CACHE_AUTO: u32 = u32::MAX;

/// The shared pool of one transport.
#[derive(Debug)]
pub struct BufPool {
    free: ArrayQueue<IoBuf>,
    buf_len: usize,
    limit: usize,
    created: AtomicUsize,
    cache_size: usize,
    /// Poll groups with commands waiting for a buffer now.
    starving: AtomicUsize,
}

impl BufPool {
    /// The pool `opts` describe, for `groups` poll groups. Errors: the
    /// options give no buffer of `max_io_size` bytes, or caches of
    /// `buf_cache_size` for every group need more than the pool holds
    /// (SPDK refuses the transport then too).
    pub fn new(opts: &TransportOpts, groups: usize) -> Result<Arc<BufPool>, NvmfError> {
        let buf_len = opts.max_io_size as usize;
        let unit = opts.io_unit_size.max(1) as u64;
        let to_bufs = |units: u64| (units * unit / buf_len as u64) as usize;
        let limit = to_bufs(opts.num_shared_buffers as u64);
        if limit == 0 {
            return Err(NvmfError::InvalidParam {
                name: "num_shared_buffers",
                value: opts.num_shared_buffers.to_string(),
                why: format!(
                    "{} buffers of io_unit_size {} bytes hold less than one I/O of max_io_size \
                     {} bytes: raise num_shared_buffers",
                    opts.num_shared_buffers, opts.io_unit_size, opts.max_io_size
                ),
            });
        }
        let groups = groups.max(1) as u64;
        let cache_units = if opts.buf_cache_size == BUF_CACHE_AUTO {
            opts.num_shared_buffers as u64 * 3 / 4 / groups
        } else {
            let need = opts.buf_cache_size as u64 * groups;
            if need > opts.num_shared_buffers as u64 {
                return Err(NvmfError::InvalidParam {
                    name: "buf_cache_size",
                    value: opts.buf_cache_size.to_string(),
                    why: format!(
                        "caches of {} buffers for each of {groups} poll groups need {need} \
                         buffers; num_shared_buffers is {}: raise it or lower buf_cache_size",
                        opts.buf_cache_size, opts.num_shared_buffers
                    ),
                });
            }
            opts.buf_cache_size as u64
        };
        Ok(Arc::new(BufPool {
            free: ArrayQueue::new(limit),
            buf_len,
            limit,
            created: AtomicUsize::new(0),
            cache_size: to_bufs(cache_units),
            starving: AtomicUsize::new(0),
        }))
    }

    /// Bytes of each buffer (`max_io_size`).
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    /// Buffers the pool may hold at most.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Buffers each poll group's cache keeps at most.
    pub fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// Buffers made so far (at most [`limit`](Self::limit)).
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    /// A free buffer of the pool, or a new one while fewer than the limit
    /// exist; `Ok(None)` when all are taken. An error when memory for a
    /// new one could not be had.
    fn take(&self) -> Result<Option<IoBuf>, EnvError> {
        if let Some(b) = self.free.pop() {
            return Ok(Some(b));
        }
        let made = self
            .created
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            });
        if made.is_err() {
            return Ok(None);
        }
        match DmaBuf::alloc_zeroed(self.buf_len, 4096) {
            Ok(d) => Ok(Some(IoBuf::from_dma(d, 0, self.buf_len))),
            Err(e) => {
                self.created.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    /// Returns a buffer to the pool.
    fn give(&self, b: IoBuf) {
        if self.free.push(b).is_err() {
            // More buffers than were made: a broken invariant; the extra
            // one is freed rather than kept.
            log::error!("nvmf: shared buffer pool overfull; a buffer is freed");
            self.created.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// One poll group's cache in front of the pool (on the group's thread).
#[derive(Debug)]
pub struct BufCache {
    pool: Arc<BufPool>,
    cache: Vec<IoBuf>,
    waiting: bool,
}

impl BufCache {
    /// An empty cache of `pool` (it fills as buffers come back).
    pub fn new(pool: Arc<BufPool>) -> BufCache {
        let cache = Vec::with_capacity(pool.cache_size);
        BufCache {
            pool,
            cache,
            waiting: false,
        }
    }

    /// The pool behind the cache.
    pub fn pool(&self) -> &Arc<BufPool> {
        &self.pool
    }

    /// A buffer from the cache, else from the pool; `Ok(None)` when none
    /// is free (the caller waits); an error when memory could not be had.
    pub fn get(&mut self) -> Result<Option<IoBuf>, EnvError> {
        if let Some(b) = self.cache.pop() {
            return Ok(Some(b));
        }
        self.pool.take()
    }

    /// Gives a buffer back: to the cache while it has room and no group
    /// waits, to the pool otherwise.
    pub fn put(&mut self, b: IoBuf) {
        let others_wait = self.pool.starving.load(Ordering::Relaxed) > usize::from(self.waiting);
        if self.cache.len() < self.pool.cache_size && !others_wait {
            self.cache.push(b);
        } else {
            self.pool.give(b);
        }
    }

    /// Says whether this group has commands waiting for a buffer.
    pub fn set_waiting(&mut self, waiting: bool) {
        if waiting == self.waiting {
            return;
        }
        self.waiting = waiting;
        if waiting {
            self.pool.starving.fetch_add(1, Ordering::AcqRel);
        } else {
            self.pool.starving.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// While another group waits for buffers, empties this cache into the
    /// pool (one atomic load when nobody waits); true when it gave any.
    pub fn share_if_others_wait(&mut self) -> bool {
        if self.cache.is_empty()
            || self.pool.starving.load(Ordering::Relaxed) <= usize::from(self.waiting)
        {
            return false;
        }
        while let Some(b) = self.cache.pop() {
            self.pool.give(b);
        }
        true
    }
}

impl Drop for BufCache {
    fn drop(&mut self) {
        self.set_waiting(false);
        while let Some(b) = self.cache.pop() {
            self.pool.give(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() {
        crate::env::init_once(crate::env::EnvOpts::no_huge()).unwrap();
    }

    fn opts(n: u32, cache: u32) -> TransportOpts {
        TransportOpts {
            max_io_size: 8192,
            io_unit_size: 8192,
            num_shared_buffers: n,
            buf_cache_size: cache,
            ..TransportOpts::default()
        }
    }

    #[test]
    fn a_pool_of_too_few_units_for_one_large_io_is_refused() {
        let o = TransportOpts {
            max_io_size: 131072,
            io_unit_size: 8192,
            num_shared_buffers: 15,
            buf_cache_size: 0,
            ..TransportOpts::default()
        };
        let e = BufPool::new(&o, 1).unwrap_err().to_string();
        assert!(e.contains("num_shared_buffers"), "{e}");
        let p = BufPool::new(
            &TransportOpts {
                num_shared_buffers: 33,
                ..o
            },
            1,
        )
        .unwrap();
        assert_eq!(p.limit(), 2);
    }

    #[test]
    fn caches_larger_than_the_pool_are_refused_and_auto_takes_three_quarters() {
        assert!(BufPool::new(&opts(8, 3), 3).is_err());
        assert_eq!(BufPool::new(&opts(8, 2), 4).unwrap().cache_size(), 2);
        assert_eq!(
            BufPool::new(&opts(16, BUF_CACHE_AUTO), 2)
                .unwrap()
                .cache_size(),
            6
        );
    }

    #[test]
    fn buffers_are_made_up_to_the_limit_then_come_back_through_the_cache() {
        env();
        let pool = BufPool::new(&opts(2, 1), 1).unwrap();
        let mut c = BufCache::new(pool.clone());
        let a = c.get().unwrap().unwrap();
        let b = c.get().unwrap().unwrap();
        assert_eq!(a.len(), 8192);
        assert!(c.get().unwrap().is_none());
        assert_eq!(pool.created(), 2);
        c.put(a);
        c.put(b);
        // One stays in the cache, the other went to the pool.
        assert_eq!(pool.free.len(), 1);
        assert!(c.get().unwrap().is_some());
        assert!(c.get().unwrap().is_some());
        assert!(c.get().unwrap().is_none());
        assert_eq!(pool.created(), 2);
    }

    #[test]
    fn a_cache_empties_into_the_pool_while_another_group_waits() {
        env();
        let pool = BufPool::new(&opts(2, 1), 2).unwrap();
        let (mut c1, mut c2) = (BufCache::new(pool.clone()), BufCache::new(pool.clone()));
        let a = c1.get().unwrap().unwrap();
        let b = c1.get().unwrap().unwrap();
        c1.put(a);
        assert!(c2.get().unwrap().is_none());
        c2.set_waiting(true);
        // Freed while group 2 waits: to the pool, not the cache.
        c1.put(b);
        assert!(c2.get().unwrap().is_some());
        assert!(c1.share_if_others_wait());
        assert!(c2.get().unwrap().is_some());
        c2.set_waiting(false);
        assert!(!c1.share_if_others_wait());
    }
}
