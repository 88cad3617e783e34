//! The `--report` file of `vmm run`: how the run ended, the workload's figures, what the
//! recovery engine did, and every planned fault as it went. One shape, documented field by
//! field in docs/recovery.md and docs/fault-injection.md.

use crate::faults::classify::Class;
use crate::faults::record::Injection;
use crate::recovery::report::{Misdeclared, RecoveryEntry, ServerSummary, SnapshotSummary};
use abi::monitor::WorkloadReport;
use serde::Serialize;

/// The workload's figures in the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WorkloadFigures {
    /// Requests issued.
    pub ops: u64,
    /// Unexpected error replies.
    pub errors: u64,
    /// Requests retried after "peer restarted".
    pub retries: u64,
    /// Requests whose effect a server declared lost.
    pub lost: u64,
    /// Replies or reads that disagreed with the model.
    pub mismatches: u64,
}

impl From<WorkloadReport> for WorkloadFigures {
    fn from(w: WorkloadReport) -> Self {
        Self {
            ops: w.ops,
            errors: w.errors,
            retries: w.retries,
            lost: w.lost,
            mismatches: w.mismatches,
        }
    }
}

impl From<WorkloadFigures> for WorkloadReport {
    fn from(w: WorkloadFigures) -> Self {
        Self {
            ops: w.ops,
            errors: w.errors,
            retries: w.retries,
            lost: w.lost,
            mismatches: w.mismatches,
        }
    }
}

/// The whole `--report` file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// `vmm`'s exit status.
    pub exit_status: i32,
    /// `pvm` or `hardware` (null when the run stopped before KVM was opened).
    pub backend: Option<&'static str>,
    /// The one-line reason for the ending, if it needs one.
    pub message: Option<String>,
    /// From VM creation to the vCPU's stop, in milliseconds.
    pub elapsed_ms: Option<f64>,
    /// The workload's figures, if it reported them.
    pub workload: Option<WorkloadFigures>,
    /// When it did not (a run stopped before its workload ended, e.g. `ops=forever` in `vmm
    /// demo`): what the clients had published so far, all servers summed (null with a
    /// workload report, or for an image without a monitor page).
    pub workload_so_far: Option<WorkloadFigures>,
    /// Every declared server.
    pub servers: Vec<ServerSummary>,
    /// Every recovery.
    pub recoveries: Vec<RecoveryEntry>,
    /// Boundary snapshots.
    pub snapshots: SnapshotSummary,
    /// Requests caught contradicting their read-only declaration.
    pub misdeclared_requests: Vec<Misdeclared>,
    /// Faults the guest reported (recovered or not).
    pub faults: u64,
    /// Every planned fault (`--fault`), as it went: what was corrupted, whether it was used,
    /// how it was detected, its class.
    pub injections: Vec<Injection>,
    /// The run's class: the worst of its faults' (null without `--fault`).
    pub classification: Option<Class>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_serialize_with_the_documented_keys() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old").expect("write");
        let report = RunReport {
            exit_status: 0,
            backend: Some("pvm"),
            message: None,
            elapsed_ms: Some(1.5),
            workload: Some(WorkloadReport::default().into()),
            workload_so_far: None,
            servers: vec![ServerSummary {
                name: "kv".into(),
                crashes: 1,
                restores: 1,
                peer_rollbacks: 0,
                generation: 1,
                snapshot_versions: vec![3, 4],
            }],
            recoveries: Vec::new(),
            snapshots: SnapshotSummary::default(),
            misdeclared_requests: Vec::new(),
            faults: 1,
            injections: Vec::new(),
            classification: Some(Class::Recovered),
        };
        crate::bench::write_json_atomic(&path, &report).expect("written");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(v["exit_status"], 0);
        assert_eq!(v["backend"], "pvm");
        assert_eq!(v["workload"]["mismatches"], 0);
        assert!(v["workload_so_far"].is_null(), "{v}");
        assert_eq!(v["servers"][0]["generation"], 1);
        assert_eq!(v["classification"], "recovered");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temp left"
        );
    }
}
