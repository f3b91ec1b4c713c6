//! Attaching a controller over NVMe/TCP: the admin connection, Fabrics
//! Connect, the bring-up over Property Get/Set (CAP, VS, CC, CSTS),
//! Identify; connecting each I/O queue; the shutdown at detach.

use super::admin::TcpAdmin;
use super::fabrics::{self, CNTLID_DYNAMIC, DISCOVERY_NQN};
use super::queue::{CommandBuffers, TcpQueue, TcpQueueOpts};
use crate::env::DmaBuf;
use crate::nvme::admin::AdminQueue;
use crate::nvme::controller::{Controller, ControllerOpts, CtrlrInner};
use crate::nvme::spec::registers::{Cap, Cc, Csts, Vs};
use crate::nvme::spec::{self, AdminOpcode, IdentifyController, Sqe, StatusCodeType};
use crate::nvme::transport::Transport;
use crate::nvme::{NvmeError, TransportId};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries of the admin queue.
const ADMIN_ENTRIES: u16 = 32;
/// Property offsets (the controller registers' BAR0 offsets).
const PROP_CAP: u32 = 0x00;
const PROP_VS: u32 = 0x08;
const PROP_CC: u32 = 0x14;
const PROP_CSTS: u32 = 0x1c;
/// Largest transfer of one command (when the controller sets no MDTS, or
/// a larger one).
const DEFAULT_MAX_XFER: usize = 4 << 20;

/// What an NVMe/TCP controller's queues need.
pub(crate) struct TcpTransport {
    pub(crate) addr: SocketAddr,
    pub(crate) subnqn: String,
    pub(crate) hostnqn: String,
    pub(crate) hostid: [u8; 16],
    /// The controller ID the last admin Connect returned (a reset
    /// connects again and gets a new one).
    pub(crate) cntlid: AtomicU16,
    /// Most write data sent in an I/O command capsule (IOCCSZ).
    pub(crate) in_capsule: usize,
    pub(crate) qopts: TcpQueueOpts,
    /// Keep Alive Timeout given in Connect (zero: none).
    pub(crate) kato: Duration,
    /// When the last Keep Alive was sent.
    pub(crate) last_keep_alive: Mutex<Instant>,
}

