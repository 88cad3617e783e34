//! The trap path, both ways.
//!
//! From ring 3 the CPU switches to the TSS's RSP0, which points just past the current task's
//! context record ([`SavedRegs`]), and pushes its frame there; the stub pushes the error code
//! and vector, `trap_common` the general registers. The record is then complete, written in
//! place, with nothing copied. `trap_common` moves to the kernel stack and calls [`trap_user`],
//! which returns the record of the task to resume; `trap_restore` pops it and `iretq`s.
//!
//! From ring 0 (only the idle loop takes interrupts, and kernel faults are fatal) there is no
//! stack switch: [`trap_kernel`] runs on the interrupted stack and returns to it.
//!
//! ```text
//!  task's record:  rax rbx rcx rdx rsi rdi rbp r8..r15 | vector error | rip cs rflags rsp ss
//!                  └──────── trap_common ────────────┘  └── stub ───┘   └──── CPU ─────────┘
//!                                                                        RSP0 = end of record
//! ```

use core::arch::global_asm;
use kernel::task::SavedRegs;

/// Bytes of the kernel stack (traps from ring 3 run on it).
pub const KSTACK_SIZE: usize = 16 * 1024;

/// A kernel stack.
#[derive(Debug)]
#[repr(C, align(16))]
pub struct Stack<const N: usize>(pub [u8; N]);

/// The stack the kernel runs on after a trap from ring 3.
pub static mut KSTACK: Stack<KSTACK_SIZE> = Stack([0; KSTACK_SIZE]);

global_asm!(
    ".global trap_common",
    "trap_common:",
    "push r15",
    "push r14",
    "push r13",
    "push r12",
    "push r11",
    "push r10",
    "push r9",
    "push r8",
    "push rbp",
    "push rdi",
    "push rsi",
    "push rdx",
    "push rcx",
    "push rbx",
    "push rax",
    // CS of the interrupted code: 15 registers, vector, error code, rip, then cs.
    "test qword ptr [rsp + 18*8], 3",
    "jz 2f",
    "mov rdi, rsp",
    "lea rsp, [rip + {kstack} + {kstack_size}]",
    "call {user}",
    "mov rsp, rax",
    ".global trap_restore",
    "trap_restore:",
    "pop rax",
    "pop rbx",
    "pop rcx",
    "pop rdx",
    "pop rsi",
    "pop rdi",
    "pop rbp",
    "pop r8",
    "pop r9",
    "pop r10",
    "pop r11",
    "pop r12",
    "pop r13",
    "pop r14",
    "pop r15",
    "add rsp, 16",
    "iretq",
    "2:",
    "mov rdi, rsp",
    "call {kernel}",
    "jmp trap_restore",
    kstack = sym KSTACK,
    kstack_size = const KSTACK_SIZE,
    user = sym trap_user,
    kernel = sym trap_kernel,
);

/// A trap from ring 3; `regs` is the current task's completed record. Returns the record of the
/// task to resume.
extern "C" fn trap_user(regs: *mut SavedRegs) -> *mut SavedRegs {
    crate::dispatch::from_user(regs)
}

/// An interrupt or exception in ring 0.
extern "C" fn trap_kernel(regs: *mut SavedRegs) {
    crate::dispatch::from_kernel(regs);
}
