//! The ring-0 runtime for small guests: everything a `#![no_std] #![no_main]` image needs to run
//! on this monitor, and nothing more.
//!
//! Rules, because ring 0 runs inside KVM-PVM's instruction emulator (see ARCHITECTURE.md):
//! - no SSE/xmm instruction may execute, so: no `core::fmt`, no floats, numbers are written by
//!   hand ([`num`]), and images are built with SSE disabled (the builder's `Flavor::Kernel`);
//! - keep paths short: every instruction costs ~0.2-0.6 us under emulation, every port access an
//!   exit;
//! - no panics on the normal paths (a panic drags in formatting code); parsers return `Option`;
//! - every `unsafe` block says why it holds.
//!
//! What is here: the `_start` entry point with its own stack ([`entry!`](crate::entry!)); the C memory functions
//! ([`mem`], exported as `memcpy` & co. by `rt`, which host tests leave out) and the
//! `rust_eh_personality` stub; COM1 output and input ([`serial`]); the hypercalls of
//! [`abi::hypercall`] ([`hypercall`]); port I/O, halting and the i8042 reset ([`cpu`]); the
//! boot-info block and the plain-ELF zero page ([`boot`]); number formatting and parsing
//! ([`num`]); the command line ([`cmdline`]); what a panic handler calls ([`panic`](mod@panic)).
//! The linker scripts for images live in `link/` (`image.ld` with the manifest note, `plain.ld`
//! without); dependents' build scripts find them as `DEP_BARE_LINK_DIR`.
#![cfg_attr(not(test), no_std)]

pub mod boot;
pub mod cmdline;
pub mod cpu;
pub mod hypercall;
pub mod mem;
pub mod num;
pub mod panic;
#[cfg(not(test))]
pub mod rt;
pub mod serial;
pub mod start;
