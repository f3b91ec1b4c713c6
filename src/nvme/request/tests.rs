//! The request pool's own rules.

use super::*;

fn pool(n: u16) -> RequestPool {
    crate::env::init_once(crate::env::EnvOpts::no_huge()).expect("env");
    RequestPool::new(n, true).expect("pool")
}

#[test]
fn a_recycled_slot_gets_a_new_command_id() {
    let mut p = pool(4);
    let a = p.alloc().unwrap();
    p.release(a);
    let b = p.alloc().unwrap();
    assert_eq!(a & 0x7, b & 0x7, "the LIFO free list reuses the slot");
    assert_ne!(a, b, "but not the command ID");
    assert!(p.check(a).is_none(), "the old ID is refused");
    assert_eq!(p.check(b).map(|l| l.parent), Some(NO_PARENT));
}

#[test]
fn command_ids_never_take_the_value_ffffh() {
    // 255 requests: slots 0..=254 in 8 bits; 256: slots 0..=255 in 9 bits.
    for n in [255u16, 256] {
        let mut p = pool(n);
        for _ in 0..=(u16::MAX as usize >> 7) {
            let cids: Vec<u16> = (0..n).map(|_| p.alloc().unwrap()).collect();
            assert!(!cids.contains(&u16::MAX), "{n} requests used CID FFFFh");
            for c in cids {
                p.release(c);
            }
        }
    }
}

#[test]
fn a_pool_without_generations_uses_slot_indexes() {
    crate::env::init_once(crate::env::EnvOpts::no_huge()).expect("env");
    let mut p = RequestPool::new(3, false).unwrap();
    let a = p.alloc().unwrap();
    p.release(a);
    assert_eq!(p.alloc(), Some(a));
}

#[test]
fn a_split_completes_its_parent_after_the_last_child_with_the_first_error() {
    let mut p = pool(8);
    let parent = p.alloc().unwrap();
    let c1 = p.alloc_child(parent, 0, 2).unwrap().0;
    let c2 = p.alloc_child(parent, 4096, 2).unwrap().0;
    p.set_children(parent, 2);
    let pslot = p.check(c1).unwrap().parent;
    assert!(p.child_done(c1, pslot, Err(NvmeError::QueueFull)).is_none());
    let (done, r) = p.child_done(c2, pslot, Ok(())).unwrap();
    assert_eq!(done, parent);
    assert!(matches!(r, Err(NvmeError::QueueFull)));
    let live = p.check(parent).unwrap();
    assert!(matches!(p.finish(live, &mut IoBuf::None), Finished::Silent));
    assert_eq!(p.free_count(), 8);
}

#[test]
fn an_abandoned_split_frees_the_parent_and_every_child() {
    let mut p = pool(8);
    let keep = p.alloc().unwrap();
    let parent = p.alloc().unwrap();
    p.alloc_child(parent, 0, 2).unwrap();
    p.alloc_child(parent, 512, 2).unwrap();
    p.abandon_split(parent);
    assert_eq!(p.free_count(), 7);
    assert!(p.check(keep).is_some());
}
