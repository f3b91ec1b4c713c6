//! The target (SPDK's `spdk_nvmf_tgt`): its subsystems, the discovery
//! subsystem, and the transport options every queue is served with.

use super::buf_pool::BufPool;
use super::subsystem::{Subsystem, SubsystemOpts, SubsystemType, DISCOVERY_NQN};
use super::NvmfError;
use std::sync::{Arc, Mutex};

/// Options of the TCP transport (`nvmf_create_transport`), SPDK's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOpts {
    /// Most entries of an I/O queue (`max_queue_depth`).
    pub max_queue_depth: u16,
    /// Most entries of the admin queue (`max_aq_depth`).
    pub max_aq_depth: u16,
    /// Most queue pairs per controller, the admin queue included
    /// (`max_io_qpairs_per_ctrlr` + 1 in SPDK's accounting).
    pub max_qpairs_per_ctrlr: u16,
    /// Bytes of data a command capsule may carry (`in_capsule_data_size`).
    pub in_capsule_data_size: u32,
    /// Largest data transfer of one command (`max_io_size`).
    pub max_io_size: u32,
    /// Unit of buffer allocation (`io_unit_size`).
    pub io_unit_size: u32,
    /// Send reads' data with the SUCCESS flag and no response capsule.
    pub c2h_success: bool,
    /// `SO_PRIORITY` of accepted sockets.
    pub sock_priority: u32,
    /// Data buffers of `io_unit_size` bytes shared by the transport's poll
    /// groups (`num_shared_buffers`; see [`BufPool`](super::buf_pool::BufPool)).
    pub num_shared_buffers: u32,
    /// Of those, how many each poll group keeps in its cache
    /// (`buf_cache_size`; [`BUF_CACHE_AUTO`](super::buf_pool::BUF_CACHE_AUTO):
    /// three quarters of the pool shared among the groups).
    pub buf_cache_size: u32,
}

impl Default for TransportOpts {
    fn default() -> Self {
        TransportOpts {
            max_queue_depth: 128,
            max_aq_depth: 128,
            max_qpairs_per_ctrlr: 128,
            in_capsule_data_size: 4096,
            max_io_size: 131072,
            io_unit_size: 131072,
            c2h_success: true,
            sock_priority: 0,
            num_shared_buffers: 511,
            buf_cache_size: super::buf_pool::BUF_CACHE_AUTO,
        }
    }
}

impl TransportOpts {
    /// Checks the options against what the transport can do.
    pub fn check(&self) -> Result<(), NvmfError> {
        let bad = |name, value: u64, why: &str| {
            Err(NvmfError::InvalidParam {
                name,
                value: value.to_string(),
                why: why.into(),
            })
        };
        if !(2..=4096).contains(&self.max_queue_depth) {
            return bad(
                "max_queue_depth",
                self.max_queue_depth as u64,
                "must be 2..=4096",
            );
        }
        if !(2..=4096).contains(&self.max_aq_depth) {
            return bad("max_aq_depth", self.max_aq_depth as u64, "must be 2..=4096");
        }
        if self.max_qpairs_per_ctrlr < 2 {
            return bad(
                "max_io_qpairs_per_ctrlr",
                self.max_qpairs_per_ctrlr as u64 - 1,
                "must be at least 1",
            );
        }
        if self.in_capsule_data_size % 16 != 0 || self.in_capsule_data_size > 131072 {
            return bad(
                "in_capsule_data_size",
                self.in_capsule_data_size as u64,
                "must be a multiple of 16, at most 131072",
            );
        }
        if self.io_unit_size == 0 {
            return bad("io_unit_size", 0, "must not be 0");
        }
        if self.max_io_size < 4096 || !self.max_io_size.is_power_of_two() {
            return bad(
                "max_io_size",
                self.max_io_size as u64,
                "must be a power of two of at least 4096",
            );
        }
        Ok(())
    }

    /// MDTS of Identify Controller: the largest transfer in 4 KiB pages, as a power of two.
    pub fn mdts(&self) -> u8 {
        (self.max_io_size / 4096).trailing_zeros() as u8
    }
}

