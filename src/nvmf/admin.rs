//! Admin commands of the controller a host sees: Identify, Get Log Page,
//! Get/Set Features, Asynchronous Event Request, Keep Alive and Abort,
//! answered from the subsystem's configuration and the controller's
//! state. The discovery controller answers only what a discovery
//! controller has.

use super::ana::{self, AnaGroup};
use super::ctrlr::{round_kato, Ctrlr};
use super::identify;
use super::log_page::{self, lid};
use super::status::{sc, sct, Completion};
use super::subsystem::SubsystemType;
use super::target::Target;
use crate::nvme::spec::status::generic;
use crate::nvme::spec::{self, AdminOpcode, Sqe};

/// What an admin command came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// Done: its completion and the bytes of data written to the host's buffer.
    Done(Completion, usize),
    /// An Asynchronous Event Request: held until an event happens.
    Aer,
}

fn done(c: Completion) -> AdminOutcome {
    AdminOutcome::Done(c, 0)
}

/// Copies `src[offset..]` into `out`; the bytes copied.
fn copy_out(src: &[u8], offset: usize, out: &mut [u8]) -> usize {
    let Some(s) = src.get(offset..) else {
        return 0;
    };
    let n = s.len().min(out.len());
    out[..n].copy_from_slice(&s[..n]);
    n
}

/// Executes admin command `sqe` of `ctrlr`; data for the host goes to `out`
/// (as long as the command's data transfer).
pub fn execute(target: &Target, ctrlr: &Ctrlr, sqe: &Sqe, out: &mut [u8]) -> AdminOutcome {
    ctrlr.keep_alive();
    let discovery = ctrlr.subsystem().subtype() == SubsystemType::Discovery;
    match sqe.opc() {
        x if x == AdminOpcode::Identify as u8 => identify(target, ctrlr, sqe, out),
        x if x == AdminOpcode::GetLogPage as u8 => get_log_page(target, ctrlr, sqe, out),
        x if x == AdminOpcode::SetFeatures as u8 => done(set_features(ctrlr, sqe, discovery)),
        x if x == AdminOpcode::GetFeatures as u8 => done(get_features(ctrlr, sqe)),
        x if x == AdminOpcode::AsyncEventRequest as u8 => AdminOutcome::Aer,
        x if x == AdminOpcode::KeepAlive as u8 => done(Completion::ok(0)),
        // Abort: the command is not aborted (dw0 bit 0), as for any
        // command the target cannot find in time.
        x if x == AdminOpcode::Abort as u8 && !discovery => done(Completion::ok(1)),
        _ => done(Completion::invalid_opcode()),
    }
}

fn identify(target: &Target, ctrlr: &Ctrlr, sqe: &Sqe, out: &mut [u8]) -> AdminOutcome {
    let cns = sqe.cdw10 as u8;
    let subsys = ctrlr.subsystem();
    let discovery = subsys.subtype() == SubsystemType::Discovery;
    let mut page = [0u8; 4096];
    match cns {
        spec::command::cns::CONTROLLER => {
            let vwc = subsys.lock().namespaces.values().any(|ns| {
                crate::bdev::get_by_name(&ns.bdev_name).is_some_and(|b| b.props().write_cache)
            });
            let d = identify::controller(ctrlr, &target.opts(), vwc);
            page.copy_from_slice(spec::as_bytes(&d));
        }
        _ if discovery => return done(Completion::invalid_field()),
        spec::command::cns::NAMESPACE => {
            let nn = subsys.lock().max_namespaces;
            if sqe.nsid == 0 || (sqe.nsid > nn && sqe.nsid != u32::MAX) {
                return done(Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT));
            }
            // An inactive namespace reads as zeroes.
            if let Some(ns) = subsys.namespace(sqe.nsid) {
                if let Some(b) = crate::bdev::get_by_name(&ns.bdev_name) {
                    let mut d = identify::namespace(&ns, b.block_size(), b.num_blocks());
                    if subsys.lock().ana_reporting {
                        d.anagrpid = ns.anagrpid;
                    }
                    page.copy_from_slice(spec::as_bytes(&d));
                }
            }
        }
        spec::command::cns::ACTIVE_NS_LIST => {
            if sqe.nsid >= 0xffff_fffe {
                return done(Completion::invalid_field());
            }
            let ids: Vec<u32> = subsys.lock().namespaces.keys().copied().collect();
            identify::active_ns_list(ids.into_iter(), sqe.nsid, &mut page);
        }
        spec::command::cns::NS_ID_DESCRIPTORS => match subsys.namespace(sqe.nsid) {
            Some(ns) => identify::ns_id_descriptors(&ns, &mut page),
            None => return done(Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT)),
        },
        _ => return done(Completion::invalid_field()),
    }
    AdminOutcome::Done(Completion::ok(0), copy_out(&page, 0, out))
}

