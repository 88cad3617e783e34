//! How a VM run ends, and the `vmm` exit status and one-line message for each ending.

use abi::status;
use std::fmt;

/// Ways the guest broke the monitor protocol (the VM is stopped with [`status::GUEST_PROTOCOL`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A hypercall from guest ring 3 (only ring 0 may call the monitor).
    UserModeCall {
        /// CPL at the call.
        cpl: u16,
        /// Guest RIP after the `out`.
        rip: u64,
    },
    /// A hypercall number nobody defined.
    UnknownCall {
        /// The number.
        number: u32,
        /// Guest RIP after the `out`.
        rip: u64,
    },
    /// Not a 4-byte write to the hypercall port.
    BadAccess {
        /// Access size in bytes.
        size: usize,
        /// Write or read.
        write: bool,
    },
    /// EXIT with a status above 63.
    ExitStatus(u64),
    /// LOG pointing outside guest memory.
    LogRange {
        /// Guest-physical address.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// LOG longer than [`abi::hypercall::MAX_LOG_LEN`].
    LogTooLong(u64),
    /// Our images: a port no device claims.
    UnknownPort {
        /// Port number.
        port: u16,
        /// Write or read.
        write: bool,
    },
    /// FAULT or REPORT while the monitor page lacks the contract's magic and version.
    MonitorPage {
        /// The monitor page's address (0 when the image has none).
        addr: u64,
    },
    /// BOUNDARY for a task that is not a server, or with a boundary number that does not
    /// follow the last one.
    Boundary {
        /// The task index given.
        task: u64,
        /// The boundary number given (its low 16 bits).
        seq: u64,
    },
    /// An INJECT call the VMM's plan does not account for.
    Inject {
        /// The task index given.
        task: u32,
        /// The phase given.
        phase: u32,
        /// The kind word given.
        kind: u64,
        /// The message number given.
        message: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// An address no RAM or device backs.
    UnmappedMmio {
        /// Guest-physical address.
        addr: u64,
        /// Write or read.
        write: bool,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use abi::hypercall::{HYPERCALL_PORT, MAX_LOG_LEN};
        let dir = |w: &bool| if *w { "write to" } else { "read from" };
        match self {
            Self::UserModeCall { cpl, rip } => {
                write!(
                    f,
                    "hypercall from CPL {cpl} at rip {rip:#x} refused: only ring 0 may call the monitor"
                )
            }
            Self::UnknownCall { number, rip } => {
                write!(f, "unknown hypercall {number:#x} at rip {rip:#x}")
            }
            Self::BadAccess { size, write } => write!(
                f,
                "{size}-byte {} hypercall port {HYPERCALL_PORT:#x}: calls are 4-byte writes",
                dir(write)
            ),
            Self::ExitStatus(s) => write!(
                f,
                "EXIT hypercall with status {s}: guest statuses are 0..=63"
            ),
            Self::LogRange { addr, len } => {
                write!(
                    f,
                    "LOG hypercall names {len} bytes at {addr:#x}, outside guest memory"
                )
            }
            Self::LogTooLong(len) => {
                write!(f, "LOG hypercall of {len} bytes: at most {MAX_LOG_LEN}")
            }
            Self::UnknownPort { port, write } => {
                write!(f, "{} unknown I/O port {port:#x}", dir(write))
            }
            Self::MonitorPage { addr } => write!(
                f,
                "FAULT/REPORT hypercall but the monitor page at {addr:#x} holds no valid record header"
            ),
            Self::Boundary { task, seq } => write!(
                f,
                "snapshot (BOUNDARY, SNAPSHOTS or pending with a FAULT) of task {task} at boundary {seq} (low 16 bits): not a server, or not its next boundary"
            ),
            Self::Inject {
                task,
                phase,
                kind,
                message,
                why,
            } => write!(
                f,
                "INJECT hypercall for task {task}, phase {phase}, kind {kind:#x}, message {message}: {why}"
            ),
            Self::UnmappedMmio { addr, write } => {
                write!(f, "{} unmapped guest address {addr:#x}", dir(write))
            }
        }
    }
}

/// Why the vCPU stopped.
#[derive(Debug)]
pub enum Stop {
    /// EXIT hypercall.
    GuestExit(u8),
    /// i8042 reset (0xFE to port 0x64).
    Reset,
    /// KVM_EXIT_SHUTDOWN.
    TripleFault {
        /// Guest RIP, if it could be read.
        rip: Option<u64>,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError {
        /// KVM's suberror code.
        suberror: u32,
        /// Guest RIP, if it could be read.
        rip: Option<u64>,
        /// The bytes at RIP (up to 4; empty if they could not be read): they tell an SSE
        /// instruction from an exception with nowhere to go.
        insn: Vec<u8>,
    },
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry {
        /// Hardware entry failure reason.
        reason: u64,
    },
    /// A protocol violation.
    Protocol(Violation),
    /// An exit this VMM does not handle.
    UnexpectedExit(String),
    /// KVM_RUN itself failed.
    Kvm(kvm_ioctls::Error),
    /// Stopped from outside (signal, timeout, shutdown request).
    Kicked,
    /// A recovery policy chose to stop the VM.
    FailStop {
        /// The crashed server.
        server: String,
        /// The policy's reason.
        reason: String,
    },
    /// The recovery engine could not snapshot or restore a server.
    Recovery(crate::recovery::error::RecoveryError),
}

fn rip(rip: &Option<u64>) -> String {
    rip.map_or_else(String::new, |r| format!(" at rip {r:#x}"))
}

impl Stop {
    /// The `vmm` exit status for this stop.
    pub fn status(&self) -> u8 {
        match self {
            Self::GuestExit(s) => *s,
            Self::Reset => 0,
            Self::TripleFault { .. } => status::TRIPLE_FAULT,
            Self::InternalError { .. } | Self::FailEntry { .. } => status::GUEST_INTERNAL_ERROR,
            Self::Protocol(_) => status::GUEST_PROTOCOL,
            Self::UnexpectedExit(_) | Self::Kvm(_) | Self::Kicked | Self::Recovery(_) => {
                status::VMM_INTERNAL
            }
            Self::FailStop { .. } => status::FAIL_STOP,
        }
    }

    /// The one-line message for stderr, if the stop needs explaining.
    pub fn message(&self) -> Option<String> {
        match self {
            Self::GuestExit(_) | Self::Reset | Self::Kicked => None,
            Self::TripleFault { rip: r } => Some(format!(
                "guest triple-faulted{} (KVM_EXIT_SHUTDOWN)",
                rip(r)
            )),
            Self::InternalError {
                suberror,
                rip: r,
                insn,
            } => Some(format!(
                "KVM could not run the guest{}: internal error, suberror {suberror} ({}){}; {}",
                rip(r),
                internal_suberror_name(*suberror),
                if insn.is_empty() {
                    String::new()
                } else {
                    format!(", bytes there {}", crate::faults::record::hex(insn))
                },
                internal_error_hint(insn)
            )),
            Self::FailEntry { reason } => Some(format!(
                "KVM could not enter the guest: hardware entry failure reason {reason:#x}"
            )),
            Self::Protocol(v) => Some(format!("guest protocol violation: {v}")),
            Self::UnexpectedExit(what) => Some(format!("unexpected vCPU exit: {what}")),
            Self::Kvm(e) => Some(format!("KVM_RUN failed: {e}")),
            Self::FailStop { server, reason } => Some(format!(
                "recovery policy stopped the VM after a crash of {server}: {reason}"
            )),
            Self::Recovery(e) => Some(format!("recovery failed: {e}")),
        }
    }
}

/// What an internal error at an instruction with these bytes most likely is.
fn internal_error_hint(insn: &[u8]) -> &'static str {
    let opcode = insn
        .iter()
        .position(|b| !matches!(b, 0x66 | 0xf2 | 0xf3))
        .map(|i| &insn[i..]);
    match opcode {
        Some([0xcc, ..] | [0xcd, ..] | [0xf1, ..]) => {
            "an int3 or int with no IDT to take it: an exception the guest cannot deliver (on \
             KVM-PVM this ends here rather than in a triple fault)"
        }
        Some(
            [
                0x0f,
                0x10..=0x17 | 0x28..=0x2f | 0x50..=0x7f | 0xc2..=0xc6 | 0xd0..=0xff,
                ..,
            ],
        ) => "an SSE instruction, which KVM-PVM cannot run in ring 0",
        _ => {
            "on KVM-PVM usually an SSE instruction in ring 0, or an exception with no IDT to take it"
        }
    }
}

fn internal_suberror_name(code: u32) -> &'static str {
    match code {
        1 => "emulation failure",
        2 => "simultaneous exception",
        3 => "delivery event",
        4 => "unexpected exit reason",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(Stop::GuestExit(7).status(), 7);
        assert_eq!(Stop::Reset.status(), 0);
        assert_eq!(
            Stop::TripleFault { rip: None }.status(),
            status::TRIPLE_FAULT
        );
        assert_eq!(
            Stop::InternalError {
                suberror: 1,
                rip: None,
                insn: Vec::new(),
            }
            .status(),
            status::GUEST_INTERNAL_ERROR
        );
        let v = Violation::UnknownCall {
            number: 0xdead,
            rip: 0x1000,
        };
        assert_eq!(Stop::Protocol(v).status(), status::GUEST_PROTOCOL);
        let stop = Stop::FailStop {
            server: "kv".into(),
            reason: "too many crashes".into(),
        };
        assert_eq!(stop.status(), status::FAIL_STOP);
    }

    #[test]
    fn internal_errors_are_told_apart_by_the_bytes_at_rip() {
        assert!(internal_error_hint(&[0xcc, 0x90, 0x90, 0x90]).starts_with("an int3"));
        assert!(internal_error_hint(&[0xcd, 0x03]).starts_with("an int3 or int"));
        // movaps xmm0, [rax]; movq xmm0, rax (66 prefix)
        assert!(internal_error_hint(&[0x0f, 0x28, 0x00]).starts_with("an SSE"));
        assert!(internal_error_hint(&[0x66, 0x48, 0x0f, 0x6e]).starts_with("on KVM-PVM"));
        assert!(internal_error_hint(&[0x66, 0x0f, 0x6e, 0xc0]).starts_with("an SSE"));
        assert!(internal_error_hint(&[]).starts_with("on KVM-PVM"));
        let m = Stop::InternalError {
            suberror: 1,
            rip: Some(0x10_0000),
            insn: vec![0xcc, 0x90, 0x90, 0x90],
        }
        .message()
        .expect("explained");
        assert!(m.contains("bytes there cc 90 90 90; an int3"), "{m}");
    }

    #[test]
    fn messages_are_one_line() {
        let stops = [
            Stop::TripleFault { rip: Some(0x1234) },
            Stop::InternalError {
                suberror: 1,
                rip: None,
                insn: Vec::new(),
            },
            Stop::FailEntry { reason: 33 },
            Stop::Protocol(Violation::UserModeCall { cpl: 3, rip: 0x10 }),
            Stop::Protocol(Violation::BadAccess {
                size: 1,
                write: true,
            }),
            Stop::Protocol(Violation::LogTooLong(5000)),
            Stop::Protocol(Violation::UnmappedMmio {
                addr: 0xd000_0000,
                write: false,
            }),
            Stop::Protocol(Violation::Boundary { task: 9, seq: 0 }),
            Stop::FailStop {
                server: "kv".into(),
                reason: "too many crashes".into(),
            },
            Stop::Recovery(crate::recovery::error::RecoveryError::Versions(1)),
        ];
        for s in stops {
            let m = s.message().expect("explained");
            assert!(!m.contains('\n'), "{m}");
        }
        let m = Stop::Protocol(Violation::UserModeCall { cpl: 3, rip: 0x10 }).message();
        assert_eq!(
            m.as_deref(),
            Some(
                "guest protocol violation: hypercall from CPL 3 at rip 0x10 refused: only ring 0 may call the monitor"
            )
        );
    }
}
