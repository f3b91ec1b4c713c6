//! A controller whose answers the driver cannot take as they are, against
//! the scripted controller on 127.0.0.1: an active namespace list that
//! repeats a full page whatever it is asked after (an error, not an
//! endless loop), an MDTS of 4 GiB (held to what one command can carry).

use crate::nvme_tcp_common::target::{self, TargetOpts, SUBNQN};
use spdk_io::env::{self, EnvOpts};
use spdk_io::nvme::{self, ControllerOpts, TransportId};

fn trid(t: &target::Target) -> TransportId {
    format!(
        "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:{} subnqn:{SUBNQN}",
        t.addr.port()
    )
    .parse()
    .unwrap()
}

#[test]
fn an_active_namespace_list_that_repeats_itself_fails_the_attach_instead_of_looping() {
    env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
    let t = target::start(TargetOpts {
        repeat_full_ns_list: true,
        ..TargetOpts::default()
    });
    let e = nvme::connect(&trid(&t), &ControllerOpts::default()).unwrap_err();
    assert!(e.to_string().contains("not ascending"), "{e}");
}

#[test]
fn an_mdts_allowing_gigabytes_is_held_to_what_one_command_can_carry() {
    env::init_once(EnvOpts::no_huge()).expect("env (no_huge)");
    let t = target::start(TargetOpts {
        mdts: 20, // 4 GiB: NLB (16 bits) and a u32 length could not say it
        ..TargetOpts::default()
    });
    let c = nvme::connect(&trid(&t), &ControllerOpts::default()).unwrap();
    assert_eq!(c.max_transfer_size(), 4 << 20);
}
