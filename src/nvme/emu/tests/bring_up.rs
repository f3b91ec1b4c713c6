//! Controller registers, enable / disable / shutdown, Identify.

use std::time::{Duration, Instant};

use super::host::{env_up, wait_for, Host, CC_EN_NVM};
use crate::nvme::emu::{EmuController, Status};
use crate::pci::PciDevice;

fn emu() -> EmuController {
    EmuController::builder()
        .serial("SN-EMU-1")
        .model("Emu Model")
        .firmware("FW1")
        .mqes(255)
        .mdts(5)
        .max_io_queue_pairs(3)
        .cap_to(4)
        .namespace(512, 2048)
        .namespace(4096, 64)
        .build()
        .expect("valid config")
}

#[test]
fn cap_and_vs_describe_the_configuration() {
    let e = emu();
    let bar = e.map_bar(0).unwrap();
    let cap = bar.read64(0);
    assert_eq!(cap & 0xffff, 255, "CAP.MQES");
    assert_eq!(cap >> 16 & 1, 1, "CAP.CQR");
    assert_eq!(cap >> 24 & 0xff, 4, "CAP.TO");
    assert_eq!(cap >> 32 & 0xf, 0, "CAP.DSTRD");
    assert_eq!(cap >> 37 & 1, 1, "CAP.CSS NVM");
    assert_eq!(bar.read32(0x08), 0x0001_0400, "VS 1.4");
    assert!(bar.len() >= 16 * 1024);
    assert!(e.map_bar(1).is_err());
}

#[test]
fn config_space_is_an_nvme_controller_and_honours_command() {
    let e = emu();
    let mut hdr = [0u8; 16];
    e.cfg_read(0, &mut hdr).unwrap();
    assert_eq!(u16::from_le_bytes([hdr[0], hdr[1]]), 0x1b36);
    assert_eq!(&hdr[9..12], &[0x02, 0x08, 0x01], "class 010802h");
    e.cfg_write(0x04, &0xffffu16.to_le_bytes()).unwrap();
    let mut cmd = [0u8; 2];
    e.cfg_read(0x04, &mut cmd).unwrap();
    assert_eq!(
        u16::from_le_bytes(cmd),
        0x0547,
        "only writable COMMAND bits stick"
    );
    assert!(e.cfg_read(4095, &mut cmd).is_err());
}

#[test]
fn enable_sets_ready_and_disable_clears_it() {
    let h = Host::new(emu());
    assert_eq!(h.bar.read32(0x1c) & 0x3, 1, "RDY=1, CFS=0");
    h.bar.write32(0x14, 0);
    wait_for("CSTS.RDY = 0", || h.bar.read32(0x1c) & 1 == 0);
}

#[test]
fn ready_waits_for_the_configured_delay() {
    let e = EmuController::builder()
        .ready_delay(Duration::from_millis(100))
        .build()
        .unwrap();
    let h = Host::programmed(e, 8);
    let enabled = Instant::now();
    h.bar.write32(0x14, CC_EN_NVM);
    wait_for("CSTS.RDY = 1", || h.bar.read32(0x1c) & 1 == 1);
    assert!(
        enabled.elapsed() >= Duration::from_millis(100),
        "not ready before the delay"
    );
}

#[test]
fn shutdown_notification_completes_with_shst() {
    let h = Host::new(emu());
    h.bar.write32(0x14, CC_EN_NVM | 1 << 14);
    wait_for("CSTS.SHST = 10b", || h.bar.read32(0x1c) >> 2 & 3 == 2);
}

#[test]
fn wrong_entry_sizes_keep_the_controller_not_ready() {
    let h = Host::programmed(emu(), 8);
    h.bar.write32(0x14, 1 | 7 << 16 | 4 << 20);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.bar.read32(0x1c) & 1, 0, "IOSQES=7 refused");
}

#[test]
fn nothing_is_fetched_without_bus_master() {
    env_up();
    let mut h = Host::new(emu());
    h.emu.cfg_write(0x04, &0u16.to_le_bytes()).unwrap();
    let mut sqe = crate::nvme::emu::Sqe::new(0x18, 0);
    sqe.nsid = 0;
    h.submit(0, sqe);
    assert!(
        h.quiet_for(0, Duration::from_millis(50)),
        "no completion while BME = 0"
    );
    h.emu.enable_bus_master().unwrap();
    assert_eq!(h.wait(0).status, Status::SUCCESS);
}

fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap().trim_end()
}

#[test]
fn identify_controller_reports_configured_fields() {
    let mut h = Host::new(emu());
    let (c, d) = h.identify(1, 0);
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(ascii(&d[4..24]), "SN-EMU-1");
    assert_eq!(ascii(&d[24..64]), "Emu Model");
    assert_eq!(ascii(&d[64..72]), "FW1");
    assert_eq!(d[77], 5, "MDTS");
    assert_eq!(
        u32::from_le_bytes(d[80..84].try_into().unwrap()),
        0x0001_0400,
        "VER"
    );
    assert_eq!(d[512], 0x66, "SQES");
    assert_eq!(d[513], 0x44, "CQES");
    assert_eq!(u32::from_le_bytes(d[516..520].try_into().unwrap()), 2, "NN");
    assert_eq!(d[525] & 1, 1, "VWC present");
    assert_eq!(
        u32::from_le_bytes(d[536..540].try_into().unwrap()),
        0,
        "no SGLs by default"
    );
}

#[test]
fn identify_namespace_reports_size_and_lba_format() {
    let mut h = Host::new(emu());
    let (c, d) = h.identify(0, 2);
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(u64::from_le_bytes(d[0..8].try_into().unwrap()), 64, "NSZE");
    let flbas = d[26] as usize & 0xf;
    let lbaf = u32::from_le_bytes(d[128 + 4 * flbas..132 + 4 * flbas].try_into().unwrap());
    assert_eq!(lbaf >> 16 & 0xff, 12, "LBADS of the current format");
    let (c, _) = h.identify(0, 3);
    assert_eq!(c.status, Status::INVALID_NAMESPACE_OR_FORMAT);
}

#[test]
fn active_namespace_list_and_descriptors() {
    let mut h = Host::new(emu());
    let (c, d) = h.identify(2, 0);
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(&d[0..12], &[1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    let (_, d) = h.identify(2, 1);
    assert_eq!(&d[0..8], &[2, 0, 0, 0, 0, 0, 0, 0]);
    let (c, d) = h.identify(3, 1);
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(&d[0..2], &[0x01, 8], "EUI64 descriptor first");
    let (c, _) = h.identify(0x10, 0);
    assert_eq!(c.status, Status::INVALID_FIELD, "unsupported CNS");
}
