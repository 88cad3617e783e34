//! The monitor (hypercall) interface of [`abi::hypercall`], on the VMM side.
//!
//! Every value here comes from the guest and is untrusted: the caller's privilege level is read
//! from KVM (not from anything the guest wrote), numbers and lengths are range-checked, and guest
//! memory is read only through vm-memory's bounds-checked accessors. A bad call stops the VM with
//! a [`Violation`]; it never panics the VMM.

use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use abi::hypercall::{Hypercall, MAX_LOG_LEN};
use abi::status::GUEST_MAX;
use vm_memory::{Bytes, GuestAddress};

/// The registers a call reads, taken from KVM after the exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallFrame {
    /// Current privilege level (from the code segment KVM reports).
    pub cpl: u16,
    /// RIP after the `out`.
    pub rip: u64,
    /// rdi, rsi, r8, r9.
    pub args: [u64; 4],
}

/// What a call asks of the VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Keep running.
    Continue,
    /// Print this line on stderr, then keep running.
    Log(String),
    /// Stop the VM.
    Exit(u8),
}

/// Decodes and checks one call; `Err` stops the VM.
pub fn handle(mem: &GuestMemory, number: u32, frame: &CallFrame) -> Result<Effect, Stop> {
    let violation = |v| Err(Stop::Protocol(v));
    if frame.cpl != 0 {
        return violation(Violation::UserModeCall {
            cpl: frame.cpl,
            rip: frame.rip,
        });
    }
    let [a0, a1, ..] = frame.args;
    match Hypercall::from_number(number) {
        None => violation(Violation::UnknownCall {
            number,
            rip: frame.rip,
        }),
        Some(Hypercall::Exit) => match u8::try_from(a0) {
            Ok(s) if s <= GUEST_MAX => Ok(Effect::Exit(s)),
            _ => violation(Violation::ExitStatus(a0)),
        },
        Some(Hypercall::Log) => {
            if a1 > MAX_LOG_LEN {
                return violation(Violation::LogTooLong(a1));
            }
            let mut buf = vec![0u8; a1 as usize];
            if mem.read_slice(&mut buf, GuestAddress(a0)).is_err() {
                return violation(Violation::LogRange { addr: a0, len: a1 });
            }
            Ok(Effect::Log(sanitize(&buf)))
        }
    }
}

/// Makes guest bytes safe to print on one line: invalid UTF-8 replaced, control characters
/// (terminal escapes, newlines) shown as `\x..`, trailing newline dropped.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemory {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).expect("mmap");
        m.write_slice(b"hello\n", GuestAddress(0x100))
            .expect("write");
        m
    }

    fn frame(args: [u64; 4]) -> CallFrame {
        CallFrame {
            cpl: 0,
            rip: 0x1000,
            args,
        }
    }

    fn violation(r: Result<Effect, Stop>) -> Violation {
        match r {
            Err(Stop::Protocol(v)) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn exit_passes_guest_statuses_only() {
        let m = mem();
        assert_eq!(
            handle(&m, 1, &frame([0, 0, 0, 0])).expect("ok"),
            Effect::Exit(0)
        );
        assert_eq!(
            handle(&m, 1, &frame([63, 0, 0, 0])).expect("ok"),
            Effect::Exit(63)
        );
        assert_eq!(
            violation(handle(&m, 1, &frame([64, 0, 0, 0]))),
            Violation::ExitStatus(64)
        );
        assert_eq!(
            violation(handle(&m, 1, &frame([u64::MAX, 0, 0, 0]))),
            Violation::ExitStatus(u64::MAX)
        );
    }

    #[test]
    fn log_reads_bounded_guest_memory() {
        let m = mem();
        assert_eq!(
            handle(&m, 2, &frame([0x100, 6, 0, 0])).expect("ok"),
            Effect::Log("hello".into())
        );
        assert_eq!(
            violation(handle(&m, 2, &frame([0xfffe, 16, 0, 0]))),
            Violation::LogRange {
                addr: 0xfffe,
                len: 16
            }
        );
        assert_eq!(
            violation(handle(&m, 2, &frame([u64::MAX, 1, 0, 0]))),
            Violation::LogRange {
                addr: u64::MAX,
                len: 1
            }
        );
        assert_eq!(
            violation(handle(&m, 2, &frame([0, MAX_LOG_LEN + 1, 0, 0]))),
            Violation::LogTooLong(MAX_LOG_LEN + 1)
        );
    }

    #[test]
    fn user_mode_and_unknown_calls_are_refused() {
        let m = mem();
        let user = CallFrame {
            cpl: 3,
            rip: 0x2000,
            args: [0; 4],
        };
        assert_eq!(
            violation(handle(&m, 1, &user)),
            Violation::UserModeCall {
                cpl: 3,
                rip: 0x2000
            }
        );
        assert_eq!(
            violation(handle(&m, 0xdead, &frame([0; 4]))),
            Violation::UnknownCall {
                number: 0xdead,
                rip: 0x1000
            }
        );
    }

    #[test]
    fn log_text_cannot_inject_terminal_controls() {
        assert_eq!(sanitize(b"a\x1b[2Jb\nc\n"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(sanitize(&[0x66, 0xff, 0x6f]), "f\u{fffd}o");
    }

    proptest::proptest! {
        /// Any register values, any number: a call either succeeds or is a violation; it never
        /// panics and never reads outside guest memory.
        #[test]
        fn arbitrary_calls_never_panic(number: u32, cpl in 0u16..4, args: [u64; 4]) {
            let m = mem();
            let _ = handle(&m, number, &CallFrame { cpl, rip: 0, args });
        }
    }
}
