//! Per-core CPU time from `/proc/stat`, as SPDK's `parse_proc_stat` reads
//! it for `framework_get_reactors`: `usr` (user), `sys` (system) and `irq`
//! (irq + softirq), in clock ticks (USER_HZ) since the application started.

use std::sync::Mutex;

/// One core's CPU time in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// Time in user mode.
    pub usr: u64,
    /// Time in kernel mode.
    pub sys: u64,
    /// Time serving interrupts and softirqs.
    pub irq: u64,
}

/// Each core's times when the application started.
static AT_START: Mutex<Vec<(usize, CpuTimes)>> = Mutex::new(Vec::new());

/// Core `core`'s line of `/proc/stat` text (`cpuN user nice system idle
/// iowait irq softirq ...`), or `None` when it has none or it is malformed.
pub(crate) fn parse(text: &str, core: usize) -> Option<CpuTimes> {
    let name = format!("cpu{core}");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(7)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    (f.len() == 7).then(|| CpuTimes {
        usr: f[0],
        sys: f[2],
        irq: f[5] + f[6],
    })
}

fn now(core: usize) -> Option<CpuTimes> {
    parse(&std::fs::read_to_string("/proc/stat").ok()?, core)
}

/// Records each core's times as the application starts.
pub(crate) fn record_start(cores: impl Iterator<Item = usize>) {
    let v: Vec<(usize, CpuTimes)> = cores.filter_map(|c| Some((c, now(c)?))).collect();
    *AT_START.lock().unwrap_or_else(|p| p.into_inner()) = v;
}

/// Core `core`'s times since the start (zeros when `/proc/stat` does not
/// say, as SPDK reports then).
pub(crate) fn since_start(core: usize) -> CpuTimes {
    let start = AT_START
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .find(|(c, _)| *c == core)
        .map(|(_, t)| *t);
    match (start, now(core)) {
        (Some(s), Some(n)) => CpuTimes {
            usr: n.usr.saturating_sub(s.usr),
            sys: n.sys.saturating_sub(s.sys),
            irq: n.irq.saturating_sub(s.irq),
        },
        _ => CpuTimes::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  10 1 20 300 4 5 6 0 0 0\n\
        cpu0 7 1 11 100 2 3 4 0 0 0\n\
        cpu1 3 0 9 200 2 2 2 0 0 0\n\
        intr 12345\n";

    #[test]
    fn a_cores_user_system_and_irq_plus_softirq_are_read_from_its_line() {
        assert_eq!(
            parse(STAT, 1),
            Some(CpuTimes {
                usr: 3,
                sys: 9,
                irq: 4
            })
        );
        assert_eq!(parse(STAT, 0).map(|t| t.irq), Some(7));
    }

    #[test]
    fn a_missing_core_or_a_short_line_gives_nothing() {
        assert_eq!(parse(STAT, 2), None);
        assert_eq!(parse("cpu0 1 2 3\n", 0), None);
        assert_eq!(parse("cpu0 1 x 3 4 5 6 7\n", 0), None);
    }

    #[test]
    fn the_times_since_start_grow_from_zero() {
        record_start([0usize].into_iter());
        let t = since_start(0);
        let later = since_start(0);
        assert!(later.usr >= t.usr && later.sys >= t.sys && later.irq >= t.irq);
        assert_eq!(since_start(usize::MAX), CpuTimes::default());
    }
}
