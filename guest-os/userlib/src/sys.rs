//! The trap into the kernel: `int3` through the kernel's DPL-3 gate at vector 3 (see
//! docs/kernel.md for why `int3`). Registers as in [`abi::ipc`]: call number in rax, target in
//! rdi, label in rsi, words in rdx, r8, r9, r10, r12, r13; the same registers come back.

use abi::ipc::{MSG_WORDS, Sys};
use core::arch::asm;

/// What goes in and comes out of a system call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// rax: status on return.
    pub status: u64,
    /// rdi: target / sender.
    pub target: u64,
    /// rsi: label.
    pub label: u64,
    /// The message words.
    pub words: [u64; MSG_WORDS],
    /// rcx: on a delivered message, the fault planned for it (an `abi::fault::FaultKind`
    /// number; 0 for none).
    pub fault: u64,
}

/// Makes system call `sys` with these registers; returns what the kernel left in them.
#[inline(always)]
pub fn call(sys: Sys, target: u64, label: u64, words: [u64; MSG_WORDS]) -> Regs {
    let mut r = Regs {
        status: sys as u64,
        target,
        label,
        words,
        fault: 0,
    };
    // SAFETY: `int3` enters the kernel through its DPL-3 gate; the kernel reads and writes only
    // the registers named here (all declared inout; rcx only changes on a delivered message)
    // and preserves every other register, the
    // stack and the flags' user bits; it touches no memory of this task except what a call's
    // arguments name (console text, panic text), which is why `nomem` is not claimed.
    unsafe {
        asm!(
            "int3",
            inout("rax") r.status,
            inout("rdi") r.target,
            inout("rsi") r.label,
            inout("rdx") r.words[0],
            inout("r8") r.words[1],
            inout("r9") r.words[2],
            inout("r10") r.words[3],
            inout("r12") r.words[4],
            inout("r13") r.words[5],
            inout("rcx") r.fault,
            options(nostack)
        );
    }
    r
}

/// The null call through `int 0x80` (a DPL-3 gate): one of the traps measured for
/// docs/kernel.md. Returns the status.
pub fn null_via_int80() -> u64 {
    let mut rax = Sys::Null as u64;
    // SAFETY: as for `call`; the kernel treats vector 0x80 like `int3` and changes only rax.
    unsafe { asm!("int 0x80", inout("rax") rax, options(nostack)) };
    rax
}

/// The null call through the `ud2` stub at text base + 16 (put there by [`crate::entry!`]):
/// the other trap measured for docs/kernel.md. Returns the status.
pub fn null_via_ud2() -> u64 {
    let mut rax = Sys::Null as u64;
    // SAFETY: the stub is `ud2; ret` at `_start + 16`; the kernel recognises a #UD at exactly
    // that address as a system call, resumes after the `ud2` and changes only rax.
    unsafe {
        asm!(
            "lea r11, [rip + _start + 16]",
            "call r11",
            inout("rax") rax,
            out("r11") _,
        )
    };
    rax
}
