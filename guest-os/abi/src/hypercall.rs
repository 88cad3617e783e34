//! The monitor (hypercall) interface: guest-to-VMM calls.
//!
//! A call is one 32-bit port write from guest ring 0: `out dx, eax` with `dx` =
//! [`HYPERCALL_PORT`] and `eax` = the call word. For the plain calls the word is the call
//! number and the arguments travel in `rdi`, `rsi`, `r8`, `r9` (a0..a3): the VMM reads them,
//! and the caller's privilege, from KVM on the resulting exit. The port is live only for images
//! that carry a region manifest; it lies clear of the legacy ports (0x60/0x64, 0x70, 0x80,
//! 0x3f8-0x3ff, 0xcf8-0xcff). The VMM resumes the guest after the `out` with no register
//! changed.
//!
//! ```text
//!  number  name       arguments                          effect
//!  1       EXIT       a0 = status (0..=63)               stop the VM; `vmm` exits with it
//!  2       LOG        a0 = guest-phys addr, a1 = length  print the bytes as one line on stderr
//!  3       FAULT      the monitor page                   a task stopped: its fault record and
//!                                                        crash context are in the page; the
//!                                                        VMM writes its verdict there before
//!                                                        it resumes the guest
//!  4       REPORT     the monitor page                   the workload's report is final
//!  5       BOUNDARY   the word: task, boundary number    a server reached a message boundary:
//!                                                        snapshot its state arena
//!  6       RESTARTED  the word: task; the page: TSC      a recovered task runs its first
//!                                                        instruction next
//!  7       SNAPSHOTS  the word: mask of tasks; the       the servers in the mask (bit i: task
//!                     page: their boundary numbers       i) passed a boundary not yet
//!                                                        snapshotted: snapshot each
//!  8       INJECT     the page: InjectRecord             a fault the VMM injects is due (START)
//!                                                        or its message is over (END): the
//!                                                        VMM corrupts or undoes, and answers
//!                                                        in the record
//! ```
//!
//! The recovery calls (FAULT, BOUNDARY, RESTARTED, SNAPSHOTS, INJECT) cost the VMM no register read: on KVM-PVM,
//! `KVM_GET_REGS` and `KVM_GET_SREGS` take ~10 us each, and BOUNDARY comes with every message a
//! server handles. Their arguments are in the monitor page ([`crate::monitor`]) or in the word
//! itself ([`call_word`]): the number in bits 0-7, the task index in bits 8-15, the low 16 bits
//! of the boundary number in bits 16-31 (BOUNDARY), or a mask of tasks 0-15 there (SNAPSHOTS). Without the registers the VMM cannot check
//! their CPL: it relies on the kernel granting ring 3 no port I/O (IOPL 0, no I/O bitmap); a
//! forged call could only hurt the guest that forged it, and its inputs are checked anyway.
//! Every plain call has the upper 24 bits of its word zero.
//!
//! BOUNDARY is synchronous: the VMM copies the server's dirty state pages before the guest goes
//! on. The bundled kernel batches instead: it notes each boundary (its number in the monitor
//! page) and makes one SNAPSHOTS call for every server with one pending when any of them is
//! about to run again, and hands the pending ones to the VMM with a FAULT; a server never runs,
//! and no crash is handled, before its pending snapshot is taken, so a reply released in
//! between is covered all the same. FAULT's panic text is
//! named in the crash context (guest-physical = the task's own address, at most
//! [`MAX_PANIC_TEXT`] bytes). RESTARTED's TSC, read just before the task's first instruction, is
//! set against the fault record's `entry_tsc`: the recovery latency.
//!
//! The VMM stops the VM with [`crate::status::GUEST_PROTOCOL`] and a one-line reason on anything
//! else: a plain call from CPL 3, an access that is not a 4-byte write, an unknown word, or bad
//! arguments.

/// The one hypercall port.
pub const HYPERCALL_PORT: u16 = 0x0510;
/// Longest line `LOG` accepts, in bytes.
pub const MAX_LOG_LEN: u64 = 1024;
/// Longest panic text `FAULT` passes, in bytes (the VMM cuts longer text).
pub const MAX_PANIC_TEXT: u64 = 128;

