//! The monitor (hypercall) interface: guest-to-VMM calls.
//!
//! A call is one 32-bit port write from guest ring 0: `out dx, eax` with `dx` =
//! [`HYPERCALL_PORT`] and `eax` = the call number; arguments travel in `rdi`, `rsi`, `r8`, `r9`
//! (a0..a3). The VMM reads them on the resulting exit and resumes the guest after the `out`; no
//! register is changed. The port is live only for images that carry a region manifest; it lies
//! clear of the legacy ports (0x60/0x64, 0x70, 0x80, 0x3f8-0x3ff, 0xcf8-0xcff).
//!
//! The VMM stops the VM with [`crate::status::GUEST_PROTOCOL`] and a one-line reason on anything
//! else: a call from CPL 3, an access that is not a 4-byte write, an unknown number, or bad
//! arguments.
//!
//! ```text
//!  number  name  a0                a1           effect
//!  1       EXIT  status (0..=63)   -            stop the VM; `vmm` exits with that status
//!  2       LOG   guest-phys addr   length       print the bytes as one line on vmm's stderr
//!  3       FAULT -                 -            the monitor page's fault record is new: report it
//!  4       REPORT -                -            the monitor page's workload report is final
//! ```
//!
//! FAULT and REPORT read their record from the monitor page ([`crate::monitor`]).

/// The one hypercall port.
pub const HYPERCALL_PORT: u16 = 0x0510;
/// Longest line `LOG` accepts, in bytes.
pub const MAX_LOG_LEN: u64 = 1024;

/// Call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hypercall {
    /// Stop the VM with status a0 (0..=63).
    Exit = 1,
    /// Log the a1 bytes at guest-physical a0 (at most [`MAX_LOG_LEN`]) as one line.
    Log = 2,
    /// A task stopped: the monitor page's fault record describes it.
    Fault = 3,
    /// The workload finished: the monitor page's workload report holds its figures.
    Report = 4,
}

impl Hypercall {
    /// The call with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::Exit),
            2 => Some(Self::Log),
            3 => Some(Self::Fault),
            4 => Some(Self::Report),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_ones_are_rejected() {
        for call in [
            Hypercall::Exit,
            Hypercall::Log,
            Hypercall::Fault,
            Hypercall::Report,
        ] {
            assert_eq!(Hypercall::from_number(call as u32), Some(call));
        }
        assert_eq!(Hypercall::from_number(0), None);
        assert_eq!(Hypercall::from_number(u32::MAX), None);
    }

    #[test]
    fn port_is_clear_of_legacy_ports() {
        let legacy = [
            (0x60, 0x60),
            (0x64, 0x64),
            (0x70, 0x71),
            (0x80, 0x80),
            (0x3f8, 0x3ff),
            (0xcf8, 0xcff),
        ];
        for (lo, hi) in legacy {
            assert!(!(lo..=hi).contains(&HYPERCALL_PORT));
        }
    }
}
