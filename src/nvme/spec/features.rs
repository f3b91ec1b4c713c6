//! Feature identifiers (Set Features / Get Features) and typed values for
//! the ones the driver uses.

/// Feature Identifiers (FID, CDW10 bits 7:0).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FeatureId {
    Arbitration = 0x01,
    PowerManagement = 0x02,
    LbaRangeType = 0x03,
    TemperatureThreshold = 0x04,
    ErrorRecovery = 0x05,
    VolatileWriteCache = 0x06,
    NumberOfQueues = 0x07,
    InterruptCoalescing = 0x08,
    InterruptVectorConfiguration = 0x09,
    WriteAtomicityNormal = 0x0a,
    AsyncEventConfiguration = 0x0b,
    AutonomousPowerStateTransition = 0x0c,
    HostMemoryBuffer = 0x0d,
    Timestamp = 0x0e,
    KeepAliveTimer = 0x0f,
    HostControlledThermalManagement = 0x10,
    NonOperationalPowerStateConfig = 0x11,
    HostIdentifier = 0x81,
    ReservationNotificationMask = 0x82,
    ReservationPersistence = 0x83,
}

/// Get Features SEL (CDW10 bits 10:8): which value to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSelect {
    /// The current value.
    Current = 0,
    /// The default value.
    Default = 1,
    /// The saved value.
    Saved = 2,
    /// The capabilities of the feature.
    SupportedCapabilities = 3,
}

/// Number of Queues (07h): counts are 0's based in the command and its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberOfQueues {
    /// I/O submission queues (1's based here).
    pub nsq: u16,
    /// I/O completion queues (1's based here).
    pub ncq: u16,
}

impl NumberOfQueues {
    /// CDW11 for Set Features: NSQR (15:0) and NCQR (31:16), 0's based.
    pub fn to_cdw11(self) -> u32 {
        (self.nsq.max(1) - 1) as u32 | (((self.ncq.max(1) - 1) as u32) << 16)
    }
    /// Decodes completion DW0: NSQA (15:0) and NCQA (31:16), 0's based.
    pub fn from_dw0(dw0: u32) -> Self {
        NumberOfQueues {
            nsq: (dw0 as u16).saturating_add(1),
            ncq: ((dw0 >> 16) as u16).saturating_add(1),
        }
    }
}

/// Arbitration (01h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arbitration {
    /// AB: Arbitration Burst, 2^n commands (7 = no limit).
    pub ab: u8,
    /// LPW: Low Priority Weight, 0's based.
    pub lpw: u8,
    /// MPW: Medium Priority Weight, 0's based.
    pub mpw: u8,
    /// HPW: High Priority Weight, 0's based.
    pub hpw: u8,
}

impl Arbitration {
    /// Encodes CDW11 / decodes DW0 (same layout).
    pub fn to_dword(self) -> u32 {
        (self.ab & 7) as u32
            | (self.lpw as u32) << 8
            | (self.mpw as u32) << 16
            | (self.hpw as u32) << 24
    }
    /// Decodes the dword.
    pub fn from_dword(v: u32) -> Self {
        Arbitration {
            ab: (v & 7) as u8,
            lpw: (v >> 8) as u8,
            mpw: (v >> 16) as u8,
            hpw: (v >> 24) as u8,
        }
    }
}

/// Power Management (02h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerManagement {
    /// PS: Power State.
    pub ps: u8,
    /// WH: Workload Hint.
    pub wh: u8,
}

impl PowerManagement {
    /// Encodes CDW11.
    pub fn to_dword(self) -> u32 {
        (self.ps & 0x1f) as u32 | ((self.wh & 7) as u32) << 5
    }
    /// Decodes DW0.
    pub fn from_dword(v: u32) -> Self {
        PowerManagement {
            ps: (v & 0x1f) as u8,
            wh: ((v >> 5) & 7) as u8,
        }
    }
}

