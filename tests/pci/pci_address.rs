//! PCI addresses and SPDK transport IDs: parsing and printing.

use spdk_io::pci::{PciAddress, TransportId, TransportType};

#[test]
fn pcie_transport_id_round_trips_in_spdk_form() {
    let t: TransportId = "trtype:PCIe traddr:0000:00:04.0".parse().unwrap();
    assert_eq!(t.trtype, TransportType::Pcie);
    assert_eq!(
        t.pci_address().unwrap(),
        PciAddress::new(0, 0, 4, 0).unwrap()
    );
    assert_eq!(t.to_string(), "trtype:PCIe traddr:0000:00:04.0");
    assert_eq!(
        TransportId::pcie(PciAddress::new(0, 1, 0, 0).unwrap()).to_string(),
        "trtype:PCIe traddr:0000:01:00.0"
    );
}

#[test]
fn transport_id_keys_are_case_insensitive_and_accept_equals() {
    let t: TransportId = "TRTYPE=pcie  TrAddr=01:00.0".parse().unwrap();
    assert_eq!(t.to_string(), "trtype:PCIe traddr:0000:01:00.0");
}

#[test]
fn tcp_transport_id_keeps_its_fabric_fields() {
    let s =
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn.2016-06.io.spdk:cnode1";
    let t: TransportId = s.parse().unwrap();
    assert_eq!(t.trtype, TransportType::Tcp);
    assert_eq!(t.traddr, "127.0.0.1");
    assert_eq!(t.trsvcid.as_deref(), Some("4420"));
    assert_eq!(t.to_string(), s);
    assert!(t.pci_address().is_err(), "a TCP ID has no PCI address");
}

#[test]
fn malformed_transport_ids_are_errors_that_show_an_example() {
    for s in [
        "",
        "traddr:0000:00:04.0",
        "trtype:PCIe",
        "trtype:PCIe traddr:0000:00:20.0",
        "trtype:FC traddr:x",
        "trtype:PCIe traddr:0000:00:04.0 bogus:1",
        "trtype:PCIe trtype:PCIe traddr:0000:00:04.0 traddr:0000:00:04.0",
        "trtype:PCIe traddr",
        "trtype: traddr:0000:00:04.0",
    ] {
        let e = s.parse::<TransportId>().expect_err(s);
        assert!(
            e.to_string().contains("trtype:PCIe traddr:0000:00:04.0")
                || e.to_string().contains("DDDD:BB:DD.F"),
            "{s}: {e}"
        );
    }
}

#[test]
fn addresses_sort_by_domain_bus_device_function() {
    let mut v: Vec<PciAddress> = [
        "0000:01:00.0",
        "0000:00:04.1",
        "0001:00:00.0",
        "0000:00:04.0",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    v.sort();
    let s: Vec<String> = v.iter().map(|a| a.to_string()).collect();
    assert_eq!(
        s,
        [
            "0000:00:04.0",
            "0000:00:04.1",
            "0000:01:00.0",
            "0001:00:00.0"
        ]
    );
}
