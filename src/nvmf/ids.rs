//! The names things go by on the wire and in SPDK's configuration: NQNs
//! (checked), UUIDs and NGUIDs written as hex, printable identity
//! strings, and listen addresses (`trtype`, `adrfam`, `traddr`,
//! `trsvcid`) matched against the address a connection reached.

use super::NvmfError;
use crate::bdev::Uuid;

/// Longest NQN the specification allows, in bytes.
pub const NQN_MAX_LEN: usize = 223;

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

pub(crate) fn check_ascii(name: &'static str, v: &str, max: usize) -> Result<(), NvmfError> {
    if v.len() > max || v.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        return Err(NvmfError::InvalidParam {
            name,
            value: v.into(),
            why: format!("must be at most {max} printable ASCII characters"),
        });
    }
    Ok(())
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

impl ListenAddr {
    /// True when a connection to `local` came through this listen address.
    pub fn matches(&self, local: &std::net::SocketAddr) -> bool {
        let Ok(ip) = self.traddr.parse::<std::net::IpAddr>() else {
            return false;
        };
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, Into::into),
            v4 => v4,
        };
        let lip = match local.ip() {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(local.ip(), Into::into),
            v4 => v4,
        };
        self.trsvcid.parse::<u16>().ok() == Some(local.port()) && (ip == lip || ip.is_unspecified())
    }
}
