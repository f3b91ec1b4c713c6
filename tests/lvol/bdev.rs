//! The lvol bdev module: lvstores on malloc and file bdevs, lvols as bdevs
//! named by UUID with the alias `lvs/lvol`, I/O through the bdev layer
//! checked at every step of create / snapshot / clone / resize / delete,
//! and examine bringing every lvol back when its base bdev reappears.

use crate::lvol_common::{pattern, run};
use spdk_io::bdev::{self, malloc, IoBuf, IoType};
use spdk_io::blob::BlobClearMethod;
use spdk_io::lvol::vbdev::{self, LvsSelector};
use spdk_io::lvol::LvsOpts;

const MIB: u64 = 1 << 20;

pub(crate) fn setup() {
    spdk_io::env::init_once(spdk_io::env::EnvOpts::no_huge()).expect("env (no_huge)");
    bdev::init().unwrap();
    vbdev::register();
}

pub(crate) fn by_name(n: &str) -> LvsSelector {
    LvsSelector {
        uuid: None,
        lvs_name: Some(n.into()),
    }
}

pub(crate) fn opts(name: &str) -> LvsOpts {
    let mut o = LvsOpts::new(name);
    o.cluster_sz = MIB as u32;
    o
}

async fn write(name: &str, off: u64, data: &[u8]) {
    let d = bdev::open(name, true).unwrap();
    let ch = d.get_io_channel().unwrap();
    let bl = d.bdev().block_size() as u64;
    let mut b = IoBuf::new(data.len());
    b.copy_from_slice(data);
    d.write_blocks_async(&ch, b, off / bl, data.len() as u64 / bl)
        .await
        .unwrap();
}

async fn read(name: &str, off: u64, len: usize) -> Vec<u8> {
    let d = bdev::open(name, false).unwrap();
    let ch = d.get_io_channel().unwrap();
    let bl = d.bdev().block_size() as u64;
    let b = d
        .read_blocks_async(&ch, IoBuf::new(len), off / bl, len as u64 / bl)
        .await
        .unwrap();
    b.to_vec()
}

pub(crate) async fn expect(name: &str, off: u64, want: &[u8]) {
    assert!(read(name, off, want.len()).await == want, "{name} at {off}");
}

