//! Errors that callers propagate (with `?`, across threads, into
//! `Box<dyn Error + Send + Sync>` or `anyhow`) are `Send + Sync + 'static`:
//! a compile-time check per layer.

use std::error::Error;

fn propagatable<E: Error + Send + Sync + 'static>() {}

#[test]
fn every_layers_error_is_send_sync_and_static() {
    propagatable::<spdk_io::env::EnvError>();
    propagatable::<spdk_io::pci::PciError>();
    propagatable::<spdk_io::sock::SockError>();
    propagatable::<spdk_io::nvme::NvmeError>();
    propagatable::<spdk_io::nvme::SubmitError>();
    propagatable::<spdk_io::nvme::emu::EmuError>();
    propagatable::<spdk_io::thread::ThreadError>();
    propagatable::<spdk_io::bdev::BdevError>();
    propagatable::<spdk_io::bdev::IoFailed>();
    propagatable::<spdk_io::blob::BlobError>();
    propagatable::<spdk_io::lvol::LvolError>();
    propagatable::<spdk_io::event::EventError>();
}

#[test]
fn errors_convert_into_a_boxed_send_sync_error() {
    fn boxed(e: impl Error + Send + Sync + 'static) -> Box<dyn Error + Send + Sync> {
        Box::new(e)
    }
    let e = boxed(spdk_io::thread::ThreadError::NoCurrentThread);
    assert!(e.to_string().contains("no current spdk-io thread"));
    let e = boxed(spdk_io::event::EventError::from(
        spdk_io::thread::ThreadError::NoCurrentThread,
    ));
    assert!(
        e.source().is_some(),
        "the thread error is kept as the source, not flattened"
    );
    let e = boxed(spdk_io::event::EventError::from(
        spdk_io::env::EnvError::AlreadyInitialized,
    ));
    assert!(
        e.source().is_some(),
        "the env error is kept as the source, not flattened"
    );
}
