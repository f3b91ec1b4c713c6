//! `spdk-io setup`: what SPDK's scripts/setup.sh does. Reserve hugepages and
//! bind NVMe functions to a user-space driver (`config`, the default), give
//! them back to the kernel (`reset`), or show the state of both (`status`).

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::{Args, Subcommand};
use spdk_io::env;
use spdk_io::pci::{self, PciAddress, PciFunction, Sysfs};

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
    match args.action.unwrap_or(SetupAction::Config) {
        SetupAction::Status => {
            print!(
                "{}",
                status::render(&sysfs, Path::new("/sys")).map_err(|e| e.to_string())?
            );
            Ok(ExitCode::SUCCESS)
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
            let mut ok = reserve_hugepages(mib);
            let driver =
                flag_or_env(&args.driver_override, "DRIVER_OVERRIDE").unwrap_or_else(pick_driver);
            ok &= bind_all(&sysfs, &filter, &driver)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        SetupAction::Reset => {
            let mut ok = reset_all(&sysfs, &filter)?;
            let clear = args.clear_huge || std::env::var("CLEAR_HUGE").is_ok_and(|v| v == "yes");
            if clear {
                ok &= set_nr_hugepages(0);
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

const NR_HUGEPAGES: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";

fn set_nr_hugepages(n: u64) -> bool {
    match std::fs::write(NR_HUGEPAGES, n.to_string()) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("writing {n} to {NR_HUGEPAGES}: {e} (run as root)");
            false
        }
    }
}

/// Reserves `mib` MiB as 2 MiB pages and mounts hugetlbfs at /dev/hugepages if none is mounted.
fn reserve_hugepages(mib: u64) -> bool {
    let pages = mib.div_ceil(2);
    if !set_nr_hugepages(pages) {
        return false;
    }
    let got = env::hugepage_counts(env::HugePageSize::Size2M).total;
    if got < pages {
        eprintln!("only {got} of {pages} hugepages could be reserved: memory is fragmented or short; reboot or lower HUGEMEM");
    }
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
    {
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
        if !ok {
            eprintln!("mounting hugetlbfs at /dev/hugepages failed: mount it by hand (spdk-io also works without it, through MAP_HUGETLB)");
        }
    }
    got >= pages
}

fn modprobe(module: &str) {
    let _ = Command::new("modprobe").arg(module).status();
}

/// vfio-pci when an IOMMU is on and the driver is (or can be) loaded; uio_pci_generic otherwise.
fn pick_driver() -> String {
    let drivers = Path::new("/sys/bus/pci/drivers");
    if env::iommu_present() {
        if !drivers.join("vfio-pci").exists() {
            modprobe("vfio-pci");
        }
        if drivers.join("vfio-pci").exists() {
            return "vfio-pci".into();
        }
    }
    if !drivers.join("uio_pci_generic").exists() {
        modprobe("uio_pci_generic");
    }
    "uio_pci_generic".into()
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

fn bind_all(sysfs: &Sysfs, filter: &Filter, driver: &str) -> Result<bool, String> {
    if !sysfs.driver_dir(driver).exists() {
        modprobe(driver);
    }
    let mounts = pci::system_mounts();
    let mut ok = true;
    for f in nvme_functions(sysfs, filter)? {
        let from = f.driver.as_deref().unwrap_or("no driver");
        let ids = format!("{:04x} {:04x}", f.vendor_id, f.device_id);
        if f.driver.as_deref() == Some(driver) {
            println!("{} ({ids}): already bound to {driver}", f.address);
            continue;
        }
        match sysfs.bind(f.address, driver, &mounts) {
            Ok(()) => println!("{} ({ids}): {from} -> {driver}", f.address),
            Err(e @ pci::PciError::InUse { .. }) => println!("{} ({ids}): skipped: {e}", f.address),
            Err(e) => {
                eprintln!("{} ({ids}): {e}", f.address);
                ok = false;
            }
        }
    }
    Ok(ok)
}

fn reset_all(sysfs: &Sysfs, filter: &Filter) -> Result<bool, String> {
    if !sysfs.driver_dir("nvme").exists() {
        modprobe("nvme");
    }
    let mut ok = true;
    for f in nvme_functions(sysfs, filter)? {
        let from = f.driver.as_deref().unwrap_or("no driver");
        let ids = format!("{:04x} {:04x}", f.vendor_id, f.device_id);
        if f.driver.as_deref() == Some("nvme") {
            println!("{} ({ids}): already bound to nvme", f.address);
            continue;
        }
        match sysfs.bind_kernel(f.address, "nvme") {
            Ok(()) => println!("{} ({ids}): {from} -> nvme", f.address),
            Err(e) => {
                eprintln!("{} ({ids}): {e}", f.address);
                ok = false;
            }
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
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
}
