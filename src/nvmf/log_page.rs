//! Log pages the target returns (Get Log Page): Error Information,
//! SMART / Health Information, the Changed Namespace List, and the
//! discovery log page (NVMe over Fabrics, log identifier 70h).

use super::ids::ListenAddr;
use super::subsystem::SubsystemType;
use super::target::Target;

/// Log page identifiers.
pub mod lid {
    /// Error Information.
    pub const ERROR: u8 = 0x01;
    /// SMART / Health Information.
    pub const SMART_HEALTH: u8 = 0x02;
    /// Firmware Slot Information.
    pub const FIRMWARE_SLOT: u8 = 0x03;
    /// Changed Namespace List.
    pub const CHANGED_NS_LIST: u8 = 0x04;
    /// Asymmetric Namespace Access.
    pub const ANA: u8 = 0x0c;
    /// Discovery (fabrics discovery controllers only).
    pub const DISCOVERY: u8 = 0x70;
}

/// Length of the discovery log header and of each of its entries.
pub const DISCOVERY_ENTRY_LEN: usize = 1024;
/// TRTYPE of TCP.
pub const TRTYPE_TCP: u8 = 3;
/// SUBTYPE of an NVM subsystem in a discovery entry.
pub const SUBTYPE_NVME: u8 = 2;

/// The Changed Namespace List for `changed` (1024 IDs; more than that
/// is reported as FFFFFFFFh in the first entry).
pub fn changed_ns_list(changed: &[u32]) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    if changed.len() > 1024 {
        out[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    } else {
        for (i, id) in changed.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&id.to_le_bytes());
        }
    }
    out
}

fn put_str(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len() - 1);
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// One discovery log entry for `subnqn` at listener `addr` (port `portid`).
pub fn discovery_entry(subnqn: &str, addr: &ListenAddr, portid: u16, asqsz: u16) -> [u8; 1024] {
    let mut e = [0u8; DISCOVERY_ENTRY_LEN];
    e[0] = TRTYPE_TCP;
    e[1] = if addr.adrfam.eq_ignore_ascii_case("ipv6") {
        2
    } else {
        1
    };
    e[2] = SUBTYPE_NVME;
    e[3] = 2; // TREQ: secure channel not required
    e[4..6].copy_from_slice(&portid.to_le_bytes());
    e[6..8].copy_from_slice(&0xffffu16.to_le_bytes()); // dynamic controllers
    e[8..10].copy_from_slice(&asqsz.to_le_bytes());
    put_str(&mut e[32..64], &addr.trsvcid);
    put_str(&mut e[256..512], subnqn);
    put_str(&mut e[512..768], &addr.traddr);
    // TSAS for TCP: SECTYPE 0, no security.
    e
}

/// The discovery log page as `hostnqn` sees it: every listener of every
/// NVM subsystem that allows the host.
pub fn discovery_log(target: &Target, hostnqn: &str) -> Vec<u8> {
    let mut entries = Vec::new();
    for s in target.subsystems() {
        if s.subtype() != SubsystemType::Nvme || !s.host_allowed(hostnqn) {
            continue;
        }
        let listeners = s.lock().listeners.clone();
        for (i, l) in listeners.iter().enumerate() {
            entries.push(discovery_entry(
                s.nqn(),
                l,
                i as u16,
                target.opts().max_aq_depth,
            ));
        }
    }
    let mut out = vec![0u8; DISCOVERY_ENTRY_LEN * (1 + entries.len())];
    out[0..8].copy_from_slice(&target.genctr().to_le_bytes());
    out[8..16].copy_from_slice(&(entries.len() as u64).to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        out[DISCOVERY_ENTRY_LEN * (i + 1)..][..DISCOVERY_ENTRY_LEN].copy_from_slice(e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvmf::subsystem::SubsystemOpts;
    use crate::nvmf::target::TransportOpts;

    #[test]
    fn the_discovery_log_lists_allowed_subsystems_at_their_listeners() {
        let t = Target::new(TransportOpts::default()).unwrap();
        let open = t
            .create_subsystem(
                "nqn.2016-06.io.spdk:open",
                SubsystemOpts {
                    allow_any_host: true,
                    ..SubsystemOpts::default()
                },
            )
            .unwrap();
        let closed = t
            .create_subsystem("nqn.2016-06.io.spdk:closed", SubsystemOpts::default())
            .unwrap();
        let l = ListenAddr {
            trtype: "TCP".into(),
            adrfam: "IPv4".into(),
            traddr: "127.0.0.1".into(),
            trsvcid: "4420".into(),
        };
        open.add_listener(l.clone());
        closed.add_listener(l);
        let log = discovery_log(&t, "nqn.2014-08.org:host");
        assert_eq!(
            u64::from_le_bytes(log[8..16].try_into().unwrap()),
            1,
            "NUMREC"
        );
        let e = &log[1024..2048];
        assert_eq!((e[0], e[1], e[2]), (TRTYPE_TCP, 1, SUBTYPE_NVME));
        assert_eq!(&e[32..36], b"4420");
        assert_eq!(&e[256..280], b"nqn.2016-06.io.spdk:open");
        assert_eq!(&e[512..521], b"127.0.0.1");
        assert_eq!(u16::from_le_bytes([e[6], e[7]]), 0xffff);
    }

    #[test]
    fn more_than_1024_changed_namespaces_is_reported_as_all_ones() {
        let few = changed_ns_list(&[3, 7]);
        assert_eq!(&few[..12], &[3, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        let many: Vec<u32> = (1..=1025).collect();
        assert_eq!(&changed_ns_list(&many)[..4], &[0xff; 4]);
    }
}
