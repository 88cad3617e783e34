//! Fault injection: the faults `vmm run --fault` plans, from the grammar ([`spec`]) to the
//! monitor page's plan ([`plan`]).
//!
//! A server executes the crash kinds itself, at the message the kernel hands them over with;
//! the VMM carries out the code and data kinds from outside, when the kernel tells it (INJECT)
//! that the planned message has come.

pub mod choose;
pub mod classify;
pub mod code;
pub mod injector;
pub mod plan;
pub mod record;
pub mod sites;
pub mod spec;
pub mod targets;

pub use spec::{FaultSpec, FaultSpecError, Target};

/// The timeout of a run that faults the kernel, when none is given.
pub const KERNEL_FAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// What `--fault-seed` is when not given.
pub const DEFAULT_SEED: u64 = 1;

/// The faults a run injects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultOptions {
    /// The `--fault` specs, checked for form.
    pub specs: Vec<FaultSpec>,
    /// `--fault-seed`: picks what the specs leave open.
    pub seed: u64,
}

impl Default for FaultOptions {
    fn default() -> Self {
        Self {
            specs: Vec::new(),
            seed: DEFAULT_SEED,
        }
    }
}
