//! What the guest handed the VMM during a run (its workload's figures, its faults, what the
//! recovery engine did), shared between the vCPU thread, which fills it, and the run's report.

use abi::monitor::WorkloadReport;

/// What the guest handed the VMM during a run, shared between the vCPU thread and the run's
/// report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GuestRecords {
    /// The workload's report, if one arrived.
    pub workload: Option<WorkloadReport>,
    /// FaultReport records received.
    pub faults: u64,
    /// What the recovery engine did (runs with one).
    pub recovery: Option<crate::recovery::report::Summary>,
    /// Every planned fault, as it went (runs with `--fault`).
    pub injections: Vec<crate::faults::record::Injection>,
    /// Tasks that crashed though no fault targeted them.
    pub bystanders: Vec<String>,
    /// The guest's last LOG line (sanitized): what a guest that stops with a nonzero status
    /// said last, for vmm's own line about it.
    pub last_log: Option<String>,
}
