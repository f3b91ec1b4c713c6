//! Changing a registered bdev in place: its size
//! (`spdk_bdev_notify_blockcnt_change`, with a [`BdevEvent::Resize`] to
//! every open descriptor) and its aliases (`spdk_bdev_alias_add` /
//! `spdk_bdev_alias_del`). Modules whose devices change under their users
//! (an lvol resized or renamed while open) call these.

use super::device::Bdev;
use super::{registry, BdevError, BdevEvent, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Bdev {
    /// The bdev is now `num_blocks` blocks long
    /// (`spdk_bdev_notify_blockcnt_change`): I/O is checked against the
    /// new size from now on, and every open descriptor's event callback
    /// gets [`BdevEvent::Resize`] on the thread that opened it. Growing is
    /// always allowed; shrinking a bdev someone has open is refused
    /// ([`BdevError::ShrinkWhileOpen`], SPDK's `-EBUSY`), as is a size of 0.
    pub fn notify_blockcnt_change(&self, num_blocks: u64) -> Result<()> {
        if num_blocks == 0 {
            return Err(BdevError::InvalidParam(format!(
                "bdev '{}' cannot shrink to 0 blocks",
                self.name()
            )));
        }
        let mut st = self.lock();
        let now = self.blockcnt.load(Ordering::Relaxed);
        if num_blocks == now {
            return Ok(());
        }
        st.descs.retain(|w| w.strong_count() > 0);
        if num_blocks < now && !st.descs.is_empty() {
            return Err(BdevError::ShrinkWhileOpen {
                bdev: self.name().to_string(),
                num_blocks: now,
                new_blocks: num_blocks,
                descs: st.descs.len(),
            });
        }
        self.blockcnt.store(num_blocks, Ordering::Relaxed);
        let descs: Vec<_> = st.descs.iter().filter_map(|w| w.upgrade()).collect();
        drop(st);
        log::info!(
            "bdev '{}': {now} -> {num_blocks} blocks ({:?} to {} descriptor(s))",
            self.name(),
            BdevEvent::Resize,
            descs.len()
        );
        for d in descs {
            d.notify_resize();
        }
        Ok(())
    }

    /// Adds `alias` to the names this bdev can be found and opened by
    /// (`spdk_bdev_alias_add`); [`BdevError::Exists`] when a bdev already
    /// has that name or alias.
    pub fn alias_add(self: &Arc<Self>, alias: &str) -> Result<()> {
        if alias.is_empty() {
            return Err(BdevError::InvalidParam(format!(
                "bdev '{}': an alias cannot be empty",
                self.name()
            )));
        }
        registry::add_alias(self, alias)
    }

    /// Removes `alias` from this bdev's names (`spdk_bdev_alias_del`);
    /// [`BdevError::NotFound`] when it has no such alias.
    pub fn alias_del(self: &Arc<Self>, alias: &str) -> Result<()> {
        if registry::del_alias(self, alias) {
            Ok(())
        } else {
            Err(BdevError::NotFound(format!(
                "alias '{alias}' of bdev '{}'",
                self.name()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::null::{create, NullOpts};
    use super::super::{get_by_name, open, open_ext, BdevError, BdevEvent};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn a_bdev_grows_under_an_open_descriptor_and_shrinks_only_when_closed() {
        let b = create(NullOpts::new("ResizeNull0", 64, 512)).unwrap();
        let events = Arc::new(AtomicUsize::new(0));
        let e = events.clone();
        // Opened outside any thread: the event is delivered in the call.
        let d = open_ext("ResizeNull0", false, move |ev, _| {
            if ev == BdevEvent::Resize {
                e.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
        b.notify_blockcnt_change(128).unwrap();
        assert_eq!((d.bdev().num_blocks(), b.props().num_blocks), (128, 128));
        assert_eq!(events.load(Ordering::SeqCst), 1);
        b.notify_blockcnt_change(128).unwrap();
        assert_eq!(events.load(Ordering::SeqCst), 1, "the same size: no event");
        let e = b.notify_blockcnt_change(32).unwrap_err();
        assert!(matches!(e, BdevError::ShrinkWhileOpen { .. }), "{e}");
        assert_eq!(b.num_blocks(), 128);
        assert!(b.notify_blockcnt_change(0).is_err());
        drop(d);
        b.notify_blockcnt_change(32).unwrap();
        assert_eq!(b.num_blocks(), 32);
        b.unregister();
    }

    #[test]
    fn an_alias_added_finds_the_bdev_and_one_deleted_no_longer_does() {
        let b = create(NullOpts::new("AliasNull0", 8, 512)).unwrap();
        let other = create(NullOpts::new("AliasNull1", 8, 512)).unwrap();
        b.alias_add("alias/one").unwrap();
        assert_eq!(b.aliases(), ["alias/one"]);
        assert_eq!(
            open("alias/one", false).unwrap().bdev().name(),
            "AliasNull0"
        );
        assert_eq!(
            other.alias_add("alias/one").unwrap_err(),
            BdevError::Exists("alias/one".into())
        );
        assert_eq!(
            b.alias_add("AliasNull1").unwrap_err(),
            BdevError::Exists("AliasNull1".into())
        );
        b.alias_del("alias/one").unwrap();
        assert!(get_by_name("alias/one").is_none());
        assert!(matches!(
            b.alias_del("alias/one"),
            Err(BdevError::NotFound(_))
        ));
        assert!(b.aliases().is_empty());
        b.unregister();
        other.unregister();
    }
}
