//! The recovery part of `vmm run --report FILE`, and the report file itself.
//!
//! ```json
//! {"exit_status": 0, "backend": "pvm", "message": null, "elapsed_ms": 512.3,
//!  "workload": {"ops": 600, "errors": 0, "retries": 1, "lost": 0, "mismatches": 0},
//!  "servers": [{"name": "kv", "crashes": 1, "restores": 1, "generation": 1, ...}, ...],
//!  "recoveries": [{"server": "kv", "cause": "null-deref", "action": "rollback",
//!                  "pages_restored": 2, "latency_us": 151.2, ..., "decision": {...}}],
//!  "snapshots": {"boundaries": 1210, "pages_copied": 1650, ...}}
//! ```
//!
//! The file is written atomically ([`crate::bench::write_json_atomic`]: a temporary file in the
//! same directory, then a rename).

use crate::devices::monitor::FaultReport;
use abi::fault::FaultKind;
use abi::fault::{NO_VECTOR, exception_name};
use policies::{Cause, DecisionRecord, Outcome};
use serde::Serialize;

/// One server in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ServerSummary {
    /// Its name.
    pub name: String,
    /// Times it crashed.
    pub crashes: u64,
    /// Times it was restored and restarted.
    pub restores: u64,
    /// Times it was rolled back with a crashed server that depended on it (a consistent cut).
    pub peer_rollbacks: u64,
    /// Its generation now.
    pub generation: u32,
    /// Snapshot versions kept at the end (boundary numbers, oldest first).
    pub snapshot_versions: Vec<u64>,
}

/// Boundary snapshots, summed over all servers.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SnapshotSummary {
    /// Boundaries snapshotted.
    pub boundaries: u64,
    /// BOUNDARY and SNAPSHOTS calls that carried them (a SNAPSHOTS call carries every server
    /// with a snapshot pending; the snapshots a FAULT hands over are not counted here).
    pub exits: u64,
    /// Pages the dirty logs reported.
    pub dirty_pages: u64,
    /// Pages that had changed and were copied.
    pub pages_copied: u64,
    /// Write-protect faults the servers took to dirty them: pages found dirty that had been
    /// re-protected (each cost ~22 us under KVM-PVM; pages left writable take none).
    pub write_faults: u64,
    /// VMM time spent in them (dirty log, copies), in microseconds.
    pub time_us: f64,
}

/// One recovery (or fail-stop) in the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecoveryEntry {
    /// The crashed server.
    pub server: String,
    /// Why it crashed, in the fault vocabulary (`null-deref`, `illegal-insn`, ...: the
    /// `--fault` kind's name where one produces it).
    pub cause: String,
    /// The `--fault` kind planned for the message it was handling (null: nobody planned this
    /// crash).
    pub injected: Option<&'static str>,
    /// What the CPU raised, for a crash that was a CPU exception (null otherwise).
    pub exception: Option<Exception>,
    /// What was done (`rollback`, `replay`, `restart-fresh`, `fail-stop`).
    pub action: String,
    /// Pages written back.
    pub pages_restored: u64,
    /// From the kernel's fault entry to the restarted server's first instruction (null when
    /// it has not run again).
    pub latency_us: Option<f64>,
    /// Its generation when it crashed.
    pub generation: u32,
    /// Where it was (guest virtual = physical).
    pub rip: u64,
    /// The address the cause is about: the faulting one for page faults (the guard page's for
    /// a stack overflow); the overwritten canary's for a corrupt state.
    pub addr: Option<u64>,
    /// Messages it had received.
    pub messages: u64,
    /// Its panic message, for panics.
    pub panic: Option<String>,
    /// Every other server's state arena was byte for byte the same after the restore as
    /// before it (only with the isolation check on).
    pub peers_intact: Option<bool>,
    /// How long the isolation check's hashing took, in µs (only with the check on; not part of
    /// `latency_us`).
    pub isolation_check_us: Option<f64>,
    /// Servers whose boundary was still waiting for its snapshot when this one crashed (the
    /// kernel batches snapshots): taken before the decision, so that a rollback of theirs goes
    /// back to that boundary at the latest.
    pub snapshots_taken_first: Vec<String>,
    /// Servers that were being recovered when this one crashed (restored, but not yet back at
    /// their first instruction, e.g. waiting out a backoff).
    pub during_recovery_of: Vec<String>,
    /// Peers rolled back with it (a consistent cut), each to its snapshot from before the
    /// first state-changing message the crashed server sent it.
    pub peers_rolled_back: Vec<PeerRestore>,
    /// The policy's decision record.
    pub decision: DecisionRecord,
}

