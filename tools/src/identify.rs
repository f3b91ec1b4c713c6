//! `spdk-io identify`: controller and namespace data, like SPDK's `spdk_nvme_identify`.

use clap::Args;
use serde::Serialize;
use spdk_io::nvme::spec::log::SmartHealth;
use spdk_io::nvme::{self, Controller, ControllerOpts, TransportId};
use std::process::ExitCode;

/// Options of `spdk-io identify`.
#[derive(Args, Debug)]
pub struct IdentifyArgs {
    /// Transport ID of a controller (`trtype:PCIe traddr:0000:00:04.0`); repeatable.
    /// Default: every NVMe controller bound to a user-space driver.
    #[arg(short = 'r', long = "transport-id")]
    trid: Vec<String>,
    /// Output format: `text` or `json`.
    #[arg(long = "output-format", default_value = "text")]
    output_format: String,
}

#[derive(Serialize)]
struct LbaFormatReport {
    index: usize,
    data_size: u32,
    metadata_size: u16,
    in_use: bool,
}

#[derive(Serialize)]
struct NamespaceReport {
    nsid: u32,
    size_lbas: u64,
    capacity_lbas: u64,
    utilization_lbas: u64,
    block_size: u32,
    size_bytes: u64,
    thin_provisioning: bool,
    deallocate: bool,
    write_zeroes: bool,
    lba_formats: Vec<LbaFormatReport>,
}

#[derive(Serialize)]
struct HealthReport {
    critical_warning: u8,
    temperature_kelvin: u16,
    available_spare_pct: u8,
    available_spare_threshold_pct: u8,
    percentage_used: u8,
    data_units_read: u128,
    data_units_written: u128,
    host_read_commands: u128,
    host_write_commands: u128,
    power_cycles: u128,
    power_on_hours: u128,
    unsafe_shutdowns: u128,
    media_errors: u128,
    error_log_entries: u128,
}

#[derive(Serialize)]
struct ControllerReport {
    trid: String,
    vendor_id: String,
    subsystem_vendor_id: String,
    serial: String,
    model: String,
    firmware: String,
    version: String,
    controller_id: u16,
    mdts_bytes: Option<u64>,
    max_io_queues: u16,
    max_queue_entries: u32,
    doorbell_stride: u32,
    timeout_ms: u128,
    oacs: u16,
    oncs: u16,
    volatile_write_cache: bool,
    sgl_supported: bool,
    shadow_doorbells: bool,
    cmb_bytes: u64,
    number_of_namespaces: u32,
    subsystem_nqn: String,
    health: Option<HealthReport>,
    namespaces: Vec<NamespaceReport>,
}

