//! `spdk-io discover`: the Discovery Log Page of an NVMe-oF discovery
//! controller, printed as SPDK's `spdk_nvme_identify` prints it (or as JSON).

use clap::Args;
use serde::Serialize;
use spdk_io::nvme::tcp::{DiscoveryEntry, DiscoveryLog};
use spdk_io::nvme::{self, ControllerOpts, TransportId};
use std::process::ExitCode;

/// Options of `spdk-io discover`.
#[derive(Args, Debug)]
pub struct DiscoverArgs {
    /// Transport ID of the discovery service
    /// (`trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420`); without
    /// `subnqn:` the well-known discovery NQN is used, `hostnqn:` names the host.
    #[arg(short = 'r', long = "transport-id")]
    trid: String,
    /// Host NQN to connect as (a `hostnqn:` in the transport ID wins).
    #[arg(long = "hostnqn")]
    hostnqn: Option<String>,
    /// Output format: `text` or `json`.
    #[arg(long = "output-format", default_value = "text")]
    output_format: String,
}

#[derive(Serialize)]
struct EntryReport {
    trtype: u8,
    adrfam: u8,
    subtype: u8,
    treq: u8,
    eflags: u16,
    portid: u16,
    cntlid: u16,
    asqsz: u16,
    trsvcid: String,
    subnqn: String,
    traddr: String,
    /// The entry as a transport ID to attach with, when the transport is known.
    trid: Option<String>,
}

fn trtype_name(t: u8) -> &'static str {
    match t {
        1 => "RDMA",
        2 => "FC",
        3 => "TCP",
        254 => "INTRA_HOST",
        _ => "unknown",
    }
}

fn adrfam_name(a: u8) -> &'static str {
    match a {
        1 => "IPv4",
        2 => "IPv6",
        3 => "IB",
        4 => "FC",
        254 => "INTRA_HOST",
        _ => "unknown",
    }
}

fn subtype_name(s: u8) -> &'static str {
    match s {
        1 => "Referral to a discovery service",
        2 => "NVM Subsystem",
        3 => "Current Discovery Subsystem",
        _ => "Unknown",
    }
}

fn secure_channel(treq: u8) -> &'static str {
    match treq & 3 {
        0 => "Not Specified",
        1 => "Required",
        2 => "Not Required",
        _ => "Reserved",
    }
}

/// The log as text, line for line as `spdk_nvme_identify` prints it.
pub fn text(log: &DiscoveryLog) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line("Discovery Log Page".into());
    line("==================".into());
    line(format!(
        "Generation Counter:                    {}",
        log.genctr
    ));
    line(format!(
        "Number of Records:                     {}",
        log.numrec
    ));
    line(format!(
        "Record Format:                         {}",
        log.recfmt
    ));
    line(String::new());
    for (i, e) in log.entries.iter().enumerate() {
        line(format!("Discovery Log Entry {i}"));
        line("----------------------".into());
        line(format!(
            "Transport Type:                        {} ({})",
            e.trtype,
            trtype_name(e.trtype)
        ));
        line(format!(
            "Address Family:                        {} ({})",
            e.adrfam,
            adrfam_name(e.adrfam)
        ));
        line(format!(
            "Subsystem Type:                        {} ({})",
            e.subtype,
            subtype_name(e.subtype)
        ));
        line("Entry Flags:".into());
        line(format!(
            "  Duplicate Returned Information:\t\t\t{}",
            e.eflags & 1
        ));
        line(format!(
            "  Explicit Persistent Connection Support for Discovery: {}",
            (e.eflags >> 1) & 1
        ));
        line("Transport Requirements:".into());
        line(format!(
            "  Secure Channel:                      {}",
            secure_channel(e.treq)
        ));
        line(format!(
            "Port ID:                               {} ({:#06x})",
            e.portid, e.portid
        ));
        line(format!(
            "Controller ID:                         {} ({:#06x})",
            e.cntlid, e.cntlid
        ));
        line(format!(
            "Admin Max SQ Size:                     {}",
            e.asqsz
        ));
        line(format!(
            "Transport Service Identifier:          {}",
            e.trsvcid
        ));
        line(format!(
            "NVM Subsystem Qualified Name:          {}",
            e.subnqn
        ));
        line(format!(
            "Transport Address:                     {}",
            e.traddr
        ));
    }
    o
}

fn entry_report(e: &DiscoveryEntry) -> EntryReport {
    EntryReport {
        trtype: e.trtype,
        adrfam: e.adrfam,
        subtype: e.subtype,
        treq: e.treq,
        eflags: e.eflags,
        portid: e.portid,
        cntlid: e.cntlid,
        asqsz: e.asqsz,
        trsvcid: e.trsvcid.clone(),
        subnqn: e.subnqn.clone(),
        traddr: e.traddr.clone(),
        trid: e.trid().map(|t| t.to_string()),
    }
}

/// Runs `spdk-io discover`.
pub fn run(args: DiscoverArgs) -> ExitCode {
    let json = match args.output_format.as_str() {
        "json" => true,
        "text" => false,
        other => {
            eprintln!("discover: unknown --output-format {other:?}: use text or json");
            return ExitCode::from(2);
        }
    };
    let trid: TransportId = match args.trid.parse() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("discover: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = crate::dma_env::init("discover", true, 64) {
        eprintln!("discover: {e}");
        return ExitCode::FAILURE;
    }
    let opts = ControllerOpts {
        hostnqn: args.hostnqn,
        ..ControllerOpts::default()
    };
    let log = nvme::connect(&trid, &opts).and_then(|c| c.discovery_log_page());
    let log = match log {
        Ok(l) => l,
        Err(e) => {
            eprintln!("discover: {trid}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        let v = serde_json::json!({
            "genctr": log.genctr,
            "numrec": log.numrec,
            "recfmt": log.recfmt,
            "entries": log.entries.iter().map(entry_report).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serializable")
        );
    } else {
        print!("{}", text(&log));
    }
    ExitCode::SUCCESS
}
