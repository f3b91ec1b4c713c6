//! Asymmetric Namespace Access (ANA): the state each listener of a
//! subsystem reports for each ANA group (`nvmf_subsystem_listener_set_ana_state`),
//! the ANA log page (Get Log Page 0Ch) and the path status an I/O gets
//! when its namespace is not accessible through the host's listener.

use super::ids::ListenAddr;
use super::status::{sct, Completion};
use std::net::SocketAddr;

/// An ANA state (NVMe Base Specification, Asymmetric Namespace Access).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnaState {
    /// ANA Optimized.
    Optimized = 1,
    /// ANA Non-Optimized.
    NonOptimized = 2,
    /// ANA Inaccessible.
    Inaccessible = 3,
    /// ANA Persistent Loss.
    PersistentLoss = 4,
    /// ANA Change.
    Change = 15,
}

/// Path related status codes (SCT 3h).
mod path_sc {
    pub const PERSISTENT_LOSS: u8 = 0x01;
    pub const INACCESSIBLE: u8 = 0x02;
    pub const TRANSITION: u8 = 0x03;
}

impl AnaState {
    /// The name SPDK's methods use.
    pub fn name(self) -> &'static str {
        match self {
            AnaState::Optimized => "optimized",
            AnaState::NonOptimized => "non_optimized",
            AnaState::Inaccessible => "inaccessible",
            AnaState::PersistentLoss => "persistent_loss",
            AnaState::Change => "change",
        }
    }

    /// The states `nvmf_subsystem_listener_set_ana_state` takes (any case).
    pub fn parse(s: &str) -> Option<AnaState> {
        [
            AnaState::Optimized,
            AnaState::NonOptimized,
            AnaState::Inaccessible,
        ]
        .into_iter()
        .find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// The status an I/O gets in this state (`None`: it is served).
    pub fn io_status(self) -> Option<Completion> {
        let sc = match self {
            AnaState::Optimized | AnaState::NonOptimized => return None,
            AnaState::Inaccessible => path_sc::INACCESSIBLE,
            AnaState::PersistentLoss => path_sc::PERSISTENT_LOSS,
            AnaState::Change => path_sc::TRANSITION,
        };
        Some(Completion::error(sct::PATH, sc))
    }
}

/// The ANA states a subsystem's listeners report: optimized unless set.
#[derive(Debug, Default, Clone)]
pub struct AnaStates {
    /// (listener, ANA group (0: every group), state), later entries win.
    entries: Vec<(ListenAddr, u32, AnaState)>,
}

impl AnaStates {
    /// The state of `group` at listener `l`.
    pub fn get(&self, l: &ListenAddr, group: u32) -> AnaState {
        let find = |g| {
            self.entries
                .iter()
                .rev()
                .find(|(x, xg, _)| x == l && *xg == g)
                .map(|e| e.2)
        };
        find(group)
            .or_else(|| find(0))
            .unwrap_or(AnaState::Optimized)
    }

    /// The state of `group` for a host that reached the target at `local`.
    pub fn at(&self, listeners: &[ListenAddr], local: &SocketAddr, group: u32) -> AnaState {
        listeners
            .iter()
            .find(|l| l.matches(local))
            .map_or(AnaState::Optimized, |l| self.get(l, group))
    }

    /// Sets the state of `group` (every group when `None`) at listener `l`.
    pub fn set(&mut self, l: &ListenAddr, group: Option<u32>, state: AnaState) {
        match group {
            None | Some(0) => {
                self.entries.retain(|(x, _, _)| x != l);
                self.entries.push((l.clone(), 0, state));
            }
            Some(g) => {
                self.entries.retain(|(x, xg, _)| !(x == l && *xg == g));
                self.entries.push((l.clone(), g, state));
            }
        }
    }

    /// What was set for listener `l`, oldest first: (ANA group, 0 for
    /// every group, state). Applied in this order they give the same states.
    pub fn of(&self, l: &ListenAddr) -> impl Iterator<Item = (u32, AnaState)> + '_ {
        let l = l.clone();
        self.entries
            .iter()
            .filter(move |(x, _, _)| *x == l)
            .map(|(_, g, s)| (*g, *s))
    }

    /// Forgets what was set for listener `l` (it was removed).
    pub fn forget(&mut self, l: &ListenAddr) {
        self.entries.retain(|(x, _, _)| x != l);
    }
}