/// Volatile Write Cache (06h): WCE in bit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolatileWriteCache {
    /// WCE: Volatile Write Cache Enable.
    pub wce: bool,
}

impl VolatileWriteCache {
    /// Encodes CDW11.
    pub fn to_dword(self) -> u32 {
        self.wce as u32
    }
    /// Decodes DW0.
    pub fn from_dword(v: u32) -> Self {
        VolatileWriteCache { wce: v & 1 != 0 }
    }
}

bitflags::bitflags! {
    /// Asynchronous Event Configuration (0Bh): which events generate an AER completion.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct AsyncEventConfig: u32 {
        /// SMART / Health critical warnings (bits 7:0, one per warning).
        const SMART_CRITICAL_WARNINGS = 0xff;
        /// Namespace Attribute Notices.
        const NAMESPACE_ATTRIBUTE = 1 << 8;
        /// Firmware Activation Notices.
        const FIRMWARE_ACTIVATION = 1 << 9;
        /// Telemetry Log Notices.
        const TELEMETRY_LOG = 1 << 10;
        /// Asymmetric Namespace Access Change Notices.
        const ANA_CHANGE = 1 << 11;
    }
}

/// Asynchronous Event Type (AER completion DW0 bits 2:0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncEventType {
    /// 0: Error status.
    Error,
    /// 1: SMART / Health status.
    SmartHealth,
    /// 2: Notice (e.g. namespace attribute changed).
    Notice,
    /// 6: I/O command set specific.
    IoCommandSet,
    /// 7: Vendor specific.
    VendorSpecific,
    /// Reserved values.
    Reserved(u8),
}

/// A decoded Asynchronous Event Request completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsyncEvent {
    /// Asynchronous Event Type.
    pub event_type: AsyncEventType,
    /// Asynchronous Event Information (bits 15:8), e.g. 0 = namespace attribute changed for notices.
    pub info: u8,
    /// Log Page Identifier to read to clear the event (bits 23:16).
    pub log_page: u8,
}

impl AsyncEvent {
    /// Decodes the AER completion's DW0.
    pub fn from_dw0(dw0: u32) -> Self {
        AsyncEvent {
            event_type: match dw0 & 7 {
                0 => AsyncEventType::Error,
                1 => AsyncEventType::SmartHealth,
                2 => AsyncEventType::Notice,
                6 => AsyncEventType::IoCommandSet,
                7 => AsyncEventType::VendorSpecific,
                r => AsyncEventType::Reserved(r as u8),
            },
            info: (dw0 >> 8) as u8,
            log_page: (dw0 >> 16) as u8,
        }
    }
    /// True for "Namespace Attribute Changed" notices.
    pub fn is_namespace_attribute_changed(&self) -> bool {
        self.event_type == AsyncEventType::Notice && self.info == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_of_queues_is_zero_based_on_the_wire() {
        let q = NumberOfQueues { nsq: 4, ncq: 4 };
        assert_eq!(q.to_cdw11(), 0x0003_0003);
        assert_eq!(
            NumberOfQueues::from_dw0(0x003f_003f),
            NumberOfQueues { nsq: 64, ncq: 64 }
        );
    }

    #[test]
    fn feature_values_round_trip() {
        let a = Arbitration {
            ab: 3,
            lpw: 1,
            mpw: 2,
            hpw: 4,
        };
        assert_eq!(Arbitration::from_dword(a.to_dword()), a);
        let p = PowerManagement { ps: 2, wh: 1 };
        assert_eq!(PowerManagement::from_dword(p.to_dword()), p);
        assert!(VolatileWriteCache::from_dword(1).wce);
    }

    #[test]
    fn aer_dw0_decodes_type_info_and_log_page() {
        let e = AsyncEvent::from_dw0(0x0004_0002);
        assert!(e.is_namespace_attribute_changed());
        assert_eq!(e.log_page, 4);
        assert_eq!(
            AsyncEvent::from_dw0(0x0002_0101).event_type,
            AsyncEventType::SmartHealth
        );
    }
}
