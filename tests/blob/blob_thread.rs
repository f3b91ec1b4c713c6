//! The blobstore on its metadata thread: operations sent from an
//! application thread run on the metadata thread's OS thread, complete by
//! callback on the caller's thread or as `async` calls, and the store
//! unloads cleanly from there.

use spdk_io::blob::{BlobError, BlobOpts, Blobstore, BlobstoreHandle, BsOpts, LoadOpts, RamDev};
use spdk_io::thread::{spawn_local, Thread, ThreadHandle};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// Where an async task leaves its result for the test to pick up.
type Slot<T> = Rc<RefCell<Option<Result<T, BlobError>>>>;

/// A metadata thread polled on its own OS thread until `stop`.
fn md_thread(
    stop: Arc<AtomicBool>,
) -> (
    ThreadHandle,
    std::thread::ThreadId,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::spawn(move || {
        let t = Thread::new("blob_md");
        tx.send((t.handle(), std::thread::current().id())).unwrap();
        while !stop.load(Ordering::Acquire) {
            t.poll(0);
        }
        t.exit();
        while !t.is_exited() {
            t.poll(0);
        }
        t.destroy().unwrap();
    });
    let (h, id) = rx.recv().unwrap();
    (h, id, join)
}

#[test]
fn operations_run_on_the_metadata_thread_by_callback_and_async() {
    let stop = Arc::new(AtomicBool::new(false));
    let (md, md_os_thread, join) = md_thread(stop.clone());
    let app = Thread::new("app");
    let bs = Blobstore::init(RamDev::new(4096, 4096), &BsOpts::default()).unwrap();
    let handle = BlobstoreHandle::start(&md, bs).unwrap();

    // Callback form: the op runs on the md OS thread, the callback on `app`.
    let got = Arc::new(Mutex::new(None));
    let slot = got.clone();
    handle
        .call(
            |bs| Ok((bs.free_cluster_count(), std::thread::current().id())),
            &app.handle(),
            move |r| *slot.lock().unwrap() = Some((r, std::thread::current().id())),
        )
        .unwrap();
    while got.lock().unwrap().is_none() {
        app.poll(0);
    }
    let (r, cb_thread) = got.lock().unwrap().take().unwrap();
    let (free, op_thread) = r.unwrap();
    assert_eq!(free, 15);
    assert_eq!(op_thread, md_os_thread);
    assert_eq!(cb_thread, std::thread::current().id());

    // Async form, from a task on the app thread.
    let out: Slot<(u64, Vec<u8>)> = Rc::default();
    let out2 = out.clone();
    let h = handle.clone();
    let task = app
        .enter(|| {
            spawn_local(async move {
                let r = async {
                    let id = h
                        .run(|bs| {
                            bs.create_blob(&BlobOpts {
                                num_clusters: 1,
                                ..Default::default()
                            })
                        })
                        .await?;
                    h.run(move |bs| {
                        let b = bs.open_blob(id)?;
                        let r = bs.write(&b, 3, &[0x5a; 4096]);
                        bs.close_blob(b)?;
                        r
                    })
                    .await?;
                    let data = h
                        .run(move |bs| {
                            let b = bs.open_blob(id)?;
                            let mut buf = vec![0u8; 4096];
                            let r = bs.read(&b, 3, &mut buf);
                            bs.close_blob(b)?;
                            r.map(|_| buf)
                        })
                        .await?;
                    Ok((id, data))
                }
                .await;
                *out2.borrow_mut() = Some(r);
            })
        })
        .unwrap();
    while !task.is_finished() {
        app.poll(0);
    }
    let (id, data) = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(data, vec![0x5a; 4096]);

    // Errors come back as values; then unload from the md thread.
    let dev: Slot<RamDev> = Rc::default();
    let dev2 = dev.clone();
    let task = app
        .enter(|| {
            spawn_local(async move {
                let e = handle
                    .run(|bs| bs.open_blob(0x1_0000_0009).map(|_| ()))
                    .await;
                assert!(matches!(e, Err(BlobError::NoSuchBlob(_))));
                *dev2.borrow_mut() = Some(handle.unload().await);
            })
        })
        .unwrap();
    while !task.is_finished() {
        app.poll(0);
    }
    let ram = dev.borrow_mut().take().unwrap().unwrap();
    let bs = Blobstore::load(ram, &LoadOpts::default()).unwrap();
    assert_eq!(bs.blob_ids(), vec![id]);
    stop.store(true, Ordering::Release);
    join.join().unwrap();
    app.exit();
    while !app.is_exited() {
        app.poll(0);
    }
    app.destroy().unwrap();
}
