//! The lvol end of the bdev layer's pass-through: a read or write whose
//! blocks are one run of clusters is handed to the base bdev's module
//! channel as the lvol's own request ([`PassThrough`]), with the blob's map
//! entered for it; when the base finishes it, [`Passed`] leaves the map
//! and reports to the lvol's channel. Nothing is allocated per I/O: the
//! entered maps sit in a table by request slot, grown only while the
//! channel's pool is first used.

use crate::bdev::{Completer, IoData, IoId, IoStatus, PassDone};
use crate::blob::channel::Cached;
use std::cell::RefCell;
use std::rc::Rc;

/// The maps entered by the requests in flight at the base, by request slot.
pub(super) struct Entered {
    maps: RefCell<Vec<Option<Rc<Cached>>>>,
}

impl Entered {
    /// An empty table with room for `n` slots.
    pub(super) fn with_capacity(n: usize) -> Rc<Entered> {
        Rc::new(Entered {
            maps: RefCell::new(Vec::with_capacity(n)),
        })
    }

    /// Request `id` entered `m`.
    #[inline]
    pub(super) fn put(&self, id: IoId, m: Rc<Cached>) {
        let i = id.index() as usize;
        let mut t = self.maps.borrow_mut();
        if t.len() <= i {
            t.resize(i + 1, None);
        }
        t[i] = Some(m);
    }

    /// The map request `id` entered, taken out of the table.
    #[inline]
    pub(super) fn take(&self, id: IoId) -> Option<Rc<Cached>> {
        self.maps
            .borrow_mut()
            .get_mut(id.index() as usize)
            .and_then(Option::take)
    }

    /// Leaves the map request `id` entered, if any.
    #[inline]
    pub(super) fn exit(&self, id: IoId) {
        if let Some(m) = self.take(id) {
            m.exit();
        }
    }
}

/// Where the base reports a passed lvol request.
pub(super) struct Passed {
    pub entered: Rc<Entered>,
    pub done: Completer,
}

impl PassDone for Passed {
    fn pass_done(&self, id: IoId, status: IoStatus, data: IoData) {
        self.entered.exit(id);
        let status = match status {
            IoStatus::Success => IoStatus::Success,
            // The base had no resources: the lvol's channel retries it.
            IoStatus::NoMem => IoStatus::NoMem,
            other => {
                log::error!("lvol request {id:?}: the base bdev says {other:?}");
                IoStatus::Failed
            }
        };
        match data {
            IoData::None if status.is_success() => self.done.complete_ok(id),
            IoData::None => self.done.complete(id, status),
            d => self.done.complete_with_data(id, status, d),
        }
    }
}
