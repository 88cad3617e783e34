//! The monitor page: records the guest kernel hands the VMM, announced by a hypercall.
//!
//! The page (its address is the manifest's `monitor_page`) holds one [`MonitorPage`]. The kernel
//! fills a record, then makes the hypercall that names it ([`crate::hypercall::Hypercall::Fault`]
//! or [`crate::hypercall::Hypercall::Report`]); the VMM reads the record on that exit. Every field
//! is written by the guest and untrusted: the VMM checks magic and version, treats unknown causes
//! as such, and names tasks from its own validated layout, never from guest text.
//!
//! ```text
//!  offset  size  field
//!  0       8     magic  (MONITOR_MAGIC)
//!  8       4     version (MONITOR_VERSION)
//!  12      4     reserved
//!  16      64    fault: FaultRecord   (written before a FAULT hypercall)
//!  80      40    report: WorkloadReport (written before a REPORT hypercall)
//! ```

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `MonitorPage::magic`: "CMMONPG1" little-endian.
pub const MONITOR_MAGIC: u64 = 0x3147_504e_4f4d_4d43;
/// `MonitorPage::version` this contract describes.
pub const MONITOR_VERSION: u32 = 1;

/// Why a task was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FaultCause {
    /// #DE: integer divide by zero or overflow.
    DivideError = 1,
    /// #UD: illegal instruction.
    InvalidOpcode = 2,
    /// #GP: general protection (privileged instruction, non-canonical address, ...).
    GeneralProtection = 3,
    /// #PF outside the stack guard page.
    PageFault = 4,
    /// #PF in the guard page below the task's stack.
    StackOverflow = 5,
    /// Another CPU exception (vector in the record).
    OtherException = 6,
    /// The task's own panic (userlib's panic handler asked the kernel to stop it).
    Panic = 7,
    /// The task ran past its per-message time budget: a hang.
    BudgetOverrun = 8,
    /// #MF / #XM: x87 or SIMD floating-point exception.
    FloatingPoint = 9,
}

impl FaultCause {
    /// The cause with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::DivideError,
            2 => Self::InvalidOpcode,
            3 => Self::GeneralProtection,
            4 => Self::PageFault,
            5 => Self::StackOverflow,
            6 => Self::OtherException,
            7 => Self::Panic,
            8 => Self::BudgetOverrun,
            9 => Self::FloatingPoint,
            _ => return None,
        })
    }

    /// Lower-case name, as in the VMM's fault line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::DivideError => "divide-error",
            Self::InvalidOpcode => "invalid-opcode",
            Self::GeneralProtection => "general-protection",
            Self::PageFault => "page-fault",
            Self::StackOverflow => "stack-overflow",
            Self::OtherException => "exception",
            Self::Panic => "panic",
            Self::BudgetOverrun => "hang",
            Self::FloatingPoint => "floating-point",
        }
    }

    /// The cause of CPU exception `vector`; `guard_hit` tells a #PF in the stack guard page.
    pub const fn from_exception(vector: u64, guard_hit: bool) -> Self {
        match vector {
            0 => Self::DivideError,
            6 => Self::InvalidOpcode,
            13 => Self::GeneralProtection,
            14 if guard_hit => Self::StackOverflow,
            14 => Self::PageFault,
            16 | 19 => Self::FloatingPoint,
            _ => Self::OtherException,
        }
    }
}

/// One stopped task.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FaultRecord {
    /// Counts fault records since boot (1 for the first).
    pub seq: u64,
    /// Task-table index; equal to its server index in the manifest.
    pub task: u32,
    /// The task's generation when it stopped.
    pub generation: u32,
    /// A [`FaultCause`] number.
    pub cause: u32,
    /// The CPU exception vector (or 0xffff_ffff for panics and hangs).
    pub vector: u32,
    /// Where the task was.
    pub rip: u64,
    /// Faulting address (CR2) for page faults, else 0.
    pub addr: u64,
    /// The exception's error code, else 0.
    pub error_code: u64,
    /// Messages the task had received (message boundaries passed) before it stopped.
    pub messages: u64,
    /// Must be zero.
    pub reserved: u64,
}

/// The workload's final figures.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct WorkloadReport {
    /// Requests issued.
    pub ops: u64,
    /// Requests answered with an error the model did not expect.
    pub errors: u64,
    /// Requests retried after a "peer restarted" reply.
    pub retries: u64,
    /// Requests whose effect a server declared lost.
    pub lost: u64,
    /// Replies or reads that disagreed with the model.
    pub mismatches: u64,
}

/// The whole monitor page's used part.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MonitorPage {
    /// [`MONITOR_MAGIC`].
    pub magic: u64,
    /// [`MONITOR_VERSION`].
    pub version: u32,
    /// Must be zero.
    pub reserved: u32,
    /// The last fault.
    pub fault: FaultRecord,
    /// The workload's report.
    pub report: WorkloadReport,
}

impl MonitorPage {
    /// True when magic and version match this contract.
    pub fn is_valid(&self) -> bool {
        self.magic == MONITOR_MAGIC && self.version == MONITOR_VERSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_table() {
        assert_eq!(core::mem::offset_of!(MonitorPage, fault), 16);
        assert_eq!(core::mem::size_of::<FaultRecord>(), 64);
        assert_eq!(core::mem::offset_of!(MonitorPage, report), 80);
        assert!(core::mem::size_of::<MonitorPage>() <= crate::layout::PAGE_SIZE as usize);
    }

    #[test]
    fn causes_round_trip_and_map_exceptions() {
        for n in 1..=9 {
            let cause = FaultCause::from_number(n).expect("defined");
            assert_eq!(cause as u32, n);
            assert!(!cause.name().is_empty());
        }
        assert_eq!(FaultCause::from_number(0), None);
        assert_eq!(
            FaultCause::from_exception(14, true),
            FaultCause::StackOverflow
        );
        assert_eq!(FaultCause::from_exception(14, false), FaultCause::PageFault);
        assert_eq!(
            FaultCause::from_exception(0, false),
            FaultCause::DivideError
        );
        assert_eq!(
            FaultCause::from_exception(17, false),
            FaultCause::OtherException
        );
    }
}
