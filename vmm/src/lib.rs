//! `vmm`: a KVM virtual machine monitor built on the rust-vmm crates.
//!
//! Building a VM is a sequence of named steps from a validated configuration:
//!
//! ```text
//!  config ──► image (inspect ELF, read manifest) ──► layout (validate regions, plan memslots)
//!         ──► memory (GuestMemoryMmap + KVM memslots) ──► load (linux-loader) ──► boot structures
//!         ──► irqchip ──► vCPU (CPUID, registers) ──► devices ──► run (vCPU thread + event loop)
//! ```
//!
//! Every guest-written value (hypercall arguments, port data, memory the guest points at) is
//! untrusted: it is bounds-checked, and a bad one stops the VM with a one-line reason instead of
//! panicking the monitor. `unsafe` appears only where KVM or raw memory requires it.

// First, so that its `eprintln!` replaces the standard one in every module below.
#[macro_use]
pub mod log;

pub mod api;
pub mod api_client;
pub mod backend;
pub mod bench;
pub mod boot;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod devices;
pub mod event_loop;
pub mod faults;
pub mod files;
pub mod fleet;
pub mod image;
pub mod kick;
pub mod layout;
pub mod live;
pub mod memory;
pub mod metrics;
pub mod outcome;
pub mod pause;
pub mod progress;
pub mod records;
pub mod recovery;
pub mod report;
pub mod vcpu;
pub mod vm;
