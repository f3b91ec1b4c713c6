//! A subsystem (SPDK's `spdk_nvmf_subsystem`): its NQN, identity, host
//! allow list, namespaces (each a bdev) and listeners, and the controllers
//! hosts have made on it. Configuration changes and Connect take its lock;
//! the I/O path never does.

use super::ctrlr::Ctrlr;
use super::NvmfError;
use crate::bdev::Uuid;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The well-known NQN of the discovery subsystem.
pub const DISCOVERY_NQN: &str = crate::nvme::tcp::fabrics::DISCOVERY_NQN;
/// Longest NQN the specification allows, in bytes.
pub const NQN_MAX_LEN: usize = 223;
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
}

/// A listen address as SPDK writes it (`trtype`, `adrfam`, `traddr`, `trsvcid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// `TCP`.
    pub trtype: String,
    /// `IPv4` or `IPv6`.
    pub adrfam: String,
    /// The address.
    pub traddr: String,
    /// The port.
    pub trsvcid: String,
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
}

impl Default for SubsystemOpts {
    fn default() -> Self {
        SubsystemOpts {
            serial_number: "00000000000000000000".into(),
            model_number: "SPDK bdev Controller".into(),
            allow_any_host: false,
            max_namespaces: 0,
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
}

/// Checks that `nqn` is an NQN: `nqn.` and a date and a name, or the
/// discovery NQN, at most 223 bytes.
pub fn check_nqn(nqn: &str) -> Result<(), NvmfError> {
    let bad = |why| {
        Err(NvmfError::InvalidNqn {
            nqn: nqn.into(),
            why,
        })
    };
    if nqn.len() > NQN_MAX_LEN {
        return bad("longer than 223 bytes");
    }
    if !nqn.starts_with("nqn.") || nqn.len() < 12 {
        return bad("must start with 'nqn.yyyy-mm.' followed by a reverse domain name");
    }
    if nqn.bytes().any(|b| b == 0 || !b.is_ascii()) {
        return bad("must be printable UTF-8 without NUL");
    }
    Ok(())
}

fn check_ascii(name: &'static str, v: &str, max: usize) -> Result<(), NvmfError> {
    if v.len() > max || v.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(NvmfError::InvalidParam {
            name,
            value: v.into(),
            why: format!("must be at most {max} printable ASCII characters"),
        });
    }
    Ok(())
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
                controllers: Vec::new(),
                next_cntlid: 1,
            }),
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
            },
        );
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
}

/// Parses a UUID or NGUID written as hex (dashes allowed).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    if let Some(u) = Uuid::parse(s) {
        return Some(u.0);
    }
    let hex: Vec<u8> = s.bytes().filter(|&c| c != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        let p = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}
