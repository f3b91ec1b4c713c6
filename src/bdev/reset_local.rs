//! The state a bdev reset keeps: on the bdev, whether one runs and which
//! resets wait for it (SPDK's `reset_in_progress` and `queued_resets`); on
//! the channel that started it, its phase; on every channel with a reset
//! pending, a reference to itself, so the channel lives until its resets
//! complete (SPDK's `ch_ref`). What the walks do with it is in `reset`.

use super::io::IoId;
use super::per_thread::ThreadChannels;
use crate::thread::{ChannelIter, ThreadHandle};
use std::any::Any;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Instant;

/// A reset asked for while another ran: it completes with that one's status.
pub(crate) struct Waiting {
    /// The thread of its channel.
    pub home: ThreadHandle,
    /// Its channel's number.
    pub chan: u64,
    /// Its request.
    pub id: IoId,
}

/// A bdev's resets.
#[derive(Default)]
pub(crate) struct ResetTable {
    /// A reset runs: its walks froze (or are freezing, or thawing) every
    /// channel.
    pub running: bool,
    /// Resets asked for meanwhile, in order.
    pub waiting: Vec<Waiting>,
}

/// Where the running reset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// The walk freezing every channel runs.
    Freezing,
    /// Waiting for the I/O outstanding on every channel to drain, until
    /// `deadline`; the next check walk starts at `next_check` (`None`:
    /// one runs).
    Draining {
        deadline: Instant,
        next_check: Option<Instant>,
    },
    /// The walk asking every module channel to give back what it holds runs.
    Aborting,
    /// That walk is done: the channel's next poll hands the reset to the
    /// module (not the walk's completion, which may run inside a call into
    /// the module).
    Submit,
    /// With the module, which must complete it by `deadline` (if any).
    InModule { deadline: Option<Instant> },
    /// The walk thawing every channel runs.
    Thawing,
}

/// The reset a channel started and drives.
pub(crate) struct Run {
    /// Its request.
    pub id: IoId,
    pub phase: Phase,
}

/// A channel's reset state (touched only on its thread).
#[derive(Default)]
pub(crate) struct ResetLocal {
    /// The reset this channel drives, if any.
    pub run: RefCell<Option<Run>>,
    /// One reference to the channel itself per reset of it not completed
    /// yet (type-erased, so this file sits below the channel).
    pub holds: RefCell<Vec<Rc<dyn Any>>>,
    /// A walk asking module channels to give back what they hold, stopped
    /// here because this channel's module was busy (the visit ran inside a
    /// call into it): the channels still to ask, then the walk to go on.
    pub parked: RefCell<Option<Parked>>,
}

/// A parked abort walk: the channels of the thread still to ask, and the
/// walk's cursor.
pub(crate) type Parked = (Vec<Weak<dyn Any>>, ChannelIter<ThreadChannels>);
