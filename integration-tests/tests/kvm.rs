//! Integration tests that boot real guests under KVM (one test binary, one module per theme).
//!
//! Every test that boots a guest calls `require_kvm()` first and fails loudly without KVM.

mod kvm {
    pub mod api;
    pub mod bad_input;
    pub mod boot;
    pub mod declarations;
    pub mod demo;
    pub mod fleet;
    pub mod guest_os;
    pub mod host_io;
    pub mod hostile;
    pub mod no_sse;
    pub mod outputs;
    pub mod outside;
    pub mod pause;
    pub mod plain;
    pub mod policies;
    pub mod protocol;
    pub mod recovery;
    pub mod slurm;
    pub mod statuses;
    pub mod stops;
}

/// The `vmm` binary under test.
pub const VMM: &str = env!("CARGO_BIN_EXE_vmm-it");
