//! One channel's io_uring for the file bdev.
//!
//! This is the one place above the env/pci/nvme layers with `unsafe`:
//! pushing a submission entry hands the kernel raw buffer pointers. It is
//! sound because the buffers belong to the pooled request, which keeps
//! them until this channel reports the completion, and because the channel
//! waits for every in-flight entry before it is dropped (it drops before
//! the pool that owns the buffers).

use super::Backing;
use crate::bdev::{BdevError, Completer, IoId, IoRequest, IoStatus, IoType, ModuleChannel, Result};
use io_uring::{opcode, types, IoUring};
use std::os::fd::AsRawFd;
use std::sync::Arc;

const RING_ENTRIES: u32 = 256;
const DIRECT_ALIGN: usize = 4096;

struct InFlight {
    id: IoId,
    expect: u32,
    iov: Vec<libc::iovec>,
    busy: bool,
}

pub(crate) struct UringChannel {
    ring: IoUring,
    backing: Arc<Backing>,
    done: Completer,
    slots: Vec<InFlight>,
    queued: u32,
    in_kernel: u32,
}

impl UringChannel {
    pub(crate) fn new(backing: Arc<Backing>, done: Completer, path: &str) -> Result<UringChannel> {
        let ring = IoUring::new(RING_ENTRIES).map_err(|e| BdevError::Os {
            op: "io_uring setup (it may be disabled: check /proc/sys/kernel/io_uring_disabled) for",
            path: path.to_string(),
            source: e.into(),
        })?;
        Ok(UringChannel {
            ring,
            backing,
            done,
            slots: Vec::new(),
            queued: 0,
            in_kernel: 0,
        })
    }

    fn ensure(&mut self, idx: u32) {
        let i = idx as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || InFlight {
                id: IoId::new(0, 0),
                expect: 0,
                iov: Vec::new(),
                busy: false,
            });
        }
    }

    fn reap(&mut self) -> usize {
        let mut n = 0;
        let done = &self.done;
        let slots = &mut self.slots;
        for cqe in self.ring.completion() {
            let i = cqe.user_data() as usize;
            let Some(s) = slots.get_mut(i).filter(|s| s.busy) else {
                continue;
            };
            s.busy = false;
            let res = cqe.result();
            let status = if res < 0 {
                let e = std::io::Error::from_raw_os_error(-res);
                if res == -libc::EAGAIN || res == -libc::ENOMEM {
                    IoStatus::NoMem
                } else {
                    log::error!("file bdev: I/O failed: {e}");
                    IoStatus::Failed
                }
            } else if s.expect != 0 && res as u32 != s.expect {
                log::error!("file bdev: short transfer of {res} of {} bytes", s.expect);
                IoStatus::Failed
            } else {
                IoStatus::Success
            };
            done.complete(s.id, status);
            n += 1;
        }
        self.in_kernel -= n as u32;
        n
    }
}

impl ModuleChannel for UringChannel {
    fn submit_request(&mut self, mut io: IoRequest<'_>) {
        let id = io.id;
        if io.io_type == IoType::Reset {
            self.done.complete(id, IoStatus::Success);
            return;
        }
        if self.ring.submission().is_full() {
            self.done.complete(id, IoStatus::NoMem);
            return;
        }
        let off = io.offset_bytes();
        let len = io.len_bytes();
        let io_type = io.io_type;
        let mut aligned = true;
        self.ensure(id.index());
        let s = &mut self.slots[id.index() as usize];
        s.iov.clear();
        if io_type.has_data() {
            let iov = &mut s.iov;
            io.for_each_mut(|seg| {
                aligned &=
                    seg.as_ptr() as usize % DIRECT_ALIGN == 0 && seg.len() % DIRECT_ALIGN == 0;
                iov.push(libc::iovec {
                    iov_base: seg.as_mut_ptr().cast(),
                    iov_len: seg.len(),
                });
            });
        }
        let file = match (&self.backing.direct, aligned) {
            (Some(d), true) => d,
            _ => &self.backing.buffered,
        };
        let fd = types::Fd(file.as_raw_fd());
        let iov = &s.iov;
        let entry = match io_type {
            IoType::Read if iov.len() == 1 => {
                opcode::Read::new(fd, iov[0].iov_base.cast(), len as u32)
                    .offset(off)
                    .build()
            }
            IoType::Write if iov.len() == 1 => {
                opcode::Write::new(fd, iov[0].iov_base.cast_const().cast(), len as u32)
                    .offset(off)
                    .build()
            }
            IoType::Read => opcode::Readv::new(fd, iov.as_ptr(), iov.len() as u32)
                .offset(off)
                .build(),
            IoType::Write => opcode::Writev::new(fd, iov.as_ptr(), iov.len() as u32)
                .offset(off)
                .build(),
            IoType::Flush => opcode::Fsync::new(fd)
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
            IoType::Unmap | IoType::WriteZeroes => opcode::Fallocate::new(fd, len as u64)
                .offset(off)
                .mode(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE)
                .build(),
            IoType::Reset | IoType::Compare | IoType::CompareAndWrite => {
                self.done.complete(id, IoStatus::Failed);
                return;
            }
        }
        .user_data(id.index() as u64);
        s.id = id;
        s.expect = if io_type.has_data() { len as u32 } else { 0 };
        s.busy = true;
        // SAFETY: the entry points at buffers owned by the pooled request
        // `id` (and at `s.iov`, owned by this channel); neither is freed or
        // reused until `reap` reports `id` complete, and `Drop` waits for
        // every entry still in the kernel.
        #[allow(unsafe_code)] // io_uring's push: the kernel reads the buffers later
        let pushed = unsafe { self.ring.submission().push(&entry) };
        if pushed.is_err() {
            self.slots[id.index() as usize].busy = false;
            self.done.complete(id, IoStatus::NoMem);
            return;
        }
        self.queued += 1;
    }

    fn poll(&mut self) -> usize {
        self.submit_queued();
        if self.in_kernel > 0 {
            self.reap()
        } else {
            0
        }
    }

    /// Reaps the completion ring again (memory only, no system call), so
    /// what the kernel finished while the last completions ran goes to the
    /// kernel with their resubmissions in one `io_uring_enter`.
    fn reap_more(&mut self) -> usize {
        if self.in_kernel > 0 {
            self.reap()
        } else {
            0
        }
    }

    /// Hands the entries queued by the completions just delivered to the
    /// kernel now (one `io_uring_enter`) rather than at the next poll.
    fn flush(&mut self) {
        self.submit_queued();
    }

    fn outstanding(&self) -> usize {
        (self.in_kernel + self.queued) as usize
    }
}

impl UringChannel {
    /// Submits the queued entries; on failure they stay queued for the next try.
    fn submit_queued(&mut self) {
        if self.queued > 0 {
            match self.ring.submit() {
                Ok(_) => {
                    self.in_kernel += self.queued;
                    self.queued = 0;
                }
                Err(e) => log::warn!("file bdev: io_uring_enter: {e}; retrying"),
            }
        }
    }
}

impl Drop for UringChannel {
    fn drop(&mut self) {
        while self.in_kernel + self.queued > 0 {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {
                    self.in_kernel += self.queued;
                    self.queued = 0;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => {
                    log::error!("file bdev: waiting for in-flight I/O at channel close: {e}");
                    // Leak the ring's memory rather than free buffers the kernel may still use.
                    std::mem::forget(std::mem::take(&mut self.slots));
                    return;
                }
            }
            self.reap();
        }
    }
}
