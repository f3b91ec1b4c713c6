//! `spdk-io setup`: what SPDK's scripts/setup.sh does. Reserve hugepages and
//! bind NVMe functions to a user-space driver (`config`, the default), give
//! them back to the kernel (`reset`), or show the state of both (`status`).

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::{Args, Subcommand};
use spdk_io::pci::{self, PciAddress, PciFunction, Sysfs};

#[path = "setup_driver.rs"]
mod driver;
#[path = "setup_hugepages.rs"]
mod hugepages;
#[path = "setup_status.rs"]
mod status;

/// Options of `spdk-io setup`; each flag overrides the setup.sh environment variable named.
#[derive(Args, Debug)]
pub struct SetupArgs {
    #[command(subcommand)]
    action: Option<SetupAction>,
    /// MiB of 2 MiB hugepages to reserve [env HUGEMEM; default 2048].
    #[arg(long, global = true)]
    hugemem: Option<u64>,
    /// Only these functions (space- or comma-separated BDFs) [env PCI_ALLOWED].
    #[arg(long, global = true)]
    pci_allowed: Option<String>,
    /// Never these functions [env PCI_BLOCKED].
    #[arg(long, global = true)]
    pci_blocked: Option<String>,
    /// Bind to this driver instead of the automatic choice [env DRIVER_OVERRIDE].
    #[arg(long, global = true)]
    driver_override: Option<String>,
    /// On reset, also release every hugepage [env CLEAR_HUGE=yes].
    #[arg(long, global = true)]
    clear_huge: bool,
}

#[derive(Subcommand, Debug, Clone, Copy, PartialEq, Eq)]
enum SetupAction {
    /// Reserve hugepages and bind NVMe functions to vfio-pci (or uio_pci_generic). The default.
    Config,
    /// Give NVMe functions back to the kernel nvme driver.
    Reset,
    /// Print NVMe functions and hugepages.
    Status,
}

/// Which functions to touch: PCI_ALLOWED / PCI_BLOCKED as setup.sh reads them.
#[derive(Debug, Default)]
struct Filter {
    allowed: Vec<PciAddress>,
    blocked: Vec<PciAddress>,
}

fn parse_list(s: &str) -> Result<Vec<PciAddress>, String> {
    s.split([' ', ',', '\t', '\n'])
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<PciAddress>().map_err(|e| e.to_string()))
        .collect()
}

impl Filter {
    fn wants(&self, a: PciAddress) -> bool {
        (self.allowed.is_empty() || self.allowed.contains(&a)) && !self.blocked.contains(&a)
    }
}

fn flag_or_env(flag: &Option<String>, var: &str) -> Option<String> {
    flag.clone()
        .or_else(|| std::env::var(var).ok().filter(|v| !v.is_empty()))
}

/// Runs `spdk-io setup`.
pub fn run(args: SetupArgs) -> ExitCode {
    match try_run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("spdk-io setup: {e}");
            ExitCode::FAILURE
        }
    }
}

