//! Subsystems (SPDK's `lib/init/subsystem.c`): the parts of the application
//! that are initialised once the framework starts, in dependency order,
//! and finished in reverse; each may offer methods and write its part of
//! `save_config`.

use super::EventError;
use crate::rpc::Method;
use serde_json::Value;

/// One subsystem.
#[derive(Clone, Copy)]
pub struct Subsystem {
    /// Its name, as SPDK's config files spell it (`"bdev"`).
    pub name: &'static str,
    /// Subsystems that must be initialised before it.
    pub depends_on: &'static [&'static str],
    /// Brings it up (SPDK's `init`).
    pub init: fn() -> Result<(), String>,
    /// Tears it down (SPDK's `fini`): everything it made is released.
    pub fini: fn(),
    /// Its `config` array for `save_config`, or `None` (written as `null`).
    pub config: fn() -> Option<Vec<Value>>,
    /// The methods it registers into the table.
    pub methods: fn() -> Vec<Method>,
}

impl std::fmt::Debug for Subsystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subsystem")
            .field("name", &self.name)
            .field("depends_on", &self.depends_on)
            .finish_non_exhaustive()
    }
}

fn bdev_init() -> Result<(), String> {
    // The lvol module registers into the bdev layer from above, so that
    // every bdev is examined for an lvstore.
    crate::lvol::vbdev::register();
    crate::bdev::init().map_err(|e| e.to_string())
}

/// The bdev layer's methods and the lvol module's (SPDK registers both
/// under the bdev subsystem).
fn bdev_methods() -> Vec<Method> {
    let lvol = crate::lvol::rpc::methods();
    let mut v = crate::bdev::rpc::methods();
    // lvol's bdev_wait_for_examine also waits for its examines.
    v.retain(|m| !lvol.iter().any(|l| l.name == m.name));
    v.extend(lvol);
    v
}

fn bdev_config() -> Option<Vec<Value>> {
    Some(crate::bdev::rpc::config_entries())
}

/// The subsystems this crate has, in registration order.
pub fn builtin() -> Vec<Subsystem> {
    vec![
        Subsystem {
            name: "bdev",
            depends_on: &[],
            init: bdev_init,
            fini: crate::bdev::fini,
            config: bdev_config,
            methods: bdev_methods,
        },
        Subsystem {
            name: crate::nvmf::rpc::SUBSYSTEM,
            depends_on: &["bdev"],
            init: crate::nvmf::rpc::init,
            fini: crate::nvmf::rpc::fini,
            config: crate::nvmf::rpc::config,
            methods: crate::nvmf::rpc::methods,
        },
    ]
}

/// Orders subsystems so that each comes after what it depends on (SPDK's
/// `subsystem_sort`: stable, repeatedly taking the first whose
/// dependencies are placed). Error: a dependency that is not in the list,
/// or a cycle.
pub fn sort(list: Vec<Subsystem>) -> Result<Vec<Subsystem>, EventError> {
    for s in &list {
        if let Some(d) = s
            .depends_on
            .iter()
            .find(|d| !list.iter().any(|x| x.name == **d))
        {
            return Err(EventError::SubsystemDepends {
                name: s.name.into(),
                missing: (*d).into(),
            });
        }
    }
    let mut rest = list;
    let mut sorted: Vec<Subsystem> = Vec::with_capacity(rest.len());
    while !rest.is_empty() {
        let i = rest
            .iter()
            .position(|s| {
                s.depends_on
                    .iter()
                    .all(|d| sorted.iter().any(|x| x.name == *d))
            })
            .ok_or_else(|| EventError::SubsystemDepends {
                name: rest[0].name.into(),
                missing: rest[0].depends_on.join(","),
            })?;
        sorted.push(rest.remove(i));
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &'static str, depends_on: &'static [&'static str]) -> Subsystem {
        Subsystem {
            name,
            depends_on,
            init: || Ok(()),
            fini: || {},
            config: || None,
            methods: Vec::new,
        }
    }

    #[test]
    fn subsystems_are_ordered_after_their_dependencies() {
        let s = sort(vec![
            sub("nvmf", &["bdev", "sock"]),
            sub("bdev", &["accel"]),
            sub("sock", &[]),
            sub("accel", &[]),
        ])
        .unwrap();
        let names: Vec<_> = s.iter().map(|s| s.name).collect();
        assert_eq!(names, ["sock", "accel", "bdev", "nvmf"]);
    }

    #[test]
    fn a_missing_dependency_or_a_cycle_is_refused_by_name() {
        let e = sort(vec![sub("bdev", &["accel"])]).unwrap_err();
        assert!(e.to_string().contains("bdev depends on accel"), "{e}");
        let e = sort(vec![sub("a", &["b"]), sub("b", &["a"])]).unwrap_err();
        assert!(e.to_string().contains("cycle"), "{e}");
    }
}
