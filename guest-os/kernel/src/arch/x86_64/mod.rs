//! What only an x86_64 CPU can do: descriptor tables, the trap path, paging, the LAPIC timer,
//! FPU state. Everything else is in the kernel's host-testable modules.

pub mod apic;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod paging;
pub mod trap;
