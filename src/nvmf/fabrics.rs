//! Fabrics commands on the target: Connect (a queue joins a controller:
//! a new one for an admin queue, an existing one for an I/O queue) and
//! Property Get/Set, with the statuses SPDK's `lib/nvmf/ctrlr.c` returns.

use super::ctrlr::{Ctrlr, QueueOrigin};
use super::status::{sc as gsc, sct, Completion};
use super::subsystem::{Subsystem, SubsystemType};
use super::target::Target;
use crate::nvme::spec::Sqe;
use crate::nvme::tcp::fabrics::{
    sc, CNTLID_DYNAMIC, CONNECT_DATA_LEN, FCTYPE_CONNECT, FCTYPE_PROPERTY_GET, FCTYPE_PROPERTY_SET,
    NQN_FIELD_LEN,
};
use std::sync::Arc;

/// A queue connected to a controller.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The controller.
    pub ctrlr: Arc<Ctrlr>,
    /// Queue ID (0: admin).
    pub qid: u16,
    /// Queue entries (SQSIZE + 1).
    pub entries: u16,
}

/// The fabrics command type of a Fabrics command (byte 4 of the SQE).
pub fn fctype(sqe: &Sqe) -> u8 {
    sqe.nsid as u8
}

/// Connect Invalid Parameters naming the bad field: `in_data` says
/// whether `ipo` is an offset in the Connect data or in the command.
pub fn invalid_param(in_data: bool, ipo: u16) -> Completion {
    let mut c = Completion::error(sct::COMMAND_SPECIFIC, sc::INVALID_PARAMETERS);
    c.dw0 = ipo as u32 | (in_data as u32) << 16;
    c
}

fn nqn_field(data: &[u8], at: usize) -> Option<String> {
    let f = data.get(at..at + NQN_FIELD_LEN)?;
    let n = f.iter().position(|&b| b == 0)?;
    std::str::from_utf8(&f[..n]).ok().map(str::to_owned)
}

/// Executes Connect with its data for a queue from `origin`; on success
/// the CQE's Dword 0 holds the controller ID. A host not on the
/// subsystem's allow list, or reaching it through a listener not added
/// to it, is refused with Invalid Host (as SPDK's
/// `nvmf_qpair_access_allowed`).
pub fn connect(
    target: &Target,
    sqe: &Sqe,
    data: &[u8],
    origin: &QueueOrigin,
) -> Result<Connected, Completion> {
    let recfmt = sqe.cdw10 as u16;
    let qid = (sqe.cdw10 >> 16) as u16;
    let sqsize = sqe.cdw11 as u16;
    let kato = sqe.cdw12;
    if recfmt != 0 {
        let mut c = Completion::error(sct::COMMAND_SPECIFIC, sc::INCOMPATIBLE_FORMAT);
        c.dw0 = recfmt as u32;
        return Err(c);
    }
    if data.len() < CONNECT_DATA_LEN {
        return Err(Completion::generic(gsc::DATA_SGL_LENGTH_INVALID));
    }
    let o = target.opts();
    let max = if qid == 0 {
        o.max_aq_depth
    } else {
        o.max_queue_depth
    };
    // SQSIZE is 0's based: 0 is invalid, max - 1 the largest.
    if sqsize == 0 || sqsize > max - 1 {
        log::info!("Connect: SQSIZE {sqsize} outside 1..={}", max - 1);
        return Err(invalid_param(false, 44));
    }
    let mut hostid = [0u8; 16];
    hostid.copy_from_slice(&data[..16]);
    let cntlid = u16::from_le_bytes([data[16], data[17]]);
    let (Some(subnqn), Some(hostnqn)) = (nqn_field(data, 256), nqn_field(data, 512)) else {
        return Err(invalid_param(true, 256));
    };
    let Some(subsys) = target.find(&subnqn) else {
        log::info!("Connect from '{hostnqn}' to unknown subsystem '{subnqn}'");
        return Err(invalid_param(true, 256));
    };
    if !subsys.host_allowed(&hostnqn) {
        log::info!("Connect: host '{hostnqn}' is not allowed on '{subnqn}'");
        let mut c = Completion::error(sct::COMMAND_SPECIFIC, sc::INVALID_HOST);
        c.dw0 = 512 | 1 << 16;
        return Err(c);
    }
    if !subsys.listener_allowed(&origin.listen) {
        log::info!(
            "Connect: '{subnqn}' does not allow host '{hostnqn}' to connect at {}",
            origin.listen
        );
        return Err(Completion::error(sct::COMMAND_SPECIFIC, sc::INVALID_HOST));
    }
    let entries = sqsize + 1;
    if qid == 0 {
        if cntlid != CNTLID_DYNAMIC {
            log::info!("Connect: static controller ID {cntlid} asked; only the dynamic model");
            return Err(invalid_param(true, 16));
        }
        let ctrlr = new_ctrlr(target, &subsys, hostnqn, hostid, origin, kato)?;
        return Ok(Connected {
            ctrlr,
            qid,
            entries,
        });
    }
    if subsys.subtype() == SubsystemType::Discovery {
        return Err(invalid_param(false, 42));
    }
    let Some(ctrlr) = subsys.controller(cntlid) else {
        log::info!("Connect: I/O queue {qid} for unknown controller {cntlid} of '{subnqn}'");
        return Err(invalid_param(true, 16));
    };
    if ctrlr.hostnqn() != hostnqn || ctrlr.hostid() != hostid {
        log::info!("Connect: I/O queue from '{hostnqn}' for a controller of another host");
        return Err(invalid_param(true, 512));
    }
    if !ctrlr.is_enabled() {
        return Err(Completion::generic(gsc::COMMAND_SEQUENCE_ERROR));
    }
    ctrlr.add_io_queue(qid, origin.clone())?;
    Ok(Connected {
        ctrlr,
        qid,
        entries,
    })
}

