//! An io_device whose channel contexts record their thread, with counts
//! of creates and destroys.

use spdk_io::thread::{io_device_register, IoDevice, IoDeviceKey};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A channel context that records which thread created it.
pub struct Ctx {
    pub thread: String,
    pub visits: u32,
}

pub struct Counts {
    pub created: AtomicUsize,
    pub destroyed: AtomicUsize,
}

pub fn device(name: &str) -> (IoDevice<Ctx>, Arc<Counts>) {
    let counts = Arc::new(Counts {
        created: AtomicUsize::new(0),
        destroyed: AtomicUsize::new(0),
    });
    let (c1, c2) = (counts.clone(), counts.clone());
    let dev = io_device_register(
        IoDeviceKey::unique(),
        name,
        move || {
            c1.created.fetch_add(1, Ordering::SeqCst);
            let t = spdk_io::thread::Thread::current().unwrap();
            Ok(Ctx {
                thread: t.name().to_string(),
                visits: 0,
            })
        },
        move |_ctx: &mut Ctx| {
            c2.destroyed.fetch_add(1, Ordering::SeqCst);
        },
    )
    .unwrap();
    (dev, counts)
}

/// Unregisters `dev` from thread `i` of `h`; the counter returned counts the
/// runs of the unregister's completion (one, once every channel is gone).
pub fn unregister_on(h: &super::Harness, i: usize, dev: &IoDevice<Ctx>) -> Arc<AtomicUsize> {
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    h.on(i, || {
        dev.unregister(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
    })
    .unwrap();
    done
}
