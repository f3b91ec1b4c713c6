//! Counters the controller keeps while it runs, for tests and measurements.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters (shared with the worker).
pub struct Counters {
    admin: [AtomicU64; 256],
    io: [AtomicU64; 256],
    pub(crate) doorbell_writes: AtomicU64,
    pub(crate) shadow_updates: AtomicU64,
    pub(crate) mmio_suppressed: AtomicU64,
    pub(crate) completions: AtomicU64,
    pub(crate) dropped_completions: AtomicU64,
    pub(crate) dma_faults: AtomicU64,
    pub(crate) cq_full_stalls: AtomicU64,
    pub(crate) bytes_read: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) host_read_commands: AtomicU64,
    pub(crate) host_write_commands: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            admin: std::array::from_fn(|_| AtomicU64::new(0)),
            io: std::array::from_fn(|_| AtomicU64::new(0)),
            doorbell_writes: AtomicU64::new(0),
            shadow_updates: AtomicU64::new(0),
            mmio_suppressed: AtomicU64::new(0),
            completions: AtomicU64::new(0),
            dropped_completions: AtomicU64::new(0),
            dma_faults: AtomicU64::new(0),
            cq_full_stalls: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            host_read_commands: AtomicU64::new(0),
            host_write_commands: AtomicU64::new(0),
        }
    }
}

pub(crate) fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    /// Counts one fetched command.
    pub fn command(&self, admin: bool, opcode: u8) {
        let table = if admin { &self.admin } else { &self.io };
        bump(&table[opcode as usize], 1);
    }

    /// A consistent-enough copy of every counter.
    pub fn snapshot(&self) -> EmuStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EmuStats {
            admin_commands: std::array::from_fn(|i| get(&self.admin[i])),
            io_commands: std::array::from_fn(|i| get(&self.io[i])),
            doorbell_writes: get(&self.doorbell_writes),
            shadow_doorbell_updates: get(&self.shadow_updates),
            mmio_suppressed: get(&self.mmio_suppressed),
            completions: get(&self.completions),
            dropped_completions: get(&self.dropped_completions),
            dma_faults: get(&self.dma_faults),
            cq_full_stalls: get(&self.cq_full_stalls),
            bytes_read: get(&self.bytes_read),
            bytes_written: get(&self.bytes_written),
        }
    }
}

/// A snapshot of the controller's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmuStats {
    /// Admin commands fetched, by opcode.
    pub admin_commands: [u64; 256],
    /// NVM (I/O queue) commands fetched, by opcode.
    pub io_commands: [u64; 256],
    /// Doorbell register writes observed (writes between two polls of the
    /// same doorbell count once, as posted MMIO writes coalesce).
    pub doorbell_writes: u64,
    /// Shadow doorbell changes observed (Doorbell Buffer Config in use). The
    /// controller reads a shadow slot only while it works on the queue, so
    /// a change it never looked at is not counted.
    pub shadow_doorbell_updates: u64,
    /// Shadow doorbell changes picked up without an MMIO doorbell write
    /// (re-reads after a fetched command, or before posting a completion):
    /// the MMIO exits EventIdx saved.
    pub mmio_suppressed: u64,
    /// Completion queue entries posted.
    pub completions: u64,
    /// Completions withheld by fault injection.
    pub dropped_completions: u64,
    /// Accesses to IOVAs outside registered DMA memory.
    pub dma_faults: u64,
    /// Times the controller found an I/O completion queue full while work
    /// waited for room in it (a command to fetch or a completion to post),
    /// counted each time it looked: the host had not reported the head in
    /// time, and the work waits for its next head doorbell.
    pub cq_full_stalls: u64,
    /// Bytes read from namespaces by Read and Compare.
    pub bytes_read: u64,
    /// Bytes written to namespaces by Write.
    pub bytes_written: u64,
}

impl EmuStats {
    /// Admin commands fetched with `opcode`.
    pub fn admin(&self, opcode: u8) -> u64 {
        self.admin_commands[opcode as usize]
    }
    /// I/O commands fetched with `opcode`.
    pub fn io(&self, opcode: u8) -> u64 {
        self.io_commands[opcode as usize]
    }
}
