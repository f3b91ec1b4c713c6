//! `spdk-io setup` refuses what it cannot do before changing anything,
//! and `setup status` shows whether an IOMMU and VFIO are present.

use std::process::Command;

fn setup(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_spdk-io"))
        .arg("setup")
        .args(args)
        .env_remove("DRIVER_OVERRIDE")
        .env_remove("HUGEMEM")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn reserved_hugepages() -> Option<String> {
    std::fs::read_to_string("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages").ok()
}

#[test]
fn a_driver_override_that_does_not_exist_is_refused_and_changes_nothing() {
    let before = reserved_hugepages();
    let (ok, out, err) = setup(&["--driver-override", "spdk-io-no-such-driver"]);
    assert!(!ok, "accepted: {out}");
    assert!(
        err.contains("DRIVER_OVERRIDE=spdk-io-no-such-driver")
            && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(reserved_hugepages(), before, "hugepages changed");
}

#[test]
fn status_shows_iommu_and_vfio() {
    let (ok, out, err) = setup(&["status"]);
    assert!(ok, "{err}");
    assert!(out.contains("IOMMU: "), "{out}");
    assert!(out.contains("VFIO:  "), "{out}");
}