fn get_log_page(target: &Target, ctrlr: &Ctrlr, sqe: &Sqe, out: &mut [u8]) -> AdminOutcome {
    let id = sqe.cdw10 as u8;
    let numd = ((sqe.cdw11 & 0xffff) << 16 | sqe.cdw10 >> 16) as usize + 1;
    let offset = sqe.cdw12 as u64 | (sqe.cdw13 as u64) << 32;
    let len = numd * 4;
    if offset % 4 != 0 || len > out.len() {
        return done(Completion::invalid_field());
    }
    let discovery = ctrlr.subsystem().subtype() == SubsystemType::Discovery;
    let page = match id {
        lid::DISCOVERY if discovery => log_page::discovery_log(target, ctrlr.hostnqn()),
        _ if discovery => {
            return done(Completion::error(
                sct::COMMAND_SPECIFIC,
                sc::INVALID_LOG_PAGE,
            ))
        }
        lid::ERROR => vec![0u8; 64 * 128],
        lid::SMART_HEALTH => vec![0u8; 512],
        lid::FIRMWARE_SLOT => {
            let mut p = vec![0u8; 512];
            p[0] = 1; // slot 1 active
            p[8..8 + identify::FIRMWARE.len()].copy_from_slice(identify::FIRMWARE.as_bytes());
            p
        }
        lid::ANA if ctrlr.subsystem().lock().ana_reporting => {
            // LSP bit 0 (CDW10 bit 8): Return Groups Only.
            ana_log_page(ctrlr, sqe.cdw10 & (1 << 8) != 0)
        }
        lid::CHANGED_NS_LIST => {
            let changed = std::mem::take(&mut ctrlr.lock().changed_ns);
            log_page::changed_ns_list(&changed)
        }
        _ => {
            return done(Completion::error(
                sct::COMMAND_SPECIFIC,
                sc::INVALID_LOG_PAGE,
            ))
        }
    };
    let Ok(offset) = usize::try_from(offset) else {
        return done(Completion::invalid_field());
    };
    if offset > page.len() {
        return done(Completion::invalid_field());
    }
    let n = copy_out(&page, offset, &mut out[..len]);
    out[n..len].fill(0);
    AdminOutcome::Done(Completion::ok(0), len)
}

/// The ANA log page as `ctrlr` sees it: every ANA group with
/// namespaces, in the state of the listener its admin queue reached.
fn ana_log_page(ctrlr: &Ctrlr, rgo: bool) -> Vec<u8> {
    let subsys = ctrlr.subsystem();
    let st = subsys.lock();
    let mut groups: Vec<AnaGroup> = Vec::new();
    for ns in st.namespaces.values() {
        match groups.iter_mut().find(|g| g.id == ns.anagrpid) {
            Some(g) => g.nsids.push(ns.nsid),
            None => groups.push(AnaGroup {
                id: ns.anagrpid,
                state: st.ana.at(&st.listeners, &ctrlr.listen_addr(), ns.anagrpid),
                nsids: vec![ns.nsid],
            }),
        }
    }
    groups.sort_by_key(|g| g.id);
    drop(st);
    ana::log_page(subsys.ana_gen(), &groups, rgo)
}

/// Feature identifiers the target knows.
mod fid {
    pub const ARBITRATION: u8 = 0x01;
    pub const POWER_MANAGEMENT: u8 = 0x02;
    pub const TEMPERATURE_THRESHOLD: u8 = 0x04;
    pub const ERROR_RECOVERY: u8 = 0x05;
    pub const VOLATILE_WRITE_CACHE: u8 = 0x06;
    pub const NUMBER_OF_QUEUES: u8 = 0x07;
    pub const WRITE_ATOMICITY: u8 = 0x0a;
    pub const ASYNC_EVENT_CONFIG: u8 = 0x0b;
    pub const KEEP_ALIVE_TIMER: u8 = 0x0f;
}