fn report(c: &Controller) -> ControllerReport {
    let d = c.data();
    let health = c.smart_health().ok().map(|s| HealthReport {
        critical_warning: s.critical_warning,
        temperature_kelvin: s.temperature_kelvin(),
        available_spare_pct: s.avail_spare,
        available_spare_threshold_pct: s.avail_spare_threshold,
        percentage_used: s.percentage_used,
        data_units_read: SmartHealth::counter(&s.data_units_read),
        data_units_written: SmartHealth::counter(&s.data_units_written),
        host_read_commands: SmartHealth::counter(&s.host_read_commands),
        host_write_commands: SmartHealth::counter(&s.host_write_commands),
        power_cycles: SmartHealth::counter(&s.power_cycles),
        power_on_hours: SmartHealth::counter(&s.power_on_hours),
        unsafe_shutdowns: SmartHealth::counter(&s.unsafe_shutdowns),
        media_errors: SmartHealth::counter(&s.media_errors),
        error_log_entries: SmartHealth::counter(&s.num_error_info_log_entries),
    });
    let namespaces = c
        .namespaces()
        .iter()
        .map(|ns| {
            let id = ns.identify();
            let cur = id.lba_format_index();
            NamespaceReport {
                nsid: ns.id(),
                size_lbas: id.nsze,
                capacity_lbas: id.ncap,
                utilization_lbas: id.nuse,
                block_size: ns.block_size(),
                size_bytes: ns.size_bytes(),
                thin_provisioning: id.nsfeat & 1 != 0,
                deallocate: ns.supports_deallocate(),
                write_zeroes: ns.supports_write_zeroes(),
                lba_formats: (0..=id.nlbaf as usize)
                    .map(|i| LbaFormatReport {
                        index: i,
                        data_size: id.lbaf[i.min(63)].data_size(),
                        metadata_size: id.lbaf[i.min(63)].ms,
                        in_use: i == cur,
                    })
                    .collect(),
            }
        })
        .collect();
    ControllerReport {
        trid: c.trid().to_string(),
        vendor_id: format!("{:04x}", d.vid),
        subsystem_vendor_id: format!("{:04x}", d.ssvid),
        serial: d.serial(),
        model: d.model(),
        firmware: d.firmware(),
        version: c.version().to_string(),
        controller_id: d.cntlid,
        mdts_bytes: (d.mdts != 0).then(|| 4096u64 << d.mdts),
        max_io_queues: c.max_io_qpairs(),
        max_queue_entries: c.cap().max_queue_entries(),
        doorbell_stride: 4 << c.cap().dstrd(),
        timeout_ms: c.cap().timeout().as_millis(),
        oacs: d.oacs,
        oncs: d.oncs,
        volatile_write_cache: d.vwc & 1 != 0,
        sgl_supported: d.supports_sgl(),
        shadow_doorbells: c.shadow_doorbells_enabled(),
        cmb_bytes: c.cmb_size(),
        number_of_namespaces: d.nn,
        subsystem_nqn: d.subsystem_nqn(),
        health,
        namespaces,
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "Supported"
    } else {
        "Not Supported"
    }
}

