//! Deliberate faults, so that tests and the fault injector (`vmm run --fault`) can check that
//! the kernel confines each to the task that takes it and the VMM recovers it. Each takes the
//! real CPU exception named, in the task's own code.

use abi::fault::FaultKind;
use core::arch::asm;

/// Takes the fault the kernel planned for the message just received ([`FaultKind`] number,
/// without the `abi::fault::AFTER_SEND` bit, which the server loop handles; 0, unknown numbers
/// and the kinds the VMM injects from outside, which the kernel never hands over, do nothing). Most never return; `corrupt-state` returns after its wild
/// write, and the kernel catches it at the task's next boundary.
pub fn planned(kind: u64) {
    let Some(kind) = FaultKind::from_number(kind) else {
        return;
    };
    match kind {
        FaultKind::NullDeref => {
            let _ = null_read();
        }
        FaultKind::IllegalInsn => illegal_instruction(),
        FaultKind::DivZero => {
            let _ = divide_by_zero(crate::ipc::ticks());
        }
        FaultKind::Panic => panic!("injected fault"),
        FaultKind::Hang => hang(),
        FaultKind::StackOverflow => stack_overflow(),
        FaultKind::CorruptState => crate::state::corrupt_last_canary(),
        FaultKind::GeneralProtection => privileged_instruction(),
        _ => {}
    }
}

/// Spins forever: the kernel stops the task when its per-message budget runs out.
pub fn hang() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Reads address 0: a page fault (#PF, address 0x0).
pub fn null_read() -> u64 {
    let value: u64;
    // SAFETY: nothing is mapped at 0, so the read faults and the kernel stops this task; the
    // instruction never completes, so no value is ever produced from it.
    unsafe { asm!("mov {}, qword ptr [0]", out(reg) value, options(nostack, readonly)) };
    value
}

/// Executes `ud2` (not at the system-call stub): an illegal instruction (#UD).
pub fn illegal_instruction() {
    // SAFETY: `ud2` only raises #UD; the kernel stops this task.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

/// Divides by zero with `div`: a divide error (#DE).
pub fn divide_by_zero(dividend: u64) -> u64 {
    let quotient: u64;
    // SAFETY: `div` by zero raises #DE before writing anything; the kernel stops this task.
    unsafe {
        asm!("xor edx, edx", "xor ecx, ecx", "div rcx",
            inout("rax") dividend => quotient, out("rdx") _, out("rcx") _, options(nomem, nostack))
    };
    quotient
}

/// Executes `hlt` in ring 3: a general-protection fault (#GP).
pub fn privileged_instruction() {
    // SAFETY: `hlt` at CPL 3 raises #GP; the kernel stops this task.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// Pushes until the stack runs into its guard page: a stack overflow (#PF in the guard page).
pub fn stack_overflow() -> ! {
    // SAFETY: the pushes write only below the stack pointer, into this task's own stack, until
    // the first one that reaches the unmapped guard page faults; the kernel stops the task.
    unsafe { asm!("2:", "push rax", "jmp 2b", options(noreturn)) }
}