fn set_features(ctrlr: &Ctrlr, sqe: &Sqe, discovery: bool) -> Completion {
    let f = sqe.cdw10 as u8;
    if sqe.cdw10 & (1 << 31) != 0 {
        return Completion::error(sct::COMMAND_SPECIFIC, sc::FEATURE_NOT_SAVEABLE);
    }
    let mut st = ctrlr.lock();
    match f {
        fid::KEEP_ALIVE_TIMER => {
            st.kato_ms = round_kato(sqe.cdw11);
            Completion::ok(0)
        }
        fid::ASYNC_EVENT_CONFIG => {
            st.aec = sqe.cdw11;
            Completion::ok(0)
        }
        _ if discovery => Completion::invalid_field(),
        fid::NUMBER_OF_QUEUES => {
            if sqe.cdw11 & 0xffff == 0xffff || sqe.cdw11 >> 16 == 0xffff {
                return Completion::invalid_field();
            }
            if st.qpairs.iter().any(|(q, _)| *q != 0) {
                // Only before any I/O queue exists (SPDK: command sequence error).
                return Completion::generic(sc::COMMAND_SEQUENCE_ERROR);
            }
            let n = (st.num_io_queues as u32).saturating_sub(1);
            Completion::ok(n | n << 16)
        }
        fid::VOLATILE_WRITE_CACHE => {
            st.vwc = sqe.cdw11 & 1 != 0;
            Completion::ok(0)
        }
        fid::ARBITRATION
        | fid::POWER_MANAGEMENT
        | fid::TEMPERATURE_THRESHOLD
        | fid::ERROR_RECOVERY
        | fid::WRITE_ATOMICITY => Completion::ok(0),
        _ => Completion::invalid_field(),
    }
}

