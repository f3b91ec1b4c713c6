//! The NVMe/TCP side of the CLI against spdk-io's target in this process
//! on 127.0.0.1: `spdk-io discover` prints the discovery log as
//! `spdk_nvme_identify` does (and as JSON), and names the address when
//! nobody listens.

#[path = "../../../tests/nvmf_common/mod.rs"]
mod nvmf_common;

use nvmf_common::{subsystem, Tgt};
use spdk_io::nvmf::TransportOpts;
use std::process::{Command, Output};

fn spdk_io(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .args(args)
        .output()
        .unwrap()
}

fn discovery_trid(t: &Tgt) -> String {
    format!(
        "trtype:TCP adrfam:IPv4 traddr:{} trsvcid:{}",
        t.addr.ip(),
        t.addr.port()
    )
}

#[test]
fn discover_prints_each_subsystem_at_its_listener_as_spdk_nvme_identify_does() {
    let t = Tgt::start(TransportOpts::default(), 1, "127.0.0.1:0");
    let nqn = "nqn.2016-06.io.spdk-io:cli-disc";
    subsystem(&t, nqn, "CliDisc", 1024, true);
    let out = spdk_io(&["discover", "-r", &discovery_trid(&t)]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = t.addr.port().to_string();
    for want in [
        "Discovery Log Page\n==================\n".to_string(),
        "Number of Records:                     1\n".into(),
        "Discovery Log Entry 0\n----------------------\n".into(),
        "Transport Type:                        3 (TCP)\n".into(),
        "Address Family:                        1 (IPv4)\n".into(),
        "Subsystem Type:                        2 (NVM Subsystem)\n".into(),
        format!("Transport Service Identifier:          {port}\n"),
        format!("NVM Subsystem Qualified Name:          {nqn}\n"),
        "Transport Address:                     127.0.0.1\n".into(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }

    let out = spdk_io(&[
        "discover",
        "-r",
        &discovery_trid(&t),
        "--output-format",
        "json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["numrec"], 1);
    let e = &v["entries"][0];
    assert_eq!(e["subnqn"], nqn);
    assert_eq!(e["trsvcid"], port.as_str());
    assert_eq!(
        e["trid"],
        format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port} subnqn:{nqn}").as_str()
    );
}

#[test]
fn discover_with_nobody_listening_fails_naming_the_address() {
    // A port just freed: nobody listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let trid = format!("trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{port}");
    let out = spdk_io(&["discover", "-r", &trid]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    let out = spdk_io(&["discover", "-r", "trtype:XYZ traddr:127.0.0.1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad transport ID is a usage error"
    );
}