/// The target: its subsystems and the transport options.
#[derive(Debug)]
pub struct Target {
    opts: Mutex<TransportOpts>,
    discovery: Arc<Subsystem>,
    subsystems: Mutex<Vec<Arc<Subsystem>>>,
    /// Generation counter of the discovery log (bumped by every change).
    genctr: std::sync::atomic::AtomicU64,
    /// The shared data buffers, made for the options when the first poll
    /// group asks (`None` again after the options change).
    bufs: Mutex<Option<Arc<BufPool>>>,
}

impl Target {
    /// A target with the discovery subsystem and no other.
    pub fn new(opts: TransportOpts) -> Result<Arc<Target>, NvmfError> {
        opts.check()?;
        let discovery = Subsystem::new(
            DISCOVERY_NQN,
            SubsystemType::Discovery,
            SubsystemOpts::default(),
        )?;
        Ok(Arc::new(Target {
            opts: Mutex::new(opts),
            discovery,
            subsystems: Mutex::new(Vec::new()),
            genctr: 0.into(),
            bufs: Mutex::new(None),
        }))
    }

    /// The transport options (connections take a copy when they start).
    pub fn opts(&self) -> TransportOpts {
        self.opts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the transport options (`nvmf_create_transport`); queues
    /// already connected keep theirs.
    pub fn set_opts(&self, opts: TransportOpts) -> Result<(), NvmfError> {
        opts.check()?;
        BufPool::new(&opts, crate::thread::thread_count())?;
        *self.opts.lock().unwrap_or_else(|e| e.into_inner()) = opts;
        *self.bufs.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// The transport's shared data buffers, made for the current options
    /// (sized for as many poll groups as there are threads) the first
    /// time a poll group asks; later groups share the same pool.
    pub fn buf_pool(&self) -> Result<Arc<BufPool>, NvmfError> {
        let mut b = self.bufs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = b.as_ref() {
            return Ok(p.clone());
        }
        let p = BufPool::new(&self.opts(), crate::thread::thread_count())?;
        *b = Some(p.clone());
        Ok(p)
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Subsystem>>> {
        self.subsystems.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates an NVM subsystem (`nvmf_create_subsystem`).
    pub fn create_subsystem(
        &self,
        nqn: &str,
        opts: SubsystemOpts,
    ) -> Result<Arc<Subsystem>, NvmfError> {
        if nqn == DISCOVERY_NQN {
            return Err(NvmfError::SubsystemExists(nqn.into()));
        }
        let s = Subsystem::new(nqn, SubsystemType::Nvme, opts)?;
        let mut l = self.list();
        if l.iter().any(|x| x.nqn() == nqn) {
            return Err(NvmfError::SubsystemExists(nqn.into()));
        }
        l.push(s.clone());
        self.bump_genctr();
        Ok(s)
    }

    /// Deletes a subsystem (`nvmf_delete_subsystem`).
    pub fn delete_subsystem(&self, nqn: &str) -> Result<(), NvmfError> {
        let mut l = self.list();
        let before = l.len();
        l.retain(|s| s.nqn() != nqn);
        if l.len() == before {
            return Err(NvmfError::NoSubsystem(nqn.into()));
        }
        self.bump_genctr();
        Ok(())
    }

    /// The subsystem named `nqn` (the discovery subsystem included).
    pub fn find(&self, nqn: &str) -> Option<Arc<Subsystem>> {
        if nqn == DISCOVERY_NQN {
            return Some(self.discovery.clone());
        }
        self.list().iter().find(|s| s.nqn() == nqn).cloned()
    }

    /// The NVM subsystems, in creation order.
    pub fn subsystems(&self) -> Vec<Arc<Subsystem>> {
        self.list().clone()
    }

    /// The discovery log's generation counter.
    pub fn genctr(&self) -> u64 {
        self.genctr.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the discovery log changed.
    pub fn bump_genctr(&self) {
        self.genctr
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