/// One ANA group of the log page: its ID, state and namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnaGroup {
    /// ANA Group ID.
    pub id: u32,
    /// Its state for the controller reading the page.
    pub state: AnaState,
    /// Namespaces in it.
    pub nsids: Vec<u32>,
}

/// The ANA log page (0Ch): a header (change count, number of groups),
/// then each group's descriptor with its namespace IDs unless `rgo`
/// (Return Groups Only).
pub fn log_page(chgcnt: u64, groups: &[AnaGroup], rgo: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + groups.len() * 36);
    out.extend_from_slice(&chgcnt.to_le_bytes());
    out.extend_from_slice(&(groups.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 6]);
    for g in groups {
        let nsids: &[u32] = if rgo { &[] } else { &g.nsids };
        out.extend_from_slice(&g.id.to_le_bytes());
        out.extend_from_slice(&(nsids.len() as u32).to_le_bytes());
        out.extend_from_slice(&chgcnt.to_le_bytes());
        out.push(g.state as u8);
        out.extend_from_slice(&[0; 15]);
        for n in nsids {
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(port: &str) -> ListenAddr {
        ListenAddr {
            trtype: "TCP".into(),
            adrfam: "IPv4".into(),
            traddr: "127.0.0.1".into(),
            trsvcid: port.into(),
        }
    }

    #[test]
    fn a_listener_is_optimized_until_set_and_a_group_setting_beats_the_all_groups_one() {
        let mut a = AnaStates::default();
        let (p1, p2) = (l("4420"), l("4421"));
        assert_eq!(a.get(&p1, 1), AnaState::Optimized);
        a.set(&p1, None, AnaState::Inaccessible);
        a.set(&p1, Some(2), AnaState::NonOptimized);
        assert_eq!(a.get(&p1, 1), AnaState::Inaccessible);
        assert_eq!(a.get(&p1, 2), AnaState::NonOptimized);
        assert_eq!(a.get(&p2, 1), AnaState::Optimized, "another listener");
        let local: SocketAddr = "127.0.0.1:4420".parse().unwrap();
        assert_eq!(
            a.at(&[p2.clone(), p1.clone()], &local, 3),
            AnaState::Inaccessible
        );
        a.set(&p1, None, AnaState::Optimized);
        assert_eq!(a.get(&p1, 2), AnaState::Optimized, "all groups again");
        assert_eq!(
            AnaState::parse("Non_Optimized"),
            Some(AnaState::NonOptimized)
        );
        assert_eq!(AnaState::parse("change"), None, "not settable");
        assert_eq!(
            AnaState::Inaccessible.io_status(),
            Some(Completion::error(3, 0x02))
        );
        assert_eq!(AnaState::NonOptimized.io_status(), None);
    }

    #[test]
    fn the_log_page_lists_each_group_with_its_state_and_namespaces() {
        let g = [
            AnaGroup {
                id: 1,
                state: AnaState::Optimized,
                nsids: vec![1],
            },
            AnaGroup {
                id: 2,
                state: AnaState::Inaccessible,
                nsids: vec![2, 3],
            },
        ];
        let p = log_page(7, &g, false);
        assert_eq!(p.len(), 16 + 32 + 4 + 32 + 8);
        assert_eq!(u64::from_le_bytes(p[0..8].try_into().unwrap()), 7);
        assert_eq!(u16::from_le_bytes([p[8], p[9]]), 2, "NGRPS");
        let d2 = &p[16 + 36..];
        assert_eq!(u32::from_le_bytes(d2[0..4].try_into().unwrap()), 2);
        assert_eq!(
            u32::from_le_bytes(d2[4..8].try_into().unwrap()),
            2,
            "NNSIDS"
        );
        assert_eq!(d2[16], 3, "ANA state inaccessible");
        assert_eq!(u32::from_le_bytes(d2[36..40].try_into().unwrap()), 3);
        assert_eq!(log_page(7, &g, true).len(), 16 + 64, "groups only");
    }
}
