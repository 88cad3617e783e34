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
    /// While the control API is on: what happened, in the order it did (the event stream's
    /// order).
    pub log: Vec<Logged>,
    /// Recoveries whose end is in `log` (by index into the summary's recoveries).
    logged_ends: Vec<bool>,
}

/// One thing that happened while the VM ran, by its index into the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    /// A fault of the VMM's kinds carried out (`injections[i]`).
    Injection(usize),
    /// A server crashed (`recovery.recoveries[i]`).
    Fault(usize),
    /// That crash's recovery ended: the server runs again, or was left stopped.
    Recovery(usize),
}

impl GuestRecords {
    /// Publishes an injection carried out while the VM runs.
    pub fn publish_injection(&mut self, injection: crate::faults::record::Injection) {
        self.injections.push(injection);
        self.log.push(Logged::Injection(self.injections.len() - 1));
    }

    /// Publishes the recovery engine's summary after a fault or a restart: new crashes and
    /// newly ended recoveries join the log, in that order.
    pub fn publish_recovery(&mut self, summary: crate::recovery::report::Summary) {
        let all = &summary.recoveries;
        self.log
            .extend((self.logged_ends.len()..all.len()).map(Logged::Fault));
        self.logged_ends.resize(all.len(), false);
        for (i, r) in all.iter().enumerate() {
            if !self.logged_ends[i] && r.ended() {
                self.logged_ends[i] = true;
                self.log.push(Logged::Recovery(i));
            }
        }
        self.recovery = Some(summary);
    }
}
