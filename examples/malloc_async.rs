//! A malloc bdev, read and written with `async` on the app thread that
//! `event::start` brings up (and tears down, with the bdev, afterwards).
//!
//! Run: `cargo run --example malloc_async`

use spdk_io::bdev::{
    self,
    malloc::{self, MallocOpts},
    IoBuf,
};
use spdk_io::event::{self, AppOpts};
use spdk_io::thread::spawn_local;
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let opts = AppOpts {
        name: "malloc_async".into(),
        no_huge: true,
        rpc_socket: None,
        ..AppOpts::default()
    };
    let total = event::start(opts, || async {
        malloc::create(MallocOpts::new("Malloc0", 2048, 512))?;
        let desc = bdev::open("Malloc0", true)?;
        // Four writers at once, each a task on this thread sharing its channel.
        let mut tasks = Vec::new();
        for i in 0..4u8 {
            let (desc, ch) = (desc.clone(), desc.get_io_channel()?);
            tasks.push(spawn_local(async move {
                let off = u64::from(i) * 65536;
                desc.write_async(&ch, IoBuf::from_vec(vec![i + 1; 65536]), off)
                    .await?;
                Ok::<_, Box<dyn Error>>(())
            })?);
        }
        for t in tasks {
            t.await??;
        }
        let ch = desc.get_io_channel()?;
        let back = desc.read_async(&ch, IoBuf::new(4 * 65536), 0).await?;
        let sum: u64 = back.to_vec().iter().map(|b| u64::from(*b)).sum();
        Ok::<_, Box<dyn Error>>(sum)
    })??;
    println!(
        "Malloc0: 4 concurrent 64 KiB writes, read back as one 256 KiB read, byte sum {total}"
    );
    let want = 65536 * (1 + 2 + 3 + 4);
    if total == want {
        Ok(())
    } else {
        Err(format!("byte sum {total}, expected {want}").into())
    }
}