#[test]
fn lvols_on_a_malloc_bdev_are_bdevs_that_keep_their_data_through_snapshot_clone_resize_and_delete()
{
    setup();
    malloc::create(malloc::MallocOpts::new("LvolMalloc0", 64 * MIB / 512, 512)).unwrap();
    run(async {
        let s = vbdev::create_lvstore("LvolMalloc0", &opts("lvs_m"))
            .await
            .unwrap();
        assert_eq!(
            bdev::get_by_name("LvolMalloc0")
                .unwrap()
                .claimed_by()
                .as_deref(),
            Some("lvol")
        );
        let sel = by_name("lvs_m");
        let thick = vbdev::create(&sel, "thick", 2, false, BlobClearMethod::Default)
            .await
            .unwrap();
        let thin = vbdev::create(&sel, "thin", 4, true, BlobClearMethod::Default)
            .await
            .unwrap();
        // Named by UUID, alias lvs/lvol, SPDK's product name and size.
        let b = bdev::get_by_name("lvs_m/thick").unwrap();
        assert_eq!(b.name(), thick);
        assert_eq!(b.uuid().to_string(), thick);
        assert_eq!(b.aliases(), ["lvs_m/thick"]);
        assert_eq!(b.product_name(), "Logical Volume");
        assert_eq!((b.block_size(), b.num_blocks()), (512, 2 * MIB / 512));
        assert_eq!(bdev::get_by_name(&thin).unwrap().aliases(), ["lvs_m/thin"]);
        let info = b.info_json();
        assert_eq!(info["driver_specific"]["lvol"]["base_bdev"], "LvolMalloc0");
        assert_eq!(info["driver_specific"]["lvol"]["thin_provision"], false);
        assert_eq!(
            info["driver_specific"]["lvol"]["lvol_store_uuid"],
            s.lvs.uuid().to_string()
        );

        let a = pattern("thin#1", 0, 8192);
        write("lvs_m/thin", 0, &a).await;
        expect("lvs_m/thin", 0, &a).await;
        expect("lvs_m/thin", MIB, &[0u8; 4096]).await;
        let t = pattern("thick#1", MIB - 512, 4096);
        write(&thick, MIB - 512, &t).await;
        expect("lvs_m/thick", MIB - 512, &t).await;

        let snap = vbdev::snapshot("lvs_m/thin", "snap").await.unwrap();
        assert_eq!(bdev::get_by_name(&snap).unwrap().aliases(), ["lvs_m/snap"]);
        let sb = bdev::get_by_name("lvs_m/snap").unwrap();
        assert!(
            !sb.io_type_supported(IoType::Write),
            "a snapshot takes no writes"
        );
        assert_eq!(
            sb.info_json()["driver_specific"]["lvol"]["clones"],
            serde_json::json!(["thin"])
        );
        let c = pattern("thin#2", 512, 512);
        write("lvs_m/thin", 512, &c).await;
        expect("lvs_m/thin", 512, &c).await;
        expect("lvs_m/snap", 0, &a).await;
        let info = bdev::get_by_name("lvs_m/thin").unwrap().info_json();
        assert_eq!(info["driver_specific"]["lvol"]["base_snapshot"], "snap");
        assert_eq!(info["driver_specific"]["lvol"]["clone"], true);

        vbdev::clone("lvs_m/snap", "clone").await.unwrap();
        expect("lvs_m/clone", 0, &a).await;
        let d = pattern("clone#1", 3 * MIB, 1024);
        write("lvs_m/clone", 3 * MIB, &d).await;
        expect("lvs_m/clone", 3 * MIB, &d).await;

        // Resize and rename show in the bdev.
        vbdev::resize("lvs_m/thick", 3).await.unwrap();
        assert_eq!(
            bdev::get_by_name("lvs_m/thick").unwrap().num_blocks(),
            3 * MIB / 512
        );
        expect("lvs_m/thick", MIB - 512, &t).await;
        vbdev::rename("lvs_m/thick", "thick2").await.unwrap();
        assert!(bdev::get_by_name("lvs_m/thick").is_none());
        assert_eq!(bdev::get_by_name("lvs_m/thick2").unwrap().name(), thick);
        vbdev::set_read_only("lvs_m/thick2").await.unwrap();
        assert!(!bdev::get_by_name(&thick)
            .unwrap()
            .io_type_supported(IoType::Write));

        // A snapshot with two clones is refused (-EPERM) and keeps its bdev.
        let e = vbdev::delete("lvs_m/snap").await.unwrap_err();
        assert_eq!(e.errno(), libc::EPERM);
        assert!(bdev::get_by_name("lvs_m/snap").is_some());
        // The clone goes, then the snapshot merges into its last clone.
        vbdev::delete("lvs_m/clone").await.unwrap();
        vbdev::delete("lvs_m/snap").await.unwrap();
        assert!(bdev::get_by_name(&snap).is_none());
        expect("lvs_m/thin", 0, &a[..512]).await;
        expect("lvs_m/thin", 512, &c).await;

        // Shrinking a bdev someone has open is refused (growing one is
        // not: see tests/lvol/open.rs).
        let held = bdev::open("lvs_m/thin", false).unwrap();
        let e = vbdev::resize("lvs_m/thin", 1).await.unwrap_err();
        assert_eq!(e.errno(), libc::EBUSY, "{e}");
        drop(held);

        vbdev::delete_lvstore(&sel).await.unwrap();
        assert!(bdev::get_by_name(&thin).is_none());
        assert!(bdev::get_by_name("LvolMalloc0")
            .unwrap()
            .claimed_by()
            .is_none());
        assert!(vbdev::lvstores().iter().all(|x| x.lvs.name() != "lvs_m"));
    });
}

