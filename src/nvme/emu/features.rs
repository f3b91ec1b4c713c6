//! Get Features / Set Features (admin opcodes 0Ah / 09h). CDW10: FID 7:0,
//! SEL 10:8 (Get), SV 31 (Set); CDW11: the value.

use super::config::EmuConfig;
use super::events::AsyncEvent;
use super::execute::Outcome;
use super::worker::Worker;
use super::{Sqe, Status};

/// Feature Identifiers supported.
pub mod fid {
    /// Arbitration.
    pub const ARBITRATION: u8 = 0x01;
    /// Power Management.
    pub const POWER_MANAGEMENT: u8 = 0x02;
    /// Temperature Threshold.
    pub const TEMPERATURE_THRESHOLD: u8 = 0x04;
    /// Error Recovery.
    pub const ERROR_RECOVERY: u8 = 0x05;
    /// Volatile Write Cache.
    pub const VOLATILE_WRITE_CACHE: u8 = 0x06;
    /// Number of Queues.
    pub const NUMBER_OF_QUEUES: u8 = 0x07;
    /// Interrupt Coalescing.
    pub const INTERRUPT_COALESCING: u8 = 0x08;
    /// Interrupt Vector Configuration.
    pub const INTERRUPT_VECTOR_CONFIG: u8 = 0x09;
    /// Write Atomicity Normal.
    pub const WRITE_ATOMICITY: u8 = 0x0a;
    /// Asynchronous Event Configuration.
    pub const ASYNC_EVENT_CONFIG: u8 = 0x0b;
    /// Keep Alive Timer.
    pub const KEEP_ALIVE_TIMER: u8 = 0x0f;
}

/// Current feature values (reset to defaults on controller reset).
#[derive(Debug, Clone)]
pub(super) struct Features {
    defaults: [u32; 16],
    current: [u32; 16],
    vwc_present: bool,
}

impl Features {
    pub fn new(cfg: &EmuConfig) -> Self {
        let mut d = [0u32; 16];
        let q = cfg.max_io_queue_pairs as u32 - 1;
        d[fid::NUMBER_OF_QUEUES as usize] = q | q << 16;
        d[fid::TEMPERATURE_THRESHOLD as usize] = 343; // over-temperature threshold, Kelvin
        d[fid::VOLATILE_WRITE_CACHE as usize] = cfg.volatile_write_cache as u32;
        Self {
            defaults: d,
            current: d,
            vwc_present: cfg.volatile_write_cache,
        }
    }

    fn supported(&self, f: u8) -> bool {
        use fid::*;
        match f {
            VOLATILE_WRITE_CACHE => self.vwc_present,
            ARBITRATION
            | POWER_MANAGEMENT
            | TEMPERATURE_THRESHOLD
            | ERROR_RECOVERY
            | NUMBER_OF_QUEUES
            | INTERRUPT_COALESCING
            | INTERRUPT_VECTOR_CONFIG
            | WRITE_ATOMICITY
            | ASYNC_EVENT_CONFIG
            | KEEP_ALIVE_TIMER => true,
            _ => false,
        }
    }

    /// True if Asynchronous Event Configuration enables reporting `ev`.
    pub fn event_enabled(&self, ev: &AsyncEvent) -> bool {
        let aec = self.current[fid::ASYNC_EVENT_CONFIG as usize];
        match ev {
            AsyncEvent::NamespaceAttributeChanged(_) => aec & 1 << 8 != 0,
            AsyncEvent::SmartWarning(bits) => aec & *bits as u32 != 0,
            // Error events cannot be disabled.
            AsyncEvent::InvalidDoorbellWriteValue => true,
        }
    }
}

impl Worker {
    pub(super) fn set_features(&mut self, sqe: &Sqe) -> Outcome {
        let f = sqe.cdw10 as u8;
        if !self.features.supported(f) {
            return Outcome::status(Status::INVALID_FIELD);
        }
        if sqe.cdw10 >> 31 != 0 {
            return Outcome::status(Status::FEATURE_NOT_SAVEABLE);
        }
        let v = sqe.cdw11;
        match f {
            fid::NUMBER_OF_QUEUES => {
                if v & 0xffff == 0xffff || v >> 16 == 0xffff {
                    return Outcome::status(Status::INVALID_FIELD);
                }
                // The allocation is fixed: report what the controller has.
                return Outcome::ok(self.features.defaults[f as usize]);
            }
            fid::VOLATILE_WRITE_CACHE => self.features.current[f as usize] = v & 1,
            fid::ARBITRATION => self.features.current[f as usize] = v & 0xffff_ff07,
            _ => self.features.current[f as usize] = v,
        }
        Outcome::ok(0)
    }

    pub(super) fn get_features(&mut self, sqe: &Sqe) -> Outcome {
        let f = sqe.cdw10 as u8;
        if !self.features.supported(f) {
            return Outcome::status(Status::INVALID_FIELD);
        }
        match sqe.cdw10 >> 8 & 0x7 {
            0 => Outcome::ok(self.features.current[f as usize]),
            1 | 2 => Outcome::ok(self.features.defaults[f as usize]),
            // Supported capabilities: changeable, not saveable, not namespace specific.
            3 => Outcome::ok(if f == fid::NUMBER_OF_QUEUES {
                0
            } else {
                1 << 2
            }),
            _ => Outcome::status(Status::INVALID_FIELD),
        }
    }
}