fn get_features(ctrlr: &Ctrlr, sqe: &Sqe) -> Completion {
    let f = sqe.cdw10 as u8;
    let st = ctrlr.lock();
    match f {
        fid::KEEP_ALIVE_TIMER => Completion::ok(st.kato_ms),
        fid::ASYNC_EVENT_CONFIG => Completion::ok(st.aec),
        fid::NUMBER_OF_QUEUES => {
            let n = (st.num_io_queues as u32).saturating_sub(1);
            Completion::ok(n | n << 16)
        }
        fid::VOLATILE_WRITE_CACHE => Completion::ok(st.vwc as u32),
        fid::ARBITRATION | fid::POWER_MANAGEMENT | fid::ERROR_RECOVERY => Completion::ok(0),
        fid::WRITE_ATOMICITY => Completion::ok(0),
        // Kelvin; a threshold of 0x0157 (70 C) as SPDK's default.
        fid::TEMPERATURE_THRESHOLD => Completion::ok(0x0157),
        _ => Completion::invalid_field(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::spec::features::FeatureId;
    use crate::nvme::spec::IdentifyController;
    use crate::nvme::tcp::fabrics::{connect_cmd, connect_data, CNTLID_DYNAMIC};
    use crate::nvmf::fabrics::connect;
    use crate::nvmf::subsystem::SubsystemOpts;
    use crate::nvmf::target::TransportOpts;
    use std::sync::Arc;

    const SUB: &str = "nqn.2016-06.io.spdk:cnode1";

    fn setup(nqn: &str) -> (Arc<Target>, Arc<Ctrlr>) {
        let t = Target::new(TransportOpts::default()).unwrap();
        t.create_subsystem(
            SUB,
            SubsystemOpts {
                allow_any_host: true,
                serial_number: "SPDK00000000000001".into(),
                model_number: "spdk-io Controller".into(),
                max_namespaces: 8,
                ana_reporting: false,
            },
        )
        .unwrap()
        .add_listener(crate::nvmf::tcp::TcpTransport::listen_addr(
            "127.0.0.1:4420".parse().unwrap(),
        ));
        let origin = crate::nvmf::QueueOrigin {
            listen: "127.0.0.1:4420".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
            thread: "test".into(),
        };
        let c = connect(
            &t,
            &connect_cmd(0, 32, 0),
            &connect_data(&[1; 16], CNTLID_DYNAMIC, nqn, "nqn.2014-08.org:h"),
            &origin,
        )
        .unwrap();
        (t, c.ctrlr)
    }

    fn cmd(opc: AdminOpcode, nsid: u32, cdw10: u32, cdw11: u32) -> Sqe {
        let mut s = Sqe::new(opc as u8, nsid);
        s.cdw10 = cdw10;
        s.cdw11 = cdw11;
        s
    }

    #[test]
    fn identify_controller_carries_identity_limits_and_fabrics_sizes() {
        let (t, c) = setup(SUB);
        let mut out = [0u8; 4096];
        let r = execute(&t, &c, &cmd(AdminOpcode::Identify, 0, 1, 0), &mut out);
        assert_eq!(r, AdminOutcome::Done(Completion::ok(0), 4096));
        let d: IdentifyController = spec::from_bytes(&out).unwrap();
        assert_eq!(d.serial(), "SPDK00000000000001");
        assert_eq!(d.model(), "spdk-io Controller");
        assert_eq!(d.subsystem_nqn(), SUB);
        assert_eq!(d.cntlid, c.cntlid());
        assert_eq!((d.sqes, d.cqes, d.nn, d.mdts), (0x66, 0x44, 8, 5));
        assert_eq!(d.cntrltype, 1);
        assert_eq!(
            u32::from_le_bytes(out[1792..1796].try_into().unwrap()),
            (4096 + 64) / 16,
            "IOCCSZ at byte 1792"
        );
    }

    #[test]
    fn the_discovery_controller_answers_with_its_type_and_log_page() {
        let (t, c) = setup(crate::nvmf::subsystem::DISCOVERY_NQN);
        let mut out = [0u8; 4096];
        execute(&t, &c, &cmd(AdminOpcode::Identify, 0, 1, 0), &mut out);
        assert_eq!(out[111], 2, "CNTRLTYPE discovery at byte 111");
        let numd = 1024 / 4 - 1;
        let r = execute(
            &t,
            &c,
            &cmd(AdminOpcode::GetLogPage, 0, 0x70 | numd << 16, 0),
            &mut out[..1024],
        );
        assert_eq!(r, AdminOutcome::Done(Completion::ok(0), 1024));
        let r = execute(&t, &c, &cmd(AdminOpcode::Identify, 1, 0, 0), &mut out);
        assert_eq!(r, AdminOutcome::Done(Completion::invalid_field(), 0));
    }

    #[test]
    fn features_report_queues_and_keep_what_is_set() {
        let (t, c) = setup(SUB);
        let mut out = [0u8; 0];
        let nq = cmd(
            AdminOpcode::SetFeatures,
            0,
            FeatureId::NumberOfQueues as u32,
            3 | 3 << 16,
        );
        assert_eq!(
            execute(&t, &c, &nq, &mut out),
            AdminOutcome::Done(Completion::ok(126 | 126 << 16), 0)
        );
        let ka = cmd(
            AdminOpcode::SetFeatures,
            0,
            FeatureId::KeepAliveTimer as u32,
            1500,
        );
        execute(&t, &c, &ka, &mut out);
        let get = cmd(
            AdminOpcode::GetFeatures,
            0,
            FeatureId::KeepAliveTimer as u32,
            0,
        );
        assert_eq!(
            execute(&t, &c, &get, &mut out),
            AdminOutcome::Done(Completion::ok(2000), 0),
            "rounded up to KAS (1 s)"
        );
        let vwc = cmd(
            AdminOpcode::SetFeatures,
            0,
            FeatureId::VolatileWriteCache as u32,
            1,
        );
        execute(&t, &c, &vwc, &mut out);
        let get = cmd(
            AdminOpcode::GetFeatures,
            0,
            FeatureId::VolatileWriteCache as u32,
            0,
        );
        assert_eq!(
            execute(&t, &c, &get, &mut out),
            AdminOutcome::Done(Completion::ok(1), 0)
        );
        let saved = cmd(AdminOpcode::SetFeatures, 0, 1 << 31 | 0x0b, 0);
        assert_eq!(
            execute(&t, &c, &saved, &mut out),
            AdminOutcome::Done(Completion::error(1, sc::FEATURE_NOT_SAVEABLE), 0)
        );
        let aer = cmd(AdminOpcode::AsyncEventRequest, 0, 0, 0);
        assert_eq!(execute(&t, &c, &aer, &mut out), AdminOutcome::Aer);
    }

    #[test]
    fn unknown_log_pages_and_namespaces_are_refused_with_their_status() {
        let (t, c) = setup(SUB);
        let mut out = [0u8; 4096];
        let r = execute(
            &t,
            &c,
            &cmd(AdminOpcode::GetLogPage, 0, 0x7f | 127 << 16, 0),
            &mut out,
        );
        assert_eq!(
            r,
            AdminOutcome::Done(Completion::error(1, sc::INVALID_LOG_PAGE), 0)
        );
        let r = execute(&t, &c, &cmd(AdminOpcode::Identify, 0, 0, 0), &mut out);
        assert_eq!(
            r,
            AdminOutcome::Done(Completion::generic(generic::INVALID_NAMESPACE_OR_FORMAT), 0)
        );
        let r = execute(&t, &c, &cmd(AdminOpcode::Identify, 3, 0, 0), &mut out);
        assert_eq!(r, AdminOutcome::Done(Completion::ok(0), 4096), "inactive");
        assert!(
            out.iter().all(|&b| b == 0),
            "an inactive namespace reads zeroes"
        );
        let r = execute(&t, &c, &cmd(AdminOpcode::FormatNvm, 0, 0, 0), &mut out);
        assert_eq!(r, AdminOutcome::Done(Completion::invalid_opcode(), 0));
    }
}
