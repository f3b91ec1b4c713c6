//! A subsystem (SPDK's `spdk_nvmf_subsystem`): its NQN, identity, host
//! allow list, namespaces (each a bdev) and listeners, and the controllers
//! hosts have made on it. Configuration changes and Connect take its lock;
//! the I/O path never does.

use super::ana::{AnaState, AnaStates};
use super::ctrlr::Ctrlr;
use super::ids::check_ascii;
use super::ids::{check_nqn, ListenAddr};
use super::NvmfError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The well-known NQN of the discovery subsystem.
pub const DISCOVERY_NQN: &str = crate::nvme::tcp::fabrics::DISCOVERY_NQN;
/// SPDK's default `max_namespaces` (0 given means this).
pub const DEFAULT_MAX_NAMESPACES: u32 = 32;

/// What a subsystem serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubsystemType {
    /// An NVM subsystem with namespaces.
    Nvme,
    /// The discovery subsystem (its log page lists the others).
    Discovery,
}

/// One namespace: a bdev under an NSID with its identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Namespace ID (1-based).
    pub nsid: u32,
    /// The bdev serving it.
    pub bdev_name: String,
    /// Namespace UUID (the bdev's unless given).
    pub uuid: [u8; 16],
    /// Namespace Globally Unique Identifier (zero when not given).
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier (zero when not given).
    pub eui64: [u8; 8],
    /// ANA group (SPDK's default: the NSID).
    pub anagrpid: u32,
}

impl SubsystemState {
    /// The ANA state of `group` at listener `l`.
    pub fn ana_state(&self, l: &ListenAddr, group: u32) -> AnaState {
        self.ana.get(l, group)
    }
}

/// Options of a new subsystem (`nvmf_create_subsystem`).
#[derive(Debug, Clone)]
pub struct SubsystemOpts {
    /// Serial number (20 ASCII bytes at most).
    pub serial_number: String,
    /// Model number (40 ASCII bytes at most).
    pub model_number: String,
    /// Any host may connect.
    pub allow_any_host: bool,
    /// Most namespaces (0: SPDK's default of 32).
    pub max_namespaces: u32,
    /// Report Asymmetric Namespace Access (per-listener ANA states).
    pub ana_reporting: bool,
}

impl Default for SubsystemOpts {
    fn default() -> Self {
        SubsystemOpts {
            serial_number: "00000000000000000000".into(),
            model_number: "SPDK bdev Controller".into(),
            allow_any_host: false,
            max_namespaces: 0,
            ana_reporting: false,
        }
    }
}

/// The mutable part of a subsystem.
#[derive(Debug)]
pub struct SubsystemState {
    /// Serial number.
    pub serial_number: String,
    /// Model number.
    pub model_number: String,
    /// Any host may connect.
    pub allow_any_host: bool,
    /// Host NQNs allowed when `allow_any_host` is off.
    pub hosts: Vec<String>,
    /// Most namespaces.
    pub max_namespaces: u32,
    /// Namespaces by NSID.
    pub namespaces: BTreeMap<u32, NamespaceConfig>,
    /// Listen addresses.
    pub listeners: Vec<ListenAddr>,
    /// ANA is reported (Identify, log page 0Ch, path statuses).
    pub ana_reporting: bool,
    /// The ANA state of each group at each listener.
    pub ana: AnaStates,
    /// Controllers hosts made (by Connect on an admin queue).
    pub controllers: Vec<Arc<Ctrlr>>,
    next_cntlid: u16,
}

/// A subsystem.
#[derive(Debug)]
pub struct Subsystem {
    nqn: String,
    subtype: SubsystemType,
    state: Mutex<SubsystemState>,
    /// Bumped by every ANA state or namespace change: queues re-check
    /// the ANA state of their namespaces when it moved (one atomic load per I/O).
    ana_gen: std::sync::atomic::AtomicU64,
}

impl Subsystem {
    /// A new subsystem; `nqn` must be an NQN.
    pub fn new(
        nqn: &str,
        subtype: SubsystemType,
        opts: SubsystemOpts,
    ) -> Result<Arc<Subsystem>, NvmfError> {
        check_nqn(nqn)?;
        check_ascii("serial_number", &opts.serial_number, 20)?;
        check_ascii("model_number", &opts.model_number, 40)?;
        Ok(Arc::new(Subsystem {
            nqn: nqn.into(),
            subtype,
            state: Mutex::new(SubsystemState {
                serial_number: opts.serial_number,
                model_number: opts.model_number,
                allow_any_host: opts.allow_any_host || subtype == SubsystemType::Discovery,
                hosts: Vec::new(),
                max_namespaces: match opts.max_namespaces {
                    0 => DEFAULT_MAX_NAMESPACES,
                    n => n,
                },
                namespaces: BTreeMap::new(),
                listeners: Vec::new(),
                ana_reporting: opts.ana_reporting,
                ana: AnaStates::default(),
                controllers: Vec::new(),
                next_cntlid: 1,
            }),
            ana_gen: 0.into(),
        }))
    }