/// The socket address of a TCP transport ID (`trsvcid` defaults to 4420).
pub(crate) fn socket_addr(trid: &TransportId) -> Result<SocketAddr, NvmeError> {
    let bad = |why: String| NvmeError::InvalidArgument(format!("{trid}: {why}"));
    let ip: IpAddr = trid
        .traddr
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            bad(format!(
                "traddr {:?} is not an IPv4 or IPv6 address",
                trid.traddr
            ))
        })?;
    match trid
        .adrfam
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => {}
        Some("ipv4") if ip.is_ipv4() => {}
        Some("ipv6") if ip.is_ipv6() => {}
        Some(f) => return Err(bad(format!("adrfam {f} does not match traddr {ip}"))),
    }
    let port = match &trid.trsvcid {
        None => 4420,
        Some(p) => p
            .parse()
            .map_err(|_| bad(format!("trsvcid {p:?} is not a port number")))?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Connect data as a command's single buffer.
struct ConnectData([u8; fabrics::CONNECT_DATA_LEN]);

impl CommandBuffers for ConnectData {
    fn segment(&self, _cid: u16, i: usize) -> Option<&[u8]> {
        (i == 0).then_some(&self.0[..])
    }
    fn segment_mut(&mut self, _cid: u16, i: usize) -> Option<&mut [u8]> {
        (i == 0).then_some(&mut self.0[..])
    }
}

/// The error of a refused Connect, naming the cause.
fn connect_refused(t: &TcpTransport, qid: u16, e: NvmeError) -> NvmeError {
    let Some(st) = e.status() else { return e };
    let why = match (st.sct, fabrics::sc::name(st.sc)) {
        (StatusCodeType::CommandSpecific, Some(n)) => n.to_string(),
        _ => st.to_string(),
    };
    NvmeError::ConnectRefused(format!(
        "{}: Connect of queue {qid} to subsystem {:?} as host {:?} refused: {why}",
        t.addr, t.subnqn, t.hostnqn
    ))
}

impl TcpTransport {
    /// Connects the admin queue and enables the controller: a TCP
    /// connection, ICReq, Fabrics Connect (a new controller ID, kept for
    /// the I/O queues' Connects), CAP and VS by Property Get, then CC.EN=1
    /// by Property Set and CSTS.RDY awaited. Used by attach and by every
    /// reset.
    pub(crate) fn connect_admin(
        &self,
        kato_ms: u32,
        to: Duration,
    ) -> Result<(TcpAdmin, Cap, Vs), NvmeError> {
        let q = TcpQueue::connect(self.addr, ADMIN_ENTRIES, &self.qopts)
            .map_err(|e| NvmeError::Tcp(Box::new(e)))?;
        let mut admin = TcpAdmin::new(q, ADMIN_ENTRIES);
        // Fabrics Connect of the admin queue; the answer names our controller.
        let mut data = DmaBuf::alloc_zeroed(fabrics::CONNECT_DATA_LEN, 4096)?;
        data.copy_from_slice(&fabrics::connect_data(
            &self.hostid,
            CNTLID_DYNAMIC,
            &self.subnqn,
            &self.hostnqn,
        ));
        let (cqe, _) = admin
            .exec(
                fabrics::connect_cmd(0, ADMIN_ENTRIES, kato_ms),
                Some(data),
                to,
            )
            .map_err(|e| connect_refused(self, 0, e))?;
        self.cntlid.store(cqe.dw0 as u16, Ordering::Release);
        let cap = Cap(prop_get(&mut admin, PROP_CAP, 8, to)?);
        let vs = Vs(prop_get(&mut admin, PROP_VS, 4, to)? as u32);
        let cc = Cc(0).with_iosqes(6).with_iocqes(4).with_en(1);
        prop_set(&mut admin, PROP_CC, cc.0 as u64, to)?;
        wait_csts(
            &mut admin,
            "become ready (CSTS.RDY=1)",
            cap.timeout(),
            |c| c.rdy() == 1,
        )?;
        Ok((admin, cap, vs))
    }

    /// Connects queue `qid` (1..) of `entries` entries: a TCP connection,
    /// ICReq, then Fabrics Connect with this controller's ID.
    pub(crate) fn connect_io_queue(
        &self,
        qid: u16,
        entries: u16,
        timeout: Duration,
    ) -> Result<TcpQueue, NvmeError> {
        let tcp = |e| NvmeError::Tcp(Box::new(e));
        let t0 = Instant::now();
        let mut q = TcpQueue::connect(self.addr, entries, &self.qopts).map_err(tcp)?;
        let ic_done = t0.elapsed();
        q.set_in_capsule_max(self.in_capsule);
        let mut sqe = fabrics::connect_cmd(qid, entries, 0);
        sqe.set_cid(0);
        let mut data = ConnectData(fabrics::connect_data(
            &self.hostid,
            self.cntlid.load(Ordering::Acquire),
            &self.subnqn,
            &self.hostnqn,
        ));
        q.submit(sqe, fabrics::CONNECT_DATA_LEN as u32, true, &data)
            .map_err(tcp)?;
        let start = Instant::now();
        loop {
            let mut done = None;
            q.poll(&mut data, |c| done = Some(c)).map_err(tcp)?;
            if let Some(c) = done {
                let st = c.status();
                if !st.is_success() {
                    let e = NvmeError::Command {
                        opcode: "Fabrics Connect",
                        status: st,
                    };
                    return Err(connect_refused(self, qid, e));
                }
                log::debug!(
                    "NVMe/TCP {}: I/O queue {qid} connected: TCP and ICReq/ICResp {ic_done:?}, \
                     Fabrics Connect {:?}",
                    self.addr,
                    start.elapsed()
                );
                return Ok(q);
            }
            if start.elapsed() > timeout {
                return Err(NvmeError::Timeout {
                    what: "Fabrics Connect",
                    after: timeout,
                });
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn prop_get(a: &mut TcpAdmin, off: u32, size: u8, to: Duration) -> Result<u64, NvmeError> {
    let (c, _) = a.exec(fabrics::property_get_cmd(off, size), None, to)?;
    Ok(c.dw0 as u64 | (c.dw1 as u64) << 32)
}

fn prop_set(a: &mut TcpAdmin, off: u32, v: u64, to: Duration) -> Result<(), NvmeError> {
    a.exec(fabrics::property_set_cmd(off, 4, v), None, to)
        .map(|_| ())
}

/// Waits until CSTS satisfies `ok`, polling it with Property Get.
fn wait_csts(
    a: &mut TcpAdmin,
    what: &'static str,
    to: Duration,
    ok: impl Fn(Csts) -> bool,
) -> Result<(), NvmeError> {
    let start = Instant::now();
    loop {
        let csts = Csts(prop_get(a, PROP_CSTS, 4, to)? as u32);
        if ok(csts) {
            return Ok(());
        }
        if csts.cfs() == 1 {
            return Err(NvmeError::ControllerFatal);
        }
        if start.elapsed() > to {
            return Err(NvmeError::NotReady { what, waited: to });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The source address every connection binds to, from `src_addr` and
/// `src_svcid` (`None` when neither is given).
fn source_addr(opts: &ControllerOpts, peer: SocketAddr) -> Result<Option<SocketAddr>, NvmeError> {
    if opts.src_addr.is_none() && opts.src_svcid.is_none() {
        return Ok(None);
    }
    let ip = match opts.src_addr.as_deref() {
        None if peer.is_ipv4() => IpAddr::from([0u8; 4]),
        None => IpAddr::from([0u16; 8]),
        Some(a) => a.parse().map_err(|_| {
            NvmeError::InvalidArgument(format!(
                "source address (hostaddr) {a:?} is not an IPv4 or IPv6 address"
            ))
        })?,
    };
    if ip.is_ipv4() != peer.is_ipv4() {
        return Err(NvmeError::InvalidArgument(format!(
            "source address (hostaddr) {ip} and target address {peer} are of different families"
        )));
    }
    let port = match opts.src_svcid.as_deref() {
        None => 0,
        Some(p) => p.parse::<u16>().map_err(|_| {
            NvmeError::InvalidArgument(format!(
                "source port (hostsvcid) {p:?} is not a port number"
            ))
        })?,
    };
    Ok(Some(SocketAddr::new(ip, port)))
}

/// Attaches the controller named by a TCP transport ID.
pub(crate) fn attach(trid: &TransportId, opts: ControllerOpts) -> Result<Controller, NvmeError> {
    let addr = socket_addr(trid)?;
    let subnqn = trid.subnqn.clone().unwrap_or_else(|| DISCOVERY_NQN.into());
    let hostid = opts.hostid;
    let hostnqn = trid
        .hostnqn
        .clone()
        .or_else(|| opts.hostnqn.clone())
        .unwrap_or_else(|| fabrics::hostnqn_from_id(&hostid));
    for (what, n) in [("subnqn", &subnqn), ("hostnqn", &hostnqn)] {
        if n.len() > fabrics::NQN_MAX_LEN {
            return Err(NvmeError::InvalidArgument(format!(
                "{what} of {} bytes is longer than an NQN may be ({})",
                n.len(),
                fabrics::NQN_MAX_LEN
            )));
        }
    }
    let mut qopts = TcpQueueOpts {
        header_digest: opts.header_digest,
        data_digest: opts.data_digest,
        ..TcpQueueOpts::default()
    };
    qopts.sock.local_addr = source_addr(&opts, addr)?;
    let mut t = TcpTransport {
        addr,
        subnqn,
        hostnqn,
        hostid,
        cntlid: AtomicU16::new(CNTLID_DYNAMIC),
        in_capsule: 0,
        qopts,
        kato: Duration::from_millis(opts.keep_alive_timeout_ms as u64),
        last_keep_alive: Mutex::new(Instant::now()),
    };
    let to = opts.admin_timeout;
    let (mut admin, cap, vs) = t.connect_admin(opts.keep_alive_timeout_ms, to)?;
    if cap.css() & 1 == 0 && subnqn_is_io(&t.subnqn) {
        return Err(NvmeError::Unsupported(format!(
            "{trid}: controller does not support the NVM command set (CAP.CSS bit 0)"
        )));
    }
    let mut sqe = Sqe::new(AdminOpcode::Identify as u8, 0);
    sqe.cdw10 = spec::command::cns::CONTROLLER as u32;
    let buf = DmaBuf::alloc_zeroed(4096, 4096)?;
    let (_, buf) = admin.exec(sqe, Some(buf), to)?;
    let cdata: IdentifyController = buf
        .as_deref()
        .and_then(spec::from_bytes)
        .ok_or_else(|| NvmeError::Unsupported("Identify Controller returned no data".into()))?;
    let ioccsz = u32::from_le_bytes([cdata.nvmf[0], cdata.nvmf[1], cdata.nvmf[2], cdata.nvmf[3]]);
    t.in_capsule = (ioccsz as usize * 16).saturating_sub(64);
    // At most DEFAULT_MAX_XFER whatever MDTS says: one command's block
    // count must fit NLB's 16 bits and its length a u32 (an MDTS of 20
    // would allow 4 GiB).
    let max_xfer = match cdata.mdts {
        0 => DEFAULT_MAX_XFER,
        m => (4096usize << m.min(20)).min(DEFAULT_MAX_XFER),
    };
    log::debug!(
        "{trid}: cntlid {} CAP {:#x} VS {vs} IOCCSZ {ioccsz} MAXH2CDATA {}",
        t.cntlid.load(Ordering::Relaxed),
        cap.0,
        admin.queue.maxh2cdata()
    );
    let inner = CtrlrInner::new(
        trid.clone(),
        Transport::Tcp(t),
        (cap, vs),
        opts,
        AdminQueue::Tcp(admin),
        Box::new(cdata),
        max_xfer,
    );
    let ctrlr = Controller {
        inner: Arc::new(inner),
    };
    if subnqn_is_io(&ctrlr.inner.trid_subnqn()) {
        ctrlr.inner.init_after_enable()?;
        ctrlr.scan_namespaces()?;
    }
    log::info!(
        "{}: attached {} (serial {}, NVMe {}) over TCP, {} namespace(s), {} I/O queues",
        ctrlr.inner.trid,
        ctrlr.inner.cdata.model(),
        ctrlr.inner.cdata.serial(),
        vs,
        ctrlr.inner.namespaces.read().unwrap().len(),
        ctrlr.max_io_qpairs(),
    );
    Ok(ctrlr)
}

/// False for the discovery subsystem (no I/O queues, no namespaces).
pub(super) fn subnqn_is_io(subnqn: &str) -> bool {
    subnqn != DISCOVERY_NQN
}

impl CtrlrInner {
    /// Sends Keep Alive when half the Keep Alive Timeout has passed since
    /// the last one (NVMe/TCP with a KATO only; called from
    /// `Controller::process_admin_completions`, as SPDK does).
    pub(crate) fn keep_alive_if_due(&self) -> Result<(), NvmeError> {
        let Transport::Tcp(t) = &self.transport else {
            return Ok(());
        };
        if t.kato.is_zero() || self.detached.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        {
            let mut last = t.last_keep_alive.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < t.kato / 2 {
                return Ok(());
            }
            *last = Instant::now();
        }
        self.admin_exec(Sqe::new(AdminOpcode::KeepAlive as u8, 0), None)
            .map(|_| ())
    }

    /// The subsystem NQN connected to (the discovery NQN when none was given).
    pub(crate) fn trid_subnqn(&self) -> String {
        match &self.transport {
            Transport::Tcp(t) => t.subnqn.clone(),
            Transport::Pcie(_) => String::new(),
        }
    }
}

/// Normal shutdown over the admin connection (CC.SHN by Property Set,
/// then CSTS.SHST), at detach; then the connection is closed.
pub(crate) fn shutdown(trid: &TransportId, admin: &mut AdminQueue, to: Duration) {
    let AdminQueue::Tcp(a) = admin else { return };
    let r = (|| {
        let cc = Cc(prop_get(a, PROP_CC, 4, to)? as u32);
        prop_set(a, PROP_CC, cc.with_shn(1).0 as u64, to)?;
        wait_csts(a, "finish shutdown (CSTS.SHST=2)", to, |c| c.shst() == 2)
    })();
    if let Err(e) = r {
        log::warn!("{trid}: shutdown did not complete: {e}");
    }
    a.queue.close();
}
