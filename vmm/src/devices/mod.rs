//! Emulated devices and the port-I/O / MMIO dispatch of the vCPU thread.
//!
//! ```text
//!  port 0x3f8-0x3ff  COM1 16550 (vm-superio)      stdout / stdin, IRQ 4 through an irqfd
//!  port 0x60, 0x64   i8042, minimal               0xFE to 0x64 stops the VM (reset)
//!  port 0x510        monitor (hypercalls)         our images only, ring 0 only
//!  anything else     plain images: counted, reads return all ones (or stop with --strict-io)
//!                    our images: stop with a protocol violation
//! ```

pub mod bus;
pub mod i8042;
pub mod monitor;
pub mod serial;

pub use bus::{Bus, IoCounters};