fn try_run(args: SetupArgs) -> Result<ExitCode, String> {
    let filter = Filter {
        allowed: parse_list(&flag_or_env(&args.pci_allowed, "PCI_ALLOWED").unwrap_or_default())?,
        blocked: parse_list(&flag_or_env(&args.pci_blocked, "PCI_BLOCKED").unwrap_or_default())?,
    };
    let sysfs = Sysfs::default();
    let sys = Path::new("/sys");
    let ok = match args.action.unwrap_or(SetupAction::Config) {
        SetupAction::Status => {
            print!(
                "{}",
                status::render(&sysfs, sys).map_err(|e| e.to_string())?
            );
            true
        }
        SetupAction::Config => {
            let mib = match args.hugemem {
                Some(m) => m,
                None => match std::env::var("HUGEMEM") {
                    Ok(v) => v
                        .trim()
                        .parse()
                        .map_err(|_| format!("HUGEMEM={v:?} is not a number of MiB"))?,
                    Err(_) => 2048,
                },
            };
            // The driver first: a wrong DRIVER_OVERRIDE changes nothing.
            let driver = match flag_or_env(&args.driver_override, "DRIVER_OVERRIDE") {
                Some(d) => driver::require(&sysfs, &d, &driver::modprobe)?,
                None => driver::pick(&sysfs, status::iommu_groups(sys) > 0, &driver::modprobe)?,
            };
            let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
            let avail = hugepages::mem_available_kb(&meminfo);
            println!(
                "{}",
                hugepages::reserve(&mut hugepages::SysfsPool::new(sys), mib, avail)?
            );
            mount_hugetlbfs();
            report(bind_all(&sysfs, &filter, &driver)?)
        }
        SetupAction::Reset => {
            let mut ok = report(reset_all(&sysfs, &filter, &driver::modprobe)?);
            let clear = args.clear_huge || std::env::var("CLEAR_HUGE").is_ok_and(|v| v == "yes");
            if clear {
                let mut pool = hugepages::SysfsPool::new(sys);
                match hugepages::HugepagePool::set(&mut pool, 0) {
                    Ok(()) => println!("hugepages: all released"),
                    Err(e) => {
                        eprintln!("hugepages not released: {e}");
                        ok = false;
                    }
                }
            }
            ok
        }
    };
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Mounts hugetlbfs at /dev/hugepages if none is mounted, saying so.
fn mount_hugetlbfs() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
    {
        return;
    }
    let _ = std::fs::create_dir_all("/dev/hugepages");
    let ok = Command::new("mount")
        .args([
            "-t",
            "hugetlbfs",
            "-o",
            "pagesize=2M",
            "nodev",
            "/dev/hugepages",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        println!("hugetlbfs mounted at /dev/hugepages");
    } else {
        eprintln!("mounting hugetlbfs at /dev/hugepages failed: mount it by hand (spdk-io also works without it, through MAP_HUGETLB)");
    }
}

/// What binding did: a line per function (on stderr for a failure), and
/// how many failed.
#[derive(Debug, Default)]
struct Outcome {
    lines: Vec<(bool, String)>,
    failed: usize,
}

impl Outcome {
    fn push(&mut self, ok: bool, line: String) {
        self.failed += usize::from(!ok);
        self.lines.push((ok, line));
    }
}

/// Prints an outcome; whether nothing failed.
fn report(o: Outcome) -> bool {
    for (ok, l) in &o.lines {
        if *ok {
            println!("{l}");
        } else {
            eprintln!("{l}");
        }
    }
    o.failed == 0
}

fn nvme_functions(sysfs: &Sysfs, filter: &Filter) -> Result<Vec<PciFunction>, String> {
    let all = sysfs.nvme_functions().map_err(|e| e.to_string())?;
    for a in &filter.allowed {
        if !all.iter().any(|f| f.address == *a) {
            eprintln!("{a}: in PCI_ALLOWED but not an NVMe function here");
        }
    }
    Ok(all
        .into_iter()
        .filter(|f| filter.wants(f.address))
        .collect())
}

/// "nothing to do" when no function is selected, naming why.
fn none_found(sysfs: &Sysfs, filter: &Filter, what: &str) -> Result<Option<Outcome>, String> {
    if !nvme_functions(sysfs, filter)?.is_empty() {
        return Ok(None);
    }
    let all = sysfs.nvme_functions().map_err(|e| e.to_string())?.len();
    let why = if all == 0 {
        "no NVMe function on this machine".to_string()
    } else {
        format!("none of the {all} NVMe functions passes PCI_ALLOWED/PCI_BLOCKED")
    };
    let mut o = Outcome::default();
    o.push(true, format!("{why}: nothing {what}"));
    Ok(Some(o))
}

fn bind_all(sysfs: &Sysfs, filter: &Filter, driver: &str) -> Result<Outcome, String> {
    if let Some(o) = none_found(sysfs, filter, "bound")? {
        return Ok(o);
    }
    let mounts = pci::system_mounts();
    let mut o = Outcome::default();
    for f in nvme_functions(sysfs, filter)? {
        let from = f.driver.as_deref().unwrap_or("no driver");
        let ids = format!("{:04x} {:04x}", f.vendor_id, f.device_id);
        let a = f.address;
        if f.driver.as_deref() == Some(driver) {
            o.push(true, format!("{a} ({ids}): already bound to {driver}"));
            continue;
        }
        match sysfs.bind(a, driver, &mounts) {
            Ok(()) => o.push(true, format!("{a} ({ids}): {from} -> {driver}")),
            Err(e @ pci::PciError::InUse { .. }) => {
                o.push(true, format!("{a} ({ids}): skipped: {e}"))
            }
            Err(e) => o.push(false, format!("{a} ({ids}): not bound: {e}")),
        }
    }
    Ok(o)
}

/// Gives the selected functions back to the kernel nvme driver, loading
/// it first if there is any to give.
fn reset_all(
    sysfs: &Sysfs,
    filter: &Filter,
    load: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Outcome, String> {
    if let Some(o) = none_found(sysfs, filter, "given back to the kernel")? {
        return Ok(o);
    }
    let mut o = Outcome::default();
    if !sysfs.driver_dir("nvme").exists() {
        if let Err(e) = load("nvme") {
            o.push(
                false,
                format!("the kernel nvme driver is not loaded and loading it failed: {e}; nothing given back"),
            );
            return Ok(o);
        }
    }
    for f in nvme_functions(sysfs, filter)? {
        let from = f.driver.as_deref().unwrap_or("no driver");
        let ids = format!("{:04x} {:04x}", f.vendor_id, f.device_id);
        let a = f.address;
        if f.driver.as_deref() == Some("nvme") {
            o.push(true, format!("{a} ({ids}): already bound to nvme"));
            continue;
        }
        match sysfs.bind_kernel(a, "nvme") {
            Ok(()) => o.push(true, format!("{a} ({ids}): {from} -> nvme")),
            Err(e) => o.push(false, format!("{a} ({ids}): not given back: {e}")),
        }
    }
    Ok(o)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn allowed_and_blocked_lists_parse_like_setup_sh() {
        let l = parse_list("0000:00:04.0 00:05.0,0000:01:00.0").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].to_string(), "0000:00:05.0");
        assert!(parse_list("0000:00:04.0 junk").is_err());
        assert!(parse_list("  ").unwrap().is_empty());
    }

    #[test]
    fn blocked_wins_over_allowed_and_empty_allowed_means_all() {
        let a: PciAddress = "0000:00:04.0".parse().unwrap();
        let b: PciAddress = "0000:00:05.0".parse().unwrap();
        let all = Filter::default();
        assert!(all.wants(a) && all.wants(b));
        let f = Filter {
            allowed: vec![a, b],
            blocked: vec![b],
        };
        assert!(f.wants(a) && !f.wants(b));
    }

    /// An empty sysfs tree (no PCI function, drivers `drivers`).
    pub(super) fn tree(tag: &str, drivers: &[&str]) -> (std::path::PathBuf, Sysfs) {
        let root = std::env::temp_dir().join(format!("spdk-io-setup-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bus/pci/devices")).unwrap();
        for d in drivers {
            std::fs::create_dir_all(root.join("bus/pci/drivers").join(d)).unwrap();
        }
        let s = Sysfs::new(&root);
        (root, s)
    }

    #[test]
    fn with_no_nvme_function_setup_and_reset_say_nothing_was_done() {
        let (root, sysfs) = tree("none", &["vfio-pci"]);
        let bound = bind_all(&sysfs, &Filter::default(), "vfio-pci").unwrap();
        let reset = reset_all(&sysfs, &Filter::default(), &|_| Err("no modprobe".into())).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(
            bound.lines,
            [(
                true,
                "no NVMe function on this machine: nothing bound".to_string()
            )]
        );
        assert_eq!(
            reset.lines,
            [(
                true,
                "no NVMe function on this machine: nothing given back to the kernel".to_string()
            )]
        );
    }
}
