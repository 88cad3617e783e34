//! The IDT: an entry stub per vector (pushing a dummy error code where the CPU pushes none, then
//! the vector) leading to the common entry in [`super::trap`].
//!
//! Gates are interrupt gates (interrupts masked in the kernel). Vector 3 (`int3`) has DPL 3: it
//! is the system-call trap. #DF and NMI run on their own IST stacks.

use super::gdt::{IST_DOUBLE_FAULT, IST_NMI};
use abi::layout::KERNEL_CS;
use core::arch::{asm, global_asm};

/// The system-call vector (`int3`).
pub const SYSCALL_VECTOR: u8 = 3;
/// The second trap measured in docs/kernel.md (`int 0x80` through a DPL-3 gate).
pub const INT80_VECTOR: u8 = 0x80;
/// The LAPIC timer.
pub const TIMER_VECTOR: u8 = 32;
/// The LAPIC's spurious vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;

global_asm!(
    ".macro TRAP_STUB vector, err",
    ".global trap_stub_\\vector",
    "trap_stub_\\vector:",
    ".if \\err == 0",
    "push 0",
    ".endif",
    "push \\vector",
    "jmp trap_common",
    ".endm",
    "TRAP_STUB 0, 0",
    "TRAP_STUB 1, 0",
    "TRAP_STUB 2, 0",
    "TRAP_STUB 3, 0",
    "TRAP_STUB 4, 0",
    "TRAP_STUB 5, 0",
    "TRAP_STUB 6, 0",
    "TRAP_STUB 7, 0",
    "TRAP_STUB 8, 1",
    "TRAP_STUB 9, 0",
    "TRAP_STUB 10, 1",
    "TRAP_STUB 11, 1",
    "TRAP_STUB 12, 1",
    "TRAP_STUB 13, 1",
    "TRAP_STUB 14, 1",
    "TRAP_STUB 15, 0",
    "TRAP_STUB 16, 0",
    "TRAP_STUB 17, 1",
    "TRAP_STUB 18, 0",
    "TRAP_STUB 19, 0",
    "TRAP_STUB 20, 0",
    "TRAP_STUB 21, 1",
    "TRAP_STUB 22, 0",
    "TRAP_STUB 23, 0",
    "TRAP_STUB 24, 0",
    "TRAP_STUB 25, 0",
    "TRAP_STUB 26, 0",
    "TRAP_STUB 27, 0",
    "TRAP_STUB 28, 0",
    "TRAP_STUB 29, 1",
    "TRAP_STUB 30, 1",
    "TRAP_STUB 31, 0",
    "TRAP_STUB 32, 0",
    "TRAP_STUB 128, 0",
    "TRAP_STUB 255, 0",
    // The stubs' addresses, in vector order (0..=31, 32, 128, 255), for `init`.
    ".section .rodata.trap_stubs, \"a\"",
    ".balign 8",
    ".global trap_stub_table",
    "trap_stub_table:",
    ".irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,128,255",
    ".quad trap_stub_\\v",
    ".endr",
    ".text",
);

/// Vectors with a stub, in the order of `trap_stub_table`.
const VECTORS: [u8; 35] = {
    let mut v = [0u8; 35];
    let mut i = 0;
    while i < 33 {
        v[i] = i as u8;
        i += 1;
    }
    v[33] = INT80_VECTOR;
    v[34] = SPURIOUS_VECTOR;
    v
};

unsafe extern "C" {
    static trap_stub_table: [u64; 35];
}

static mut IDT: [[u64; 2]; 256] = [[0; 2]; 256];

#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

fn gate(handler: u64, dpl: u64, ist: u8) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (u64::from(KERNEL_CS) << 16)
        | (u64::from(ist) << 32)
        | ((0x8e | (dpl << 5)) << 40) // present, interrupt gate
        | (((handler >> 16) & 0xffff) << 48);
    [low, handler >> 32]
}

/// Fills and loads the IDT.
pub fn init() {
    let idt = &raw mut IDT;
    for (i, &vector) in VECTORS.iter().enumerate() {
        // SAFETY: the table is a static array of 35 addresses emitted above.
        let handler = unsafe { (&raw const trap_stub_table).cast::<u64>().add(i).read() };
        let dpl = if vector == SYSCALL_VECTOR || vector == INT80_VECTOR {
            3
        } else {
            0
        };
        let ist = match vector {
            8 => IST_DOUBLE_FAULT,
            2 => IST_NMI,
            _ => 0,
        };
        // SAFETY: boot runs once on one CPU, before interrupts are enabled.
        unsafe { (*idt)[usize::from(vector)] = gate(handler, dpl, ist) };
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<[[u64; 2]; 256]>() - 1) as u16,
        base: idt as u64,
    };
    // SAFETY: the IDT is static and filled for every vector that can occur (the rest are
    // not-present, which would escalate to #GP/#DF, both handled).
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}
