//! The guest kernel's algorithms, host-testable: tasks and their saved registers ([`task`]),
//! the run queues ([`sched`]), message passing ([`ipc`]), system-call dispatch ([`syscall`]),
//! fault confinement ([`fault`]), one-shot timers ([`timer`]), user-pointer checks ([`umem`]),
//! address-space layout and page-table building ([`aspace`]) and the boot command line's check
//! ([`bootargs`]). The binary (`main.rs`,
//! `arch/x86_64`) adds what only the machine can do: traps, page-table switches, the LAPIC
//! timer, the console and the hypercalls.
//!
//! Design rules (ring 0 is emulated on KVM-PVM, ~0.2-0.6 us per instruction):
//! - short paths: constant-time queues, messages in registers (six words and a label), no
//!   copying of memory in ring 0 beyond a console line;
//! - no calls on the trap-to-return paths (system calls, faults): what they use is
//!   `#[inline(always)]`, rare branches stay out of line. Under emulation a call, its return and
//!   a prologue's pushes cost more than their instruction count (measured: inlining the fault
//!   path took 22 of its 373 instructions off it and ~12% of its time);
//! - no SSE, no floats, no `core::fmt` (the kernel is built with SSE disabled);
//! - the kernel runs with interrupts masked; it takes them only from ring 3 or its idle loop;
//! - page tables and memslots never change after boot (a change zaps PVM's shadow paging);
//! - the kernel owns task generations; a task's crash never stops the kernel or its peers;
//! - nothing a task passes is trusted: ids carry generations, user pointers are checked
//!   ([`umem`]), unknown calls fail.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod aspace;
pub mod bootargs;
pub mod fault;
pub mod inject;
pub mod ipc;
pub mod kernel;
pub mod sched;
pub mod stepping;
pub mod syscall;
pub mod task;
pub mod timer;
pub mod umem;
pub mod window;

pub use kernel::{Effect, Intact, Kernel, Platform, TaskSetup};

#[cfg(test)]
mod tests;
