//! What a thread holds, for listings (SPDK's `thread_get_pollers` and
//! `thread_get_io_channels`): its pollers with their counters and its
//! io_channels with their reference counts.

use super::poller_set::{Entry, State};
use super::Thread;

/// What state a poller is in, as SPDK's `thread_get_pollers` groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollerKind {
    /// Untimed and active: runs on every poll.
    Active,
    /// Timed and active: runs every `period_us`.
    Timed,
    /// Paused (or pausing).
    Paused,
}

/// One poller of a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollerInfo {
    /// The name it was registered with.
    pub name: String,
    /// Active, timed or paused.
    pub kind: PollerKind,
    /// Its period in microseconds (0: untimed).
    pub period_us: u64,
    /// Runs so far.
    pub run_count: u64,
    /// Runs that reported busy.
    pub busy_count: u64,
}

/// One io_channel of a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoChannelInfo {
    /// The io_device's name.
    pub name: String,
    /// References the thread holds on it.
    pub ref_count: u32,
}

fn info(e: &Entry) -> Option<PollerInfo> {
    let kind = match e.state.get() {
        State::Unregistered => return None,
        State::Paused | State::PausePending => PollerKind::Paused,
        _ if e.period == 0 => PollerKind::Active,
        _ => PollerKind::Timed,
    };
    Some(PollerInfo {
        name: e.name.clone(),
        kind,
        period_us: e.period / 1000,
        run_count: e.run_count.get(),
        busy_count: e.busy_count.get(),
    })
}

impl Thread {
    /// The thread's registered pollers (unregistered ones are left out).
    pub fn pollers(&self) -> Vec<PollerInfo> {
        self.inner
            .pollers
            .entries()
            .iter()
            .filter_map(|e| info(e))
            .collect()
    }

    /// The thread's live io_channels.
    pub fn io_channels(&self) -> Vec<IoChannelInfo> {
        self.inner
            .channels
            .entries()
            .into_iter()
            .map(|(name, ref_count)| IoChannelInfo { name, ref_count })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thread::{io_device_register, poller_register, IoDeviceKey, PollerStatus};

    #[test]
    fn a_thread_lists_its_pollers_by_kind_and_its_channels_with_their_references() {
        let t = Thread::new("introspect");
        let (a, b, c) = t.enter(|| {
            (
                poller_register("busy_one", 0, || PollerStatus::Busy).unwrap(),
                poller_register("every_ms", 1000, || PollerStatus::Idle).unwrap(),
                poller_register("paused", 0, || PollerStatus::Idle).unwrap(),
            )
        });
        c.pause();
        let dev = io_device_register(IoDeviceKey::unique(), "dev_x", || Ok(1u32), |_| {}).unwrap();
        let (ch1, ch2) = t.enter(|| (dev.get_io_channel().unwrap(), dev.get_io_channel().unwrap()));
        t.poll(0);
        let mut p = t.pollers();
        p.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[0].name.as_str(), p[0].kind),
            ("busy_one", PollerKind::Active)
        );
        assert!(p[0].run_count >= 1 && p[0].busy_count == p[0].run_count);
        assert_eq!(
            (p[1].name.as_str(), p[1].kind, p[1].period_us),
            ("every_ms", PollerKind::Timed, 1000)
        );
        assert_eq!(p[2].kind, PollerKind::Paused);
        assert_eq!(
            t.io_channels(),
            vec![IoChannelInfo {
                name: "dev_x".into(),
                ref_count: 2
            }]
        );
        a.unregister();
        assert_eq!(t.pollers().len(), 2);
        b.unregister();
        c.unregister();
        t.enter(|| drop((ch1, ch2)));
        t.enter(|| dev.unregister(|| {})).unwrap();
        t.exit();
        while !t.is_exited() {
            t.poll(0);
        }
        t.destroy().unwrap();
    }
}