fn print_text(r: &ControllerReport) {
    let line = "=====================================================";
    println!(
        "{line}\nNVMe Controller at {} [{}:{}]\n{line}",
        r.trid, r.vendor_id, r.subsystem_vendor_id
    );
    println!("Controller Capabilities/Features\n================================");
    println!("Vendor ID:                             {}", r.vendor_id);
    println!(
        "Subsystem Vendor ID:                   {}",
        r.subsystem_vendor_id
    );
    println!("Serial Number:                         {}", r.serial);
    println!("Model Number:                          {}", r.model);
    println!("Firmware Version:                      {}", r.firmware);
    println!("NVMe Specification Version (VS):       {}", r.version);
    println!("Controller ID:                         {}", r.controller_id);
    match r.mdts_bytes {
        Some(b) => println!("Max Data Transfer Size:                {b}"),
        None => println!("Max Data Transfer Size:                Unlimited"),
    }
    println!("Max Number of I/O Queues:              {}", r.max_io_queues);
    println!(
        "Maximum Queue Entries:                 {}",
        r.max_queue_entries
    );
    println!(
        "Doorbell Stride:                       {} bytes",
        r.doorbell_stride
    );
    println!("Ready Timeout:                         {} ms", r.timeout_ms);
    println!(
        "Volatile Write Cache:                  {}",
        if r.volatile_write_cache {
            "Present"
        } else {
            "Not Present"
        }
    );
    println!(
        "SGL:                                   {}",
        yes(r.sgl_supported)
    );
    println!(
        "Controller Memory Buffer:              {} bytes",
        r.cmb_bytes
    );
    println!("Subsystem NQN:                         {}", r.subsystem_nqn);
    println!("\nAdmin Command Set Attributes\n============================");
    println!("OACS:                                  {:#06x}", r.oacs);
    println!(
        "Namespace Manage and Attach:           {}",
        yes(r.oacs & (1 << 3) != 0)
    );
    println!(
        "Doorbell Buffer Config:                {} ({})",
        yes(r.oacs & (1 << 8) != 0),
        if r.shadow_doorbells {
            "in use"
        } else {
            "not in use"
        }
    );
    println!("\nNVM Command Set Attributes\n==========================");
    println!("ONCS:                                  {:#06x}", r.oncs);
    println!(
        "Compare Command:                       {}",
        yes(r.oncs & 1 != 0)
    );
    println!(
        "Dataset Management Command:            {}",
        yes(r.oncs & (1 << 2) != 0)
    );
    println!(
        "Write Zeroes Command:                  {}",
        yes(r.oncs & (1 << 3) != 0)
    );
    if let Some(h) = &r.health {
        println!("\nHealth Information\n==================");
        println!(
            "Critical Warnings:                     {:#04x}",
            h.critical_warning
        );
        println!(
            "Current Temperature:                   {} Kelvin ({} Celsius)",
            h.temperature_kelvin,
            h.temperature_kelvin as i32 - 273
        );
        println!(
            "Available Spare:                       {}%",
            h.available_spare_pct
        );
        println!(
            "Available Spare Threshold:             {}%",
            h.available_spare_threshold_pct
        );
        println!(
            "Life Percentage Used:                  {}%",
            h.percentage_used
        );
        println!(
            "Data Units Read:                       {}",
            h.data_units_read
        );
        println!(
            "Data Units Written:                    {}",
            h.data_units_written
        );
        println!(
            "Host Read Commands:                    {}",
            h.host_read_commands
        );
        println!(
            "Host Write Commands:                   {}",
            h.host_write_commands
        );
        println!("Power Cycles:                          {}", h.power_cycles);
        println!(
            "Power On Hours:                        {}",
            h.power_on_hours
        );
        println!(
            "Unsafe Shutdowns:                      {}",
            h.unsafe_shutdowns
        );
        println!("Unrecoverable Media Errors:            {}", h.media_errors);
        println!(
            "Error Information Log Entries:         {}",
            h.error_log_entries
        );
    }
    println!("\nActive Namespaces\n=================");
    for ns in &r.namespaces {
        println!("Namespace ID:{}", ns.nsid);
        println!(
            "Size (in LBAs):                        {} ({} MiB)",
            ns.size_lbas,
            ns.size_bytes >> 20
        );
        println!(
            "Capacity (in LBAs):                    {}",
            ns.capacity_lbas
        );
        println!(
            "Utilization (in LBAs):                 {}",
            ns.utilization_lbas
        );
        println!(
            "Thin Provisioning:                     {}",
            yes(ns.thin_provisioning)
        );
        println!(
            "Deallocate:                            {}",
            yes(ns.deallocate)
        );
        println!(
            "Write Zeroes:                          {}",
            yes(ns.write_zeroes)
        );
        println!(
            "Number of LBA Formats:                 {}",
            ns.lba_formats.len()
        );
        for f in &ns.lba_formats {
            println!(
                "LBA Format #{:02}: Data Size: {:5}  Metadata Size: {:5}{}",
                f.index,
                f.data_size,
                f.metadata_size,
                if f.in_use { "  (current)" } else { "" }
            );
        }
        println!();
    }
}

/// Runs `spdk-io identify`.
pub fn run(args: IdentifyArgs) -> ExitCode {
    let json = match args.output_format.as_str() {
        "json" => true,
        "text" => false,
        other => {
            eprintln!("identify: unknown --output-format {other:?}: use text or json");
            return ExitCode::from(2);
        }
    };
    let mut trids = Vec::new();
    for s in &args.trid {
        match s.parse::<TransportId>() {
            Ok(t) => trids.push(t),
            Err(e) => {
                eprintln!("identify: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = spdk_io::env::init(spdk_io::env::EnvOpts::default()) {
        eprintln!("identify: {e}");
        return ExitCode::FAILURE;
    }
    let ctrlrs = match nvme::connect_all(&trids, &ControllerOpts::default()) {
        Ok(c) if c.is_empty() => {
            eprintln!("identify: no NVMe controller bound to vfio-pci or uio_pci_generic: run `spdk-io setup` first");
            return ExitCode::FAILURE;
        }
        Ok(c) => c,
        Err(e) => {
            eprintln!("identify: {e}");
            return ExitCode::FAILURE;
        }
    };
    let reports: Vec<ControllerReport> = ctrlrs.iter().map(report).collect();
    if json {
        let v = serde_json::json!({ "controllers": reports });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serializable")
        );
    } else {
        for r in &reports {
            print_text(r);
        }
    }
    ExitCode::SUCCESS
}