/// The port word of recovery call `call` about task `task` with 16 bits `extra` (the low bits
/// of the boundary number for BOUNDARY, the mask of tasks for SNAPSHOTS); see the module doc.
pub const fn call_word(call: Hypercall, task: u8, extra: u16) -> u32 {
    call as u32 | (task as u32) << 8 | (extra as u32) << 16
}

/// A recovery call decoded from its port word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryCall {
    /// FAULT, BOUNDARY, RESTARTED or SNAPSHOTS.
    pub call: Hypercall,
    /// The task index (bits 8-15).
    pub task: u8,
    /// Bits 16-31.
    pub extra: u16,
}

/// The recovery call in `word`, if it is one (plain calls are decoded with their registers).
pub const fn recovery_call(word: u32) -> Option<RecoveryCall> {
    let call = match Hypercall::from_number(word & 0xff) {
        Some(
            c @ (Hypercall::Fault
            | Hypercall::Boundary
            | Hypercall::Restarted
            | Hypercall::Snapshots
            | Hypercall::Inject),
        ) => c,
        _ => return None,
    };
    Some(RecoveryCall {
        call,
        task: (word >> 8) as u8,
        extra: (word >> 16) as u16,
    })
}

/// Call numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hypercall {
    /// Stop the VM with status a0 (0..=63).
    Exit = 1,
    /// Log the a1 bytes at guest-physical a0 (at most [`MAX_LOG_LEN`]) as one line.
    Log = 2,
    /// A task stopped: the monitor page's fault record and crash context describe it; the
    /// VMM answers in the page's verdict.
    Fault = 3,
    /// The workload finished: the monitor page's workload report holds its figures.
    Report = 4,
    /// A server reached its message boundary (task and number in the word: [`call_word`]):
    /// snapshot its state arena.
    Boundary = 5,
    /// A recovered task (in the word) runs its first instruction next; the monitor page holds
    /// the guest TSC now.
    Restarted = 6,
    /// The servers in the word's mask (bits 16-31, bit i = task i) reached a boundary that was
    /// not snapshotted yet; the monitor page's `snapshot_seq` holds their numbers.
    Snapshots = 7,
    /// A fault the VMM injects is due, or its message is over: the monitor page's
    /// [`crate::monitor::InjectRecord`] says which (and the VMM answers there).
    Inject = 8,
}

impl Hypercall {
    /// The call with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::Exit),
            2 => Some(Self::Log),
            3 => Some(Self::Fault),
            4 => Some(Self::Report),
            5 => Some(Self::Boundary),
            6 => Some(Self::Restarted),
            7 => Some(Self::Snapshots),
            8 => Some(Self::Inject),
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
            Hypercall::Boundary,
            Hypercall::Restarted,
            Hypercall::Snapshots,
            Hypercall::Inject,
        ] {
            assert_eq!(Hypercall::from_number(call as u32), Some(call));
        }
        assert_eq!(Hypercall::from_number(0), None);
        assert_eq!(Hypercall::from_number(u32::MAX), None);
    }

    #[test]
    fn recovery_words_carry_task_and_number() {
        let w = call_word(Hypercall::Boundary, 4, 0x2345);
        let c = recovery_call(w).expect("a recovery call");
        assert_eq!((c.call, c.task, c.extra), (Hypercall::Boundary, 4, 0x2345));
        assert_eq!(Hypercall::from_number(w), None, "not a plain call number");
        assert_eq!(recovery_call(Hypercall::Log as u32), None);
        assert_eq!(recovery_call(Hypercall::Exit as u32 | 0x100), None);
        let m = recovery_call(call_word(Hypercall::Snapshots, 0, 0b1010)).expect("SNAPSHOTS");
        assert_eq!((m.call, m.extra), (Hypercall::Snapshots, 0b1010));
        let f = recovery_call(Hypercall::Fault as u32).expect("FAULT");
        assert_eq!((f.call, f.task, f.extra), (Hypercall::Fault, 0, 0));
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
