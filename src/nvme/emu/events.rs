//! Asynchronous events the controller reports through Asynchronous Event
//! Request commands.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

/// Log Page Identifier of Error Information.
pub const LOG_ERROR: u8 = 0x01;
/// Log Page Identifier of SMART / Health Information.
pub const LOG_SMART: u8 = 0x02;
/// Log Page Identifier of Firmware Slot Information.
pub const LOG_FIRMWARE_SLOT: u8 = 0x03;
/// Log Page Identifier of Changed Namespace List.
pub const LOG_CHANGED_NS: u8 = 0x04;

/// Most events kept while no Asynchronous Event Request is outstanding.
const MAX_QUEUED: usize = 64;

/// An event to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncEvent {
    /// Notice: Namespace Attribute Changed (log page 04h lists the namespace).
    NamespaceAttributeChanged(u32),
    /// SMART / Health status with these Critical Warning bits (log page 02h).
    SmartWarning(u8),
    /// Error status: a doorbell written with a value beyond its queue
    /// (Invalid Doorbell Write Value, log page 01h). Raised by the controller itself.
    InvalidDoorbellWriteValue,
}

impl AsyncEvent {
    /// Asynchronous Event Type (0 error, 1 SMART/health, 2 notice).
    pub fn event_type(&self) -> u8 {
        match self {
            Self::NamespaceAttributeChanged(_) => 2,
            Self::SmartWarning(_) => 1,
            Self::InvalidDoorbellWriteValue => 0,
        }
    }

    /// Completion dword 0 of the AER command: type 2:0, information 15:8, log page 23:16.
    pub fn dw0(&self) -> u32 {
        let (info, log) = match self {
            Self::NamespaceAttributeChanged(_) => (0x00u32, LOG_CHANGED_NS),
            // Information: 00h subsystem reliability, 01h temperature, 02h spare below threshold.
            Self::SmartWarning(bits) if bits & 0x02 != 0 => (0x01, LOG_SMART),
            Self::SmartWarning(bits) if bits & 0x01 != 0 => (0x02, LOG_SMART),
            Self::SmartWarning(_) => (0x00, LOG_SMART),
            Self::InvalidDoorbellWriteValue => (0x01, LOG_ERROR),
        };
        self.event_type() as u32 | info << 8 | (log as u32) << 16
    }
}

/// Events raised by test code, waiting for the worker.
#[derive(Default)]
pub struct EventQueue {
    pending: AtomicBool,
    queue: Mutex<VecDeque<AsyncEvent>>,
    /// SMART Critical Warning bits currently set (reported in log page 02h).
    pub critical_warning: AtomicU8,
}

impl EventQueue {
    /// Queues an event (dropped beyond [`MAX_QUEUED`], as a controller's event buffer is finite).
    pub fn raise(&self, ev: AsyncEvent) {
        if let AsyncEvent::SmartWarning(bits) = ev {
            self.critical_warning.fetch_or(bits, Ordering::AcqRel);
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() < MAX_QUEUED {
            q.push_back(ev);
        }
        self.pending.store(true, Ordering::Release);
    }

    /// Takes every queued event (cheap when none are queued).
    pub fn drain_into(&self, out: &mut VecDeque<AsyncEvent>) {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(ev) = q.pop_front() {
            if out.len() < MAX_QUEUED {
                out.push_back(ev);
            }
        }
    }
}
