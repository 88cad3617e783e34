//! The fault as a policy sees it: which server, which generation, why, where, when.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A point on the VMM's monotonic clock, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Micros(pub u64);

impl Micros {
    /// Time from `earlier` to `self`; zero when `earlier` is not earlier.
    pub fn since(self, earlier: Micros) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// True when `earlier` lies less than `window` before `self`: the window is the half-open
    /// interval `(self - window, self]`. A time after `self` counts as within.
    pub fn within(self, earlier: Micros, window: Duration) -> bool {
        self.since(earlier) < window
    }
}

/// A guest server: its task index (as in the image's manifest and the kernel's fault record) and
/// its name (as in the configuration). Serialized as its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerRef {
    /// Task-table index.
    pub index: u32,
    /// Name the image declares for it.
    pub name: String,
}

impl ServerRef {
    /// The server with task index `index` and name `name`.
    pub fn new(index: u32, name: impl Into<String>) -> Self {
        Self {
            index,
            name: name.into(),
        }
    }
}

impl fmt::Display for ServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for ServerRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

/// Page faults below this address are null-pointer dereferences.
pub const NULL_PAGE_END: u64 = 4096;

/// Why a server stopped. Its names are the fault vocabulary every part of the system uses:
/// the `--fault` kind that produces a cause has the cause's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// #PF outside the stack guard; `addr` is CR2. In the null page: `null-deref`.
    PageFault {
        /// The faulting address.
        addr: u64,
    },
    /// #UD: `illegal-insn`.
    IllegalInsn,
    /// #DE: `div-zero`.
    DivZero,
    /// #GP: `gp`.
    GeneralProtection,
    /// #PF in the guard page below the stack: `stack-overflow`.
    StackOverflow,
    /// #MF / #XM: `floating-point`.
    FloatingPoint,
    /// The server's own panic: `panic`.
    Panic,
    /// The server overran its per-message time budget: `hang`.
    Hang,
    /// A canary or checksum over the server's declared state did not match: `corrupt-state`.
    CorruptState,
    /// Another CPU exception, with its vector: `exception`.
    Exception(u32),
    /// A cause number this crate does not know: `unknown(N)`.
    Unknown(u32),
}

impl Cause {
    /// True for a page fault in the null page.
    pub fn is_null_deref(self) -> bool {
        matches!(self, Self::PageFault { addr } if addr < NULL_PAGE_END)
    }

    /// The faulting address, for page faults.
    pub fn addr(self) -> Option<u64> {
        match self {
            Self::PageFault { addr } => Some(addr),
            _ => None,
        }
    }

    /// Its name in the fault vocabulary, as on the console and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::PageFault { .. } if self.is_null_deref() => "null-deref",
            Self::PageFault { .. } => "page-fault",
            Self::IllegalInsn => "illegal-insn",
            Self::DivZero => "div-zero",
            Self::GeneralProtection => "gp",
            Self::StackOverflow => "stack-overflow",
            Self::FloatingPoint => "floating-point",
            Self::Panic => "panic",
            Self::Hang => "hang",
            Self::CorruptState => "corrupt-state",
            Self::Exception(_) => "exception",
            Self::Unknown(_) => "unknown",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(code) => write!(f, "unknown({code})"),
            _ => f.write_str(self.name()),
        }
    }
}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One crash, as the recovery engine reports it to a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The server that stopped.
    pub server: ServerRef,
    /// Its generation when it stopped.
    pub generation: u32,
    /// Why.
    pub cause: Cause,
    /// Where it was.
    pub rip: u64,
    /// Messages it had handled (boundaries passed) before it stopped.
    pub messages: u64,
    /// When the fault was reported.
    pub at: Micros,
}

impl Fault {
    /// The faulting address (CR2), for page faults.
    pub fn fault_addr(&self) -> Option<u64> {
        self.cause.addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_deref_is_a_page_fault_in_the_null_page() {
        assert!(Cause::PageFault { addr: 0 }.is_null_deref());
        assert!(Cause::PageFault { addr: 4095 }.is_null_deref());
        assert!(!Cause::PageFault { addr: 4096 }.is_null_deref());
        assert!(!Cause::Panic.is_null_deref());
        assert_eq!(Cause::PageFault { addr: 8 }.name(), "null-deref");
        assert_eq!(Cause::PageFault { addr: 0xdead_0000 }.name(), "page-fault");
        assert_eq!(Cause::Unknown(17).to_string(), "unknown(17)");
        assert_eq!(Cause::Exception(17).to_string(), "exception");
        assert_eq!(Cause::Hang.addr(), None);
        assert_eq!(Cause::PageFault { addr: 5 }.addr(), Some(5));
    }

    #[test]
    fn window_is_half_open() {
        let w = Duration::from_secs(1);
        let now = Micros(5_000_000);
        assert!(now.within(Micros(4_000_001), w));
        assert!(!now.within(Micros(4_000_000), w));
        assert!(now.within(Micros(6_000_000), w), "a later time counts");
        assert_eq!(Micros(3).since(Micros(5)), Duration::ZERO);
    }

    #[test]
    fn serializes_as_names() {
        let s = serde_json::to_string(&(ServerRef::new(2, "kv"), Cause::PageFault { addr: 0 }))
            .expect("serializes");
        assert_eq!(s, r#"["kv","null-deref"]"#);
    }
}