/// A CPU exception, as the CPU raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Exception {
    /// Its vector.
    pub vector: u32,
    /// The CPU's name for it (`page-fault`, `invalid-opcode`, ...; `unknown` past the
    /// architectural ones).
    pub name: &'static str,
    /// CR2, for a page fault.
    pub addr: Option<u64>,
}

/// One peer rolled back in a consistent cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerRestore {
    /// The peer.
    pub server: String,
    /// The snapshot (boundary number) it went back to.
    pub to_snapshot: u64,
    /// Pages written back.
    pub pages: u64,
}

/// What carrying a decision out did (nothing, for a fail-stop).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Carried {
    /// Pages of the crashed server written back.
    pub pages: u64,
    /// The peers rolled back with it.
    pub peers: Vec<PeerRestore>,
    /// With `--check-isolation`: whether the servers outside the cut were untouched, and how
    /// long the hashing took, in µs.
    pub isolation: Option<(bool, f64)>,
}

/// What else was going on when the server crashed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Circumstances {
    /// Servers whose pending snapshots the fault handed over.
    pub snapshots_taken_first: Vec<String>,
    /// Servers being recovered at the time.
    pub during_recovery_of: Vec<String>,
}

impl RecoveryEntry {
    /// Whether its recovery has ended: the server ran again (its latency is known), or it was
    /// left stopped.
    pub fn ended(&self) -> bool {
        self.latency_us.is_some() || self.action == "fail-stop"
    }

    /// The entry of `fault`, decided by `decision`, carried out as `carried`, under
    /// `circumstances`: the whole record, built here (its latency follows when the server runs
    /// again, [`RecoveryEntry::complete`]).
    pub fn new(
        fault: &FaultReport,
        decision: &DecisionRecord,
        carried: Carried,
        circumstances: Circumstances,
    ) -> Self {
        let r = &fault.record;
        Self {
            server: decision.server.name.clone(),
            cause: decision.cause.name().to_owned(),
            action: decision.action.name().to_owned(),
            pages_restored: carried.pages,
            latency_us: None,
            generation: r.generation,
            injected: fault.context.injected().map(FaultKind::name),
            exception: (r.vector != NO_VECTOR).then(|| Exception {
                vector: r.vector,
                name: exception_name(r.vector).unwrap_or("unknown"),
                addr: (r.vector == 14).then_some(r.addr),
            }),
            rip: r.rip,
            addr: match decision.cause {
                // The guard-page address, and the overwritten canary's.
                Cause::StackOverflow | Cause::CorruptState => Some(r.addr),
                _ => decision.addr,
            },
            messages: r.messages,
            panic: fault.text.clone(),
            peers_intact: carried.isolation.map(|(intact, _)| intact),
            isolation_check_us: carried.isolation.map(|(_, took)| took),
            snapshots_taken_first: circumstances.snapshots_taken_first,
            during_recovery_of: circumstances.during_recovery_of,
            peers_rolled_back: carried.peers,
            decision: decision.clone(),
        }
    }

    /// The restarted server ran again `latency_us` after its fault.
    pub fn complete(&mut self, latency_us: f64) {
        self.latency_us = Some(latency_us);
        let peer_pages: u64 = self.peers_rolled_back.iter().map(|p| p.pages).sum();
        self.decision.outcome = Outcome::Recovered {
            pages_restored: self.pages_restored + peer_pages,
            latency_us,
        };
    }
}

/// A request declared read-only that changed its server's state: the VMM's check of the
/// image's declarations caught it, and takes it as state-changing from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Misdeclared {
    /// The server.
    pub server: String,
    /// The request's label.
    pub label: u16,
    /// Its name in the server's table.
    pub name: Option<String>,
    /// The boundary whose snapshot found the change.
    pub boundary: u64,
    /// Pages it changed.
    pub pages: u64,
}

impl std::fmt::Display for Misdeclared {
    /// `declaration: kv request GET (label 2) is declared read-only but changed 1 page(s) of
    /// kv's state before boundary 17: taken as state-changing from now on`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "declaration: {} request {} is declared read-only but changed {} page(s) of {}'s state before boundary {}: \
             taken as state-changing from now on",
            self.server,
            policies::request_text(u32::from(self.label), self.name.as_deref()),
            self.pages,
            self.server,
            self.boundary
        )
    }
}

/// What the engine did in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Every declared server.
    pub servers: Vec<ServerSummary>,
    /// Every recovery, in order.
    pub recoveries: Vec<RecoveryEntry>,
    /// Boundary snapshots.
    pub snapshots: SnapshotSummary,
    /// Requests caught contradicting their read-only declaration.
    pub misdeclared_requests: Vec<Misdeclared>,
}