    /// The subsystem's NQN.
    pub fn nqn(&self) -> &str {
        &self.nqn
    }

    /// What it serves.
    pub fn subtype(&self) -> SubsystemType {
        self.subtype
    }

    /// Its state, locked (configuration and Connect only).
    pub fn lock(&self) -> MutexGuard<'_, SubsystemState> {
        // A panic while holding the lock leaves plain data behind: go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn nvme_only(&self) -> Result<(), NvmfError> {
        match self.subtype {
            SubsystemType::Nvme => Ok(()),
            SubsystemType::Discovery => Err(NvmfError::Discovery(self.nqn.clone())),
        }
    }

    /// Adds `bdev_name` as a namespace (`nvmf_subsystem_add_ns`): under
    /// `nsid`, or the lowest free one when `None`; the UUID defaults to the
    /// bdev's. Returns the NSID.
    pub fn add_ns(
        &self,
        bdev_name: &str,
        nsid: Option<u32>,
        uuid: Option<[u8; 16]>,
        nguid: Option<[u8; 16]>,
    ) -> Result<u32, NvmfError> {
        self.nvme_only()?;
        let bdev = crate::bdev::get_by_name(bdev_name)
            .ok_or_else(|| NvmfError::NoBdev(bdev_name.into()))?;
        let mut st = self.lock();
        let bad = |nsid, why: String| NvmfError::BadNsid {
            nqn: self.nqn.clone(),
            nsid,
            why,
        };
        let nsid = match nsid {
            Some(0) | None => (1..=st.max_namespaces)
                .find(|n| !st.namespaces.contains_key(n))
                .ok_or_else(|| {
                    bad(
                        0,
                        format!("not available: all {} are in use", st.max_namespaces),
                    )
                })?,
            Some(n) if n > st.max_namespaces => {
                return Err(bad(
                    n,
                    format!("above max_namespaces {}", st.max_namespaces),
                ))
            }
            Some(n) if st.namespaces.contains_key(&n) => {
                return Err(bad(n, "in use already".into()))
            }
            Some(n) => n,
        };
        st.namespaces.insert(
            nsid,
            NamespaceConfig {
                nsid,
                bdev_name: bdev.name().into(),
                uuid: uuid.unwrap_or(bdev.uuid().0),
                nguid: nguid.unwrap_or([0; 16]),
                eui64: [0; 8],
                anagrpid: nsid,
            },
        );
        self.bump_ana_gen();
        let ctrlrs = st.controllers.clone();
        drop(st);
        for c in ctrlrs {
            c.ns_changed(nsid);
        }
        Ok(nsid)
    }

    /// Removes namespace `nsid` (`nvmf_subsystem_remove_ns`).
    pub fn remove_ns(&self, nsid: u32) -> Result<NamespaceConfig, NvmfError> {
        self.nvme_only()?;
        let mut st = self.lock();
        let ns = st
            .namespaces
            .remove(&nsid)
            .ok_or_else(|| NvmfError::BadNsid {
                nqn: self.nqn.clone(),
                nsid,
                why: "not a namespace of it".into(),
            })?;
        self.bump_ana_gen();
        let ctrlrs = st.controllers.clone();
        drop(st);
        for c in ctrlrs {
            c.ns_changed(nsid);
        }
        Ok(ns)
    }

    /// Allows `hostnqn` to connect (`nvmf_subsystem_add_host`).
    pub fn add_host(&self, hostnqn: &str) -> Result<(), NvmfError> {
        self.nvme_only()?;
        check_nqn(hostnqn)?;
        let mut st = self.lock();
        if !st.hosts.iter().any(|h| h == hostnqn) {
            st.hosts.push(hostnqn.into());
        }
        Ok(())
    }

    /// Takes `hostnqn` off the allow list (`nvmf_subsystem_remove_host`).
    pub fn remove_host(&self, hostnqn: &str) -> Result<(), NvmfError> {
        let mut st = self.lock();
        let before = st.hosts.len();
        st.hosts.retain(|h| h != hostnqn);
        if st.hosts.len() == before {
            return Err(NvmfError::InvalidParam {
                name: "host",
                value: hostnqn.into(),
                why: format!("not on the allow list of '{}'", self.nqn),
            });
        }
        Ok(())
    }

    /// Whether `hostnqn` may connect (`spdk_nvmf_subsystem_host_allowed`).
    pub fn host_allowed(&self, hostnqn: &str) -> bool {
        let st = self.lock();
        st.allow_any_host || st.hosts.iter().any(|h| h == hostnqn)
    }

    /// Adds a listen address to the subsystem (what discovery reports).
    pub fn add_listener(&self, addr: ListenAddr) {
        let mut st = self.lock();
        if !st.listeners.contains(&addr) {
            st.listeners.push(addr);
        }
    }

    /// The ANA generation (see the field).
    pub fn ana_gen(&self) -> u64 {
        self.ana_gen.load(std::sync::atomic::Ordering::Acquire)
    }

    fn bump_ana_gen(&self) {
        self.ana_gen
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Sets the ANA state of `group` (every group when `None`) at the
    /// listener `l` (`nvmf_subsystem_listener_set_ana_state`); the
    /// controllers that came through it get an ANA change event.
    pub fn set_ana_state(
        &self,
        l: &ListenAddr,
        group: Option<u32>,
        state: AnaState,
    ) -> Result<(), NvmfError> {
        self.nvme_only()?;
        let mut st = self.lock();
        if !st.listeners.contains(l) {
            return Err(NvmfError::InvalidParam {
                name: "listen_address",
                value: format!("{}:{}", l.traddr, l.trsvcid),
                why: format!("not a listener of '{}'", self.nqn),
            });
        }
        if let Some(g) = group.filter(|&g| g > st.max_namespaces) {
            return Err(NvmfError::InvalidParam {
                name: "anagrpid",
                value: g.to_string(),
                why: format!("above max_namespaces {}", st.max_namespaces),
            });
        }
        st.ana.set(l, group, state);
        let ctrlrs: Vec<_> = st
            .controllers
            .iter()
            .filter(|c| l.matches(&c.listen_addr()))
            .cloned()
            .collect();
        drop(st);
        self.bump_ana_gen();
        for c in ctrlrs {
            c.ana_changed();
        }
        Ok(())
    }

    /// The status an I/O to namespace `nsid` from a host that reached
    /// the target at `local` gets from ANA (`None`: served).
    pub fn ana_io_status(
        &self,
        nsid: u32,
        local: &std::net::SocketAddr,
    ) -> Option<crate::nvmf::Completion> {
        let st = self.lock();
        if !st.ana_reporting {
            return None;
        }
        let g = st.namespaces.get(&nsid)?.anagrpid;
        st.ana.at(&st.listeners, local, g).io_status()
    }

    /// Whether a host reaching the target at `local` may connect to this
    /// subsystem (`spdk_nvmf_subsystem_listener_allowed`): one of its
    /// listeners has that address and port (a listener on the
    /// unspecified address takes every address of its port). The
    /// discovery subsystem takes any listener of the target, as SPDK does.
    pub fn listener_allowed(&self, local: &std::net::SocketAddr) -> bool {
        if self.subtype == SubsystemType::Discovery {
            return true;
        }
        self.lock().listeners.iter().any(|l| l.matches(local))
    }

    /// A new controller ID, not in use by another controller.
    pub(crate) fn alloc_cntlid(st: &mut SubsystemState) -> Option<u16> {
        for _ in 0..0xffef_u32 {
            let id = st.next_cntlid;
            st.next_cntlid = if id >= 0xffef { 1 } else { id + 1 };
            if !st.controllers.iter().any(|c| c.cntlid() == id) {
                return Some(id);
            }
        }
        None
    }

    /// The controller `cntlid` of this subsystem.
    pub fn controller(&self, cntlid: u16) -> Option<Arc<Ctrlr>> {
        self.lock()
            .controllers
            .iter()
            .find(|c| c.cntlid() == cntlid)
            .cloned()
    }

    /// Forgets controller `cntlid` (its admin queue went away).
    pub fn remove_controller(&self, cntlid: u16) {
        self.lock().controllers.retain(|c| c.cntlid() != cntlid);
    }

    /// Namespace `nsid`, if any.
    pub fn namespace(&self, nsid: u32) -> Option<NamespaceConfig> {
        self.lock().namespaces.get(&nsid).cloned()
    }

    /// True when namespace `nsid` exists and is served by bdev `bdev_name`
    /// (checked in place: nothing is cloned, so the I/O queues' checks
    /// allocate nothing).
    pub fn has_namespace_on(&self, nsid: u32, bdev_name: &str) -> bool {
        self.lock()
            .namespaces
            .get(&nsid)
            .is_some_and(|n| n.bdev_name == bdev_name)
    }
}