fn new_ctrlr(
    target: &Target,
    subsys: &Arc<Subsystem>,
    hostnqn: String,
    hostid: [u8; 16],
    origin: &QueueOrigin,
    kato: u32,
) -> Result<Arc<Ctrlr>, Completion> {
    let o = target.opts();
    let mut st = subsys.lock();
    let Some(cntlid) = Subsystem::alloc_cntlid(&mut st) else {
        return Err(Completion::error(
            sct::COMMAND_SPECIFIC,
            sc::CONTROLLER_BUSY,
        ));
    };
    let ctrlr = Arc::new(Ctrlr::new(
        cntlid,
        subsys.clone(),
        hostnqn,
        hostid,
        origin.clone(),
        kato,
        o.max_queue_depth,
        o.max_qpairs_per_ctrlr - 1,
    ));
    st.controllers.push(ctrlr.clone());
    Ok(ctrlr)
}

/// Property Get or Set on the admin queue of `ctrlr`. A reserved
/// ATTRIB.SIZE, an unknown or read-only property or a size that does not
/// fit it is Invalid Parameters (command specific), as SPDK answers.
pub fn property(ctrlr: &Ctrlr, sqe: &Sqe) -> Completion {
    let size = match sqe.cdw10 & 7 {
        0 => 4,
        1 => 8,
        _ => return Completion::error(sct::COMMAND_SPECIFIC, sc::INVALID_PARAMETERS),
    };
    let ofst = sqe.cdw11;
    match fctype(sqe) {
        FCTYPE_PROPERTY_GET => match ctrlr.get_property(ofst, size) {
            Ok(v) => Completion {
                dw1: (v >> 32) as u32,
                ..Completion::ok(v as u32)
            },
            Err(c) => c,
        },
        FCTYPE_PROPERTY_SET => {
            let v = sqe.cdw12 as u64 | (sqe.cdw13 as u64) << 32;
            match ctrlr.set_property(ofst, size, v) {
                Ok(()) => Completion::ok(0),
                Err(c) => c,
            }
        }
        FCTYPE_CONNECT => Completion::generic(gsc::COMMAND_SEQUENCE_ERROR),
        _ => Completion::invalid_opcode(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nvme::tcp::fabrics::{connect_cmd, connect_data, property_get_cmd};
    use crate::nvmf::subsystem::SubsystemOpts;
    use crate::nvmf::target::TransportOpts;

    const SUB: &str = "nqn.2016-06.io.spdk:cnode1";
    const HOST: &str = "nqn.2014-08.org.nvmexpress:uuid:1";

    fn target(allow_any: bool) -> Arc<Target> {
        let t = Target::new(TransportOpts::default()).unwrap();
        let s = t
            .create_subsystem(
                SUB,
                SubsystemOpts {
                    allow_any_host: allow_any,
                    ..SubsystemOpts::default()
                },
            )
            .unwrap();
        s.add_listener(listen_addr(origin().listen));
        t
    }

    /// A queue from 127.0.0.1 reaching the listener 127.0.0.1:4420.
    fn origin() -> QueueOrigin {
        QueueOrigin {
            listen: "127.0.0.1:4420".parse().unwrap(),
            peer: "127.0.0.1:50000".parse().unwrap(),
            thread: "nvmf_tgt_poll_group_0".into(),
        }
    }

    fn listen_addr(a: std::net::SocketAddr) -> crate::nvmf::ListenAddr {
        crate::nvmf::tcp::TcpTransport::listen_addr(a)
    }

    fn connect(t: &Target, sqe: &Sqe, data: &[u8]) -> Result<Connected, Completion> {
        super::connect(t, sqe, data, &origin())
    }

    #[test]
    fn a_host_reaching_the_subsystem_through_another_listener_is_invalid_host() {
        let t = target(true);
        let d = connect_data(&[1; 16], CNTLID_DYNAMIC, SUB, HOST);
        let mut o = origin();
        o.listen = "127.0.0.1:4421".parse().unwrap();
        let e = super::connect(&t, &connect_cmd(0, 32, 0), &d, &o).unwrap_err();
        assert_eq!((e.sct, e.sc), (1, sc::INVALID_HOST));
        // The discovery subsystem takes any listener of the target (SPDK's behaviour).
        let disc = connect_data(&[1; 16], CNTLID_DYNAMIC, crate::nvmf::DISCOVERY_NQN, HOST);
        assert!(super::connect(&t, &connect_cmd(0, 32, 0), &disc, &o).is_ok());
        // A listener on the unspecified address takes every address of its port.
        t.find(SUB)
            .unwrap()
            .add_listener(listen_addr("0.0.0.0:4421".parse().unwrap()));
        assert!(super::connect(&t, &connect_cmd(0, 32, 0), &d, &o).is_ok());
    }

    #[test]
    fn an_admin_connect_makes_a_controller_and_returns_its_id() {
        let t = target(true);
        let c = connect(
            &t,
            &connect_cmd(0, 32, 5000),
            &connect_data(&[1; 16], CNTLID_DYNAMIC, SUB, HOST),
        )
        .unwrap();
        assert_eq!((c.qid, c.entries, c.ctrlr.cntlid()), (0, 32, 1));
        assert_eq!(c.ctrlr.lock().kato_ms, 5000);
        let p = property(&c.ctrlr, &property_get_cmd(0x08, 4));
        assert_eq!(p.dw0, 0x10300);
    }

    #[test]
    fn connect_to_an_unknown_subsystem_is_invalid_parameters_at_subnqn() {
        let t = target(true);
        let e = connect(
            &t,
            &connect_cmd(0, 32, 0),
            &connect_data(&[1; 16], CNTLID_DYNAMIC, "nqn.2016-06.io.spdk:nope", HOST),
        )
        .unwrap_err();
        assert_eq!((e.sct, e.sc), (1, sc::INVALID_PARAMETERS));
        assert_eq!(e.dw0, 256 | 1 << 16, "IPO 256 in the data (IATTR 1)");
    }

    #[test]
    fn a_host_not_on_the_allow_list_is_invalid_host() {
        let t = target(false);
        let d = connect_data(&[1; 16], CNTLID_DYNAMIC, SUB, HOST);
        let e = connect(&t, &connect_cmd(0, 32, 0), &d).unwrap_err();
        assert_eq!((e.sct, e.sc), (1, sc::INVALID_HOST));
        t.find(SUB).unwrap().add_host(HOST).unwrap();
        assert!(connect(&t, &connect_cmd(0, 32, 0), &d).is_ok());
    }

    #[test]
    fn an_io_connect_needs_an_enabled_controller_of_the_same_host() {
        let t = target(true);
        let a = connect(
            &t,
            &connect_cmd(0, 32, 0),
            &connect_data(&[1; 16], CNTLID_DYNAMIC, SUB, HOST),
        )
        .unwrap();
        let id = a.ctrlr.cntlid();
        let io = connect_data(&[1; 16], id, SUB, HOST);
        let e = connect(&t, &connect_cmd(1, 64, 0), &io).unwrap_err();
        assert_eq!(e.sc, gsc::COMMAND_SEQUENCE_ERROR, "not enabled yet");
        a.ctrlr
            .set_property(
                0x14,
                4,
                crate::nvme::spec::Cc(0)
                    .with_iosqes(6)
                    .with_iocqes(4)
                    .with_en(1)
                    .0 as u64,
            )
            .unwrap();
        let q = connect(&t, &connect_cmd(1, 64, 0), &io).unwrap();
        assert_eq!((q.qid, q.entries), (1, 64));
        let other = connect_data(&[2; 16], id, SUB, HOST);
        let e = connect(&t, &connect_cmd(2, 64, 0), &other).unwrap_err();
        assert_eq!(e.dw0, 512 | 1 << 16, "another host's controller");
        let e = connect(
            &t,
            &connect_cmd(2, 64, 0),
            &connect_data(&[1; 16], 77, SUB, HOST),
        )
        .unwrap_err();
        assert_eq!(e.dw0, 16 | 1 << 16, "unknown controller ID");
    }

    #[test]
    fn sqsize_zero_or_beyond_the_queue_depth_is_invalid_parameters_at_sqsize() {
        let t = target(true);
        let d = connect_data(&[1; 16], CNTLID_DYNAMIC, SUB, HOST);
        for entries in [1u16, 129] {
            let e = connect(&t, &connect_cmd(0, entries, 0), &d).unwrap_err();
            assert_eq!((e.sc, e.dw0), (sc::INVALID_PARAMETERS, 44), "{entries}");
        }
    }
}