#[test]
fn an_lvstore_on_a_file_bdev_comes_back_with_every_lvol_when_the_bdev_is_registered_again() {
    setup();
    let path = std::env::temp_dir().join(format!("spdk-io-lvol-bdev-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .set_len(32 * MIB)
        .unwrap();
    let cfg = |name: &str| {
        serde_json::json!({"subsystems": [{"subsystem": "bdev", "config": [
            {"method": "bdev_aio_create", "params": {"name": name, "filename": path, "block_size": 4096}}
        ]}]})
        .to_string()
    };
    run(async {
        bdev::load_config(&cfg("LvolAio0")).unwrap();
        vbdev::examined().await;
        vbdev::create_lvstore("LvolAio0", &opts("lvs_f"))
            .await
            .unwrap();
        let sel = by_name("lvs_f");
        let v = vbdev::create(&sel, "v", 4, true, BlobClearMethod::Default)
            .await
            .unwrap();
        let w = pattern("v#1", 2 * MIB, 8192);
        write("lvs_f/v", 2 * MIB, &w).await;
        let snap = vbdev::snapshot("lvs_f/v", "s").await.unwrap();
        let k = vbdev::create(&sel, "k", 1, false, BlobClearMethod::Default)
            .await
            .unwrap();
        write("lvs_f/k", 0, &pattern("k#1", 0, 4096)).await;
        let uuid = vbdev::lvstore(&sel).unwrap().lvs.uuid();

        vbdev::unload_lvstore(&sel).await.unwrap();
        assert!(bdev::get_by_name(&v).is_none());
        bdev::get_by_name("LvolAio0").unwrap().unregister();

        // The same file as a new bdev: examine finds the store by itself.
        bdev::load_config(&cfg("LvolAio1")).unwrap();
        vbdev::examined().await;
        let s = vbdev::lvstore(&sel).expect("examine brought the store back");
        assert_eq!(s.lvs.uuid(), uuid);
        assert_eq!(s.base, "LvolAio1");
        for (alias, name) in [("lvs_f/v", &v), ("lvs_f/s", &snap), ("lvs_f/k", &k)] {
            let b = bdev::get_by_name(alias).unwrap_or_else(|| panic!("{alias} is back"));
            assert_eq!(b.name(), name.as_str());
        }
        assert_eq!(
            bdev::get_by_name("lvs_f/v").unwrap().num_blocks(),
            4 * MIB / 4096
        );
        let info = bdev::get_by_name("lvs_f/v").unwrap().info_json();
        assert_eq!(info["driver_specific"]["lvol"]["base_snapshot"], "s");
        expect("lvs_f/v", 2 * MIB, &w).await;
        expect("lvs_f/s", 2 * MIB, &w).await;
        expect("lvs_f/k", 0, &pattern("k#1", 0, 4096)).await;
        vbdev::delete_lvstore(&sel).await.unwrap();
        bdev::get_by_name("LvolAio1").unwrap().unregister();
    });
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn removing_the_base_bdev_unloads_its_lvstore_and_unregisters_the_lvols() {
    setup();
    malloc::create(malloc::MallocOpts::new("LvolMalloc1", 16 * MIB / 512, 512)).unwrap();
    run(async {
        vbdev::create_lvstore("LvolMalloc1", &opts("lvs_gone"))
            .await
            .unwrap();
        let v = vbdev::create(&by_name("lvs_gone"), "v", 1, true, BlobClearMethod::Default)
            .await
            .unwrap();
        assert!(bdev::get_by_name(&v).is_some());
        bdev::get_by_name("LvolMalloc1").unwrap().unregister();
        let start = std::time::Instant::now();
        while vbdev::lvstore(&by_name("lvs_gone")).is_ok()
            && start.elapsed() < std::time::Duration::from_secs(10)
        {
            spdk_io::thread::yield_now().await;
        }
        assert!(
            vbdev::lvstore(&by_name("lvs_gone")).is_err(),
            "the store is gone"
        );
        assert!(bdev::get_by_name(&v).is_none(), "its lvol bdev is gone");
        assert!(bdev::get_by_name("lvs_gone/v").is_none());
    });
}

#[test]
fn an_lvstore_look_up_answers_while_lvol_io_is_in_flight() {
    use spdk_io::bdev::IoCompletion;
    use spdk_io::thread::{spawn_local, Thread};
    use std::cell::Cell;
    use std::rc::Rc;
    setup();
    malloc::create(malloc::MallocOpts::new("LvolQueryMalloc", 4096, 4096)).unwrap();
    // The metadata thread and an I/O thread, both polled from here.
    let md = Thread::new("lvol-md");
    let io = Thread::new("lvol-io");
    let poll_until = |t: &Thread, done: &dyn Fn() -> bool, what: &str| {
        for _ in 0..1_000_000 {
            if done() {
                return;
            }
            t.poll(0);
        }
        panic!("{what}: no end after 1000000 polls");
    };
    let made = md
        .enter(|| {
            spawn_local(async {
                let s = vbdev::create_lvstore("LvolQueryMalloc", &opts("lvs_query"))
                    .await
                    .unwrap();
                let n = vbdev::create(&by_name("lvs_query"), "v", 4, false, BlobClearMethod::None)
                    .await
                    .unwrap();
                (s, n)
            })
        })
        .unwrap();
    poll_until(&md, &|| made.is_finished(), "create");
    let (s, name) = made.try_take().unwrap().unwrap();
    let d = bdev::open(&name, true).unwrap();
    let ch = io.enter(|| d.get_io_channel()).unwrap();
    let done = Rc::new(Cell::new(0u32));
    let write = |lba: u64| {
        let c = done.clone();
        let cb = Box::new(move |r: IoCompletion| {
            assert!(r.success(), "lvol write at block {lba}");
            c.set(c.get() + 1)
        });
        io.enter(|| d.write_blocks(&ch, IoBuf::new(4096), lba, 1, cb))
            .map_err(|r| r.error)
            .unwrap();
    };
    // The first write makes the I/O thread's blob channel (through the
    // metadata thread); the second stays in flight while the I/O thread is
    // not polled.
    write(0);
    for _ in 0..1_000_000 {
        if done.get() == 1 {
            break;
        }
        md.poll(0);
        io.poll(0);
    }
    assert_eq!(done.get(), 1, "first write");
    write(1);
    let lvs = s.lvs.clone();
    let space = md.enter(|| spawn_local(async move { lvs.space().await.unwrap() }));
    let space = space.unwrap();
    poll_until(
        &md,
        &|| space.is_finished(),
        "a look-up beside I/O in flight",
    );
    assert!(space.try_take().unwrap().unwrap().free_clusters > 0);
    assert_eq!(done.get(), 1, "the second write was still in flight");
    poll_until(&io, &|| done.get() == 2, "second write");
    drop(ch);
    drop(d);
    let gone =
        md.enter(|| spawn_local(async { vbdev::delete_lvstore(&by_name("lvs_query")).await }));
    let gone = gone.unwrap();
    poll_until(&md, &|| gone.is_finished(), "delete");
    gone.try_take().unwrap().unwrap().unwrap();
    for t in [io, md] {
        t.shutdown().unwrap();
        t.destroy().unwrap();
    }
}

/// `bufs` cut from `data` at `cuts` (byte offsets).
fn pieces(data: &[u8], cuts: &[usize]) -> Vec<IoBuf> {
    let mut out = Vec::new();
    let mut at = 0;
    for &end in cuts.iter().chain([data.len()].iter()) {
        let mut b = IoBuf::new(end - at);
        b.copy_from_slice(&data[at..end]);
        out.push(b);
        at = end;
    }
    out
}

#[test]
fn vectored_lvol_reads_and_writes_keep_their_pieces_in_order_across_a_cluster_boundary() {
    setup();
    malloc::create(malloc::MallocOpts::new(
        "LvolMallocV",
        16 * MIB / 4096,
        4096,
    ))
    .unwrap();
    run(async {
        vbdev::create_lvstore("LvolMallocV", &opts("lvs_v"))
            .await
            .unwrap();
        let sel = by_name("lvs_v");
        for (name, thin) in [("thick", false), ("thin", true)] {
            vbdev::create(&sel, name, 4, thin, BlobClearMethod::Default)
                .await
                .unwrap();
            let name = format!("lvs_v/{name}");
            let d = bdev::open(&name, true).unwrap();
            let ch = d.get_io_channel().unwrap();
            // Round 0 allocates the thin lvol's clusters; round 1 finds them.
            for round in 0..2u64 {
                let off = MIB - 8192 + round * 4096;
                let data = pattern(&format!("{name}#{round}"), off, 16384);
                let w = pieces(&data, &[4096, 12288]);
                d.submit_async(&ch, IoType::Write, off / 4096, 4, bdev::IoData::Vec(w))
                    .await
                    .unwrap();
                let r = vec![IoBuf::new(8192), IoBuf::new(4096), IoBuf::new(4096)];
                let back = d
                    .submit_async(&ch, IoType::Read, off / 4096, 4, bdev::IoData::Vec(r))
                    .await
                    .unwrap()
                    .into_bufs();
                let lens: Vec<usize> = back.iter().map(|b| b.len()).collect();
                assert_eq!(
                    lens,
                    [8192, 4096, 4096],
                    "{name}: the read's pieces came back"
                );
                let got: Vec<u8> = back.iter().flat_map(|b| b.iter().copied()).collect();
                assert!(
                    got == data,
                    "{name} round {round}: vectored read of a vectored write"
                );
                expect(&name, off, &data).await;
            }
        }
    });
}
