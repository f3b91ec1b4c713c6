//! SPDK's logging controls (`lib/log`) over the `log` facade: a print
//! level for stderr, a log level (kept and reported, as SPDK's syslog
//! level), and per-component debug flags (`-L bdev`, `log_set_flag`).
//!
//! Records map to SPDK's levels as error → ERROR, warn → WARNING,
//! info → NOTICE, debug/trace → DEBUG; a DEBUG record prints only when its
//! component's flag is set and the print level is DEBUG, as
//! `SPDK_DEBUGLOG` does. A record's component is the layer in its target
//! (`spdk_io::bdev::nvme` → `bdev`); anything outside the crate is `app`.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Once;

/// SPDK's log levels, from least to most verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// Nothing.
    Disabled = 0,
    /// Failures.
    Error = 1,
    /// Something is off but work goes on.
    Warning = 2,
    /// What a user wants to see by default.
    Notice = 3,
    /// More detail.
    Info = 4,
    /// Developer detail, per component flag.
    Debug = 5,
}

impl Level {
    /// SPDK's name (`"WARNING"`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Disabled => "DISABLED",
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Notice => "NOTICE",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }

    /// Parses a name as SPDK's RPCs accept it (case-insensitive; not "DISABLED").
    pub fn parse(s: &str) -> Option<Level> {
        [
            Level::Error,
            Level::Warning,
            Level::Notice,
            Level::Info,
            Level::Debug,
        ]
        .into_iter()
        .find(|l| l.name().eq_ignore_ascii_case(s))
    }

    fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Disabled,
            1 => Level::Error,
            2 => Level::Warning,
            3 => Level::Notice,
            4 => Level::Info,
            _ => Level::Debug,
        }
    }
}

/// The components that have a debug flag.
pub const FLAGS: &[&str] = &[
    "app", "bdev", "blob", "env", "event", "nvme", "pci", "rpc", "thread",
];

static PRINT_LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static LOG_LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static FLAG_BITS: AtomicU32 = AtomicU32::new(0);

/// The level printed on stderr (SPDK's `spdk_log_get_print_level`).
pub fn print_level() -> Level {
    Level::from_u8(PRINT_LEVEL.load(Ordering::Relaxed))
}

/// Sets the level printed on stderr.
pub fn set_print_level(l: Level) {
    PRINT_LEVEL.store(l as u8, Ordering::Relaxed);
    update_max_level();
}

/// The log level (SPDK's syslog level; kept and reported).
pub fn log_level() -> Level {
    Level::from_u8(LOG_LEVEL.load(Ordering::Relaxed))
}

/// Sets the log level.
pub fn set_log_level(l: Level) {
    LOG_LEVEL.store(l as u8, Ordering::Relaxed);
}

fn flag_bit(name: &str) -> Option<u32> {
    if name == "all" {
        return Some((1u32 << FLAGS.len()) - 1);
    }
    FLAGS.iter().position(|f| *f == name).map(|i| 1u32 << i)
}

/// Sets a component's debug flag (`"all"` sets every one). Returns false
/// for an unknown name.
pub fn set_flag(name: &str) -> bool {
    let Some(bit) = flag_bit(name) else {
        return false;
    };
    FLAG_BITS.fetch_or(bit, Ordering::Relaxed);
    update_max_level();
    true
}

/// Clears a component's debug flag (`"all"` clears every one). Returns
/// false for an unknown name.
pub fn clear_flag(name: &str) -> bool {
    let Some(bit) = flag_bit(name) else {
        return false;
    };
    FLAG_BITS.fetch_and(!bit, Ordering::Relaxed);
    update_max_level();
    true
}

/// Every flag and whether it is set.
pub fn flags() -> Vec<(&'static str, bool)> {
    let bits = FLAG_BITS.load(Ordering::Relaxed);
    FLAGS
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, bits & (1 << i) != 0))
        .collect()
}

/// The component of a record's target.
fn component(target: &str) -> &str {
    let mut parts = target.split("::");
    match (parts.next(), parts.next()) {
        (Some("spdk_io"), Some(layer)) if FLAGS.contains(&layer) => layer,
        _ => "app",
    }
}

fn spdk_level(l: log::Level) -> Level {
    match l {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Notice,
        log::Level::Debug | log::Level::Trace => Level::Debug,
    }
}

/// Whether a record of this level and target is printed.
pub fn enabled(level: log::Level, target: &str) -> bool {
    let l = spdk_level(level);
    if l > print_level() {
        return false;
    }
    l < Level::Debug
        || flag_bit(component(target)).is_some_and(|b| FLAG_BITS.load(Ordering::Relaxed) & b != 0)
}

/// Lets the facade skip debug records cheaply unless a flag could print them.
fn update_max_level() {
    let max = if FLAG_BITS.load(Ordering::Relaxed) != 0 && print_level() == Level::Debug {
        log::LevelFilter::Trace
    } else {
        log::LevelFilter::Info
    };
    log::set_max_level(max);
}

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        enabled(m.level(), m.target())
    }

    fn log(&self, r: &log::Record<'_>) {
        if !enabled(r.level(), r.target()) {
            return;
        }
        let t = crate::thread::ticks();
        eprintln!(
            "[{}.{:06}] {}: *{}*: {}",
            t / 1_000_000_000,
            (t / 1000) % 1_000_000,
            r.target(),
            spdk_level(r.level()).name(),
            r.args()
        );
    }

    fn flush(&self) {}
}

/// Installs this logger as the `log` facade's (once; a program that set
/// its own logger keeps it, and then only the levels here are tracked).
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if log::set_logger(&Logger).is_err() {
            return;
        }
        update_max_level();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_records_print_only_with_their_flag_and_the_debug_print_level() {
        assert_eq!(Level::parse("warning"), Some(Level::Warning));
        assert_eq!(Level::parse("disabled"), None);
        assert!(enabled(log::Level::Error, "spdk_io::bdev"));
        assert!(!enabled(log::Level::Debug, "spdk_io::blob::md"));
        set_print_level(Level::Debug);
        assert!(set_flag("blob"));
        assert!(enabled(log::Level::Debug, "spdk_io::blob::md"));
        assert!(!enabled(log::Level::Debug, "spdk_io::nvme::qpair"));
        assert!(!set_flag("nonesuch"));
        assert!(flags().contains(&("blob", true)));
        assert!(clear_flag("all"));
        assert!(!enabled(log::Level::Debug, "spdk_io::blob::md"));
        set_print_level(Level::Notice);
    }
}
