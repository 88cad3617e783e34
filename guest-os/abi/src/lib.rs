//! The contract between the guest and the VMM, defined once and used by both sides.
//!
//! Everything either side reads from the other lives here: the fixed low-memory layout the VMM
//! builds before entering the guest ([`layout`]), the region manifest an image declares in an ELF
//! note ([`manifest`]), the boot-info block the VMM hands the guest ([`boot`]), the hypercall
//! (monitor) interface ([`hypercall`]) with the records of the monitor page ([`monitor`]), faults
//! and fault injection ([`fault`]), what each server's requests mean ([`requests`]), the
//! system-call interface between tasks and the guest kernel ([`ipc`]) and the `vmm` process exit-status table ([`status`]).
//!
//! Rules: `no_std`, no `unsafe`, no allocation. Every shared structure is `#[repr(C)]` with
//! explicit padding and derives zerocopy's traits, so either side can view it as bytes and back
//! without hand-written casts. Values read from the other side are untrusted: the reader
//! validates them (the VMM never trusts a guest-written field, and the guest checks the magic and
//! version of what the VMM wrote).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod boot;
pub mod fault;
pub mod hypercall;
pub mod ipc;
pub mod layout;
pub mod manifest;
pub mod monitor;
pub mod requests;
pub mod status;

pub use boot::{Backend, BootInfo, MemKind, MemRange};
pub use manifest::{Manifest, ManifestNote, Range, ServerDecl};
