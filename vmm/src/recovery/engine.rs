//! The engine of one VM: the three calls the guest kernel makes (BOUNDARY/SNAPSHOTS, FAULT,
//! RESTARTED) taken through their phases, each in a module of its own:
//!
//! ```text
//!  SNAPSHOTS  ─► snapshots (commit) ─► declarations (check) ─► protocol (read-only mask)
//!  FAULT      ─► pending snapshots ─► translate (facts) ─► decide (policy, plan)
//!             ─► carry_out (peers, then the server) with isolation around it
//!             ─► protocol (verdict) ─► report (the record, built once)
//!  RESTARTED  ─► report (latency completes the record) ─► events (the line)
//! ```

use crate::devices::monitor::{FaultReport, PendingSnapshot};
use crate::layout::{Layout, SlotKind};
use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use crate::recovery::decide::{self, Plan};
use crate::recovery::declarations::Finding;
use crate::recovery::dirty::DirtyLog;
use crate::recovery::error::RecoveryError;
use crate::recovery::events::{self, Event, EventLog};
use crate::recovery::report::{
    Carried, Circumstances, Misdeclared, PeerRestore, RecoveryEntry, ServerSummary,
    SnapshotSummary, Summary,
};
use crate::recovery::server::{Pending, Server};
use crate::recovery::translate::Peer as _;
use crate::recovery::{
    MAX_VERSIONS, MIN_VERSIONS, RecoveryOptions, isolation, protocol, translate,
};
use abi::monitor::{CrashContext, VerdictAction};
use policies::{Crash, DecisionRecord, Micros, Outcome, RecoveryPolicy, ServerAction};
use std::time::{Duration, Instant};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion};

/// The engine of one VM.
#[derive(Debug)]
pub struct Engine<L: DirtyLog> {
    mem: GuestMemory,
    page: u64,
    log: L,
    servers: Vec<Server>,
    options: RecoveryOptions,
    clock: Instant,
    tsc_khz: Option<u32>,
    records: Vec<RecoveryEntry>,
    snapshots: SnapshotSummary,
    misdeclared: Vec<Misdeclared>,
    events: EventLog,
    /// Time the VM spent paused so far: guest TSC cycles the guest's TSC ran on meanwhile
    /// (none where KVM stops it) and host time.
    paused: (u64, Duration),
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl<L: DirtyLog> Engine<L> {
    /// Takes version 0 (the boot image) of every server's state arena in `layout` and clears
    /// their dirty logs; `tsc_khz` converts guest TSC deltas into time.
    pub fn new(
        mem: GuestMemory,
        layout: &Layout,
        log: L,
        options: RecoveryOptions,
        tsc_khz: Option<u32>,
    ) -> Result<Self, RecoveryError> {
        if !(MIN_VERSIONS..=MAX_VERSIONS).contains(&options.versions) {
            return Err(RecoveryError::Versions(options.versions));
        }
        let mut servers = Vec::with_capacity(layout.servers.len());
        for (index, decl) in layout.servers.iter().enumerate() {
            let slot = layout
                .slots
                .iter()
                .position(|s| s.kind == SlotKind::ServerState(index))
                .ok_or_else(|| RecoveryError::NoRegion(decl.name.clone()))?;
            let region = mem
                .find_region(GuestAddress(decl.state.base))
                .filter(|r| r.start_addr().0 == decl.state.base)
                .ok_or_else(|| RecoveryError::NoRegion(decl.name.clone()))?;
            servers.push(Server::new(
                &decl.name,
                decl.app,
                slot as u32,
                region,
                decl.requests,
                options.versions,
                &log,
            )?);
        }
        Ok(Self {
            mem,
            page: layout.monitor_page.unwrap_or(0),
            log,
            servers,
            clock: Instant::now(),
            tsc_khz: tsc_khz.filter(|&k| k > 0),
            records: Vec::new(),
            snapshots: SnapshotSummary::default(),
            misdeclared: Vec::new(),
            events: EventLog::new(options.log_events),
            options,
            paused: (0, Duration::ZERO),
        })
    }

    /// Replaces the servers' policies (e.g. from a configuration), in server order.
    pub fn set_policies(&mut self, policies: Vec<Box<dyn RecoveryPolicy>>) {
        for (s, p) in self.servers.iter_mut().zip(policies) {
            s.policy = p;
        }
    }

    /// Counts one exit that carried snapshots (the report's `snapshots.exits`).
    pub fn snapshot_exit(&mut self) {
        self.snapshots.exits += 1;
    }

    /// Now, on the engine's clock.
    fn now(&self) -> Micros {
        Micros(micros(self.clock.elapsed()))
    }

    /// BOUNDARY: server `snapshot.task` reached its next boundary, whose number ends in the 16
    /// bits `snapshot.seq16`; copies its dirty pages as that version, and checks what they say
    /// against the declaration of the request the boundary closed.
    pub fn boundary(&mut self, snapshot: PendingSnapshot) -> Result<(), Stop> {
        let PendingSnapshot { task, seq16, label } = snapshot;
        let bad = || {
            Stop::Protocol(Violation::Boundary {
                task,
                seq: u64::from(seq16),
            })
        };
        let s = usize::try_from(task)
            .ok()
            .filter(|&s| s < self.servers.len() && !self.servers[s].app)
            .ok_or_else(bad)?;
        // Boundaries are numbered 1, 2, ... per server; restarts and rollbacks keep the count
        // going (the store's versions then skip the numbers rolled back).
        let seq = self.servers[s].boundaries + 1;
        if seq as u16 != seq16 {
            return Err(bad());
        }
        let started = Instant::now();
        let server = &mut self.servers[s];
        let done = server.commit(&self.mem, &self.log, seq)?;
        let trusted = server.declarations.trusted();
        let finding = server.declarations.snapshot(label, done.copied);
        if server.declarations.trusted() != trusted {
            let mask = server.declarations.trusted();
            protocol::write_read_only(&self.mem, self.page, s, mask).map_err(Stop::Recovery)?;
        }
        if let Finding::Misdeclared { pages } = finding {
            self.misdeclared(s, label, seq, pages);
        }
        let sn = &mut self.snapshots;
        sn.boundaries += 1;
        sn.pages_copied += done.copied as u64;
        sn.dirty_pages += done.dirty as u64;
        sn.write_faults += done.write_faults;
        sn.time_us += started.elapsed().as_secs_f64() * 1e6;
        Ok(())
    }

    /// Server `s`'s request `label`, declared read-only, changed `pages` pages before boundary
    /// `boundary`: recorded, and said on stderr.
    fn misdeclared(&mut self, s: usize, label: u16, boundary: u64, pages: usize) {
        let server = &self.servers[s];
        let entry = Misdeclared {
            server: server.name.clone(),
            label,
            name: server.request_name(u64::from(label)).map(str::to_owned),
            boundary,
            pages: pages as u64,
        };
        self.events.line(format!("vmm: {entry}"));
        self.misdeclared.push(entry);
    }

    /// FAULT: a task stopped. First takes the snapshots still pending with it (other servers'
    /// boundaries: a decision may roll them back to those; the crashed task's own is refused,
    /// it was running), then decides with its server's policy, restores its pages (and, for a
    /// consistent cut, its dependent peers' pages) and writes the verdict the kernel carries
    /// out; the fault's line goes to the log after the restore. `Err` stops the VM (fail-stop,
    /// a bad pending snapshot, a failed restore).
    pub fn fault(&mut self, fault: &FaultReport) -> Result<(), Stop> {
        for &snapshot in &fault.pending_snapshots {
            if snapshot.task == u64::from(fault.record.task) {
                return Err(Stop::Protocol(Violation::Boundary {
                    task: snapshot.task,
                    seq: u64::from(snapshot.seq16),
                }));
            }
            self.boundary(snapshot)?;
        }
        let result = self.recover(fault);
        // A fail-stop has logged the fault with its decision.
        if !matches!(result, Err(Stop::FailStop { .. })) {
            self.log_fault(fault);
        }
        result
    }

    /// [`Engine::fault`] once the pending snapshots are taken.
    fn recover(&mut self, fault: &FaultReport) -> Result<(), Stop> {
        let (record, context) = (&fault.record, &fault.context);
        let now = self.now();
        let index = usize::try_from(record.task)
            .ok()
            .filter(|&s| s < self.servers.len());
        if let Some(server) = index.and_then(|s| self.servers.get_mut(s)) {
            server.crashes += 1;
        }
        let server_task =
            |&s: &usize| context.flags & CrashContext::SERVER != 0 && !self.servers[s].app;
        let Some(s) = index.filter(server_task) else {
            // Not a server (an app, or an index the VMM does not know): it stays stopped.
            return self.verdict(record.seq, VerdictAction::Stop, None);
        };
        let circumstances = Circumstances {
            snapshots_taken_first: self.names_of(fault.pending_snapshots.iter().map(|p| p.task)),
            during_recovery_of: self
                .servers
                .iter()
                .filter(|o| o.pending.is_some())
                .map(|o| o.name.clone())
                .collect(),
        };
        // Translate and decide.
        let facts = translate::fault(fault, &self.servers[s].name, now);
        let in_flight = translate::in_flight(context, &self.servers[s]);
        let window = translate::window(&self.servers, context.boundary, &fault.window);
        let server = &mut self.servers[s];
        let crash = Crash {
            fault: &facts,
            history: &server.history,
            window: &window,
            in_flight: in_flight.as_ref(),
            now,
        };
        let decision = server.policy.decide(&crash);
        let mut decision_record = DecisionRecord::new(&crash, &decision);
        server.history.record_decision(&facts, &decision);
        let servers = &self.servers;
        let plan = decide::plan(&decision, s, |i| servers.get(i).is_some_and(|p| !p.app));
        let Some(plan) = plan else {
            decision_record.outcome = Outcome::Stopped;
            let entry =
                RecoveryEntry::new(fault, &decision_record, Carried::default(), circumstances);
            self.records.push(entry);
            // The VM stops: the fault's line first, then the decision's (a recovered fault's
            // line is the caller's to send, after the restore).
            self.log_fault(fault);
            self.log_record(self.records.len() - 1);
            return Err(Stop::FailStop {
                server: facts.server.name,
                reason: decision.reason.clone(),
            });
        };
        // Carry it out, and say what the kernel must do.
        let carried = self.carry_out(s, &plan)?;
        self.verdict(record.seq, decide::verdict(plan.own), decision.delay)?;
        self.records.push(RecoveryEntry::new(
            fault,
            &decision_record,
            carried,
            circumstances,
        ));
        let server = &mut self.servers[s];
        server.restores += 1;
        server.generation = record.generation.wrapping_add(1);
        server.pending = Some(Pending {
            record: self.records.len() - 1,
            entry_tsc: record.entry_tsc,
            at: Instant::now(),
            paused: self.paused,
        });
        Ok(())
    }

    /// Carries out `plan` for crashed server `s`: its peers rolled back, then its own pages
    /// restored, with the isolation check around both when it is on.
    fn carry_out(&mut self, s: usize, plan: &Plan) -> Result<Carried, Stop> {
        let check = self.options.check_isolation;
        let before = check.then(|| isolation::hashes(&self.mem, &self.servers, s));
        let mut peers = Vec::with_capacity(plan.peers.len());
        for &(p, to) in &plan.peers {
            let pages = self.servers[p].roll_back_to(&self.mem, &self.log, to)?;
            peers.push(PeerRestore {
                server: self.servers[p].name.clone(),
                to_snapshot: to,
                pages,
            });
        }
        let fresh = plan.own == ServerAction::RestartFresh;
        let versions = self.options.versions;
        let pages = self.servers[s].restore(&self.mem, &self.log, fresh, versions)?;
        let isolation = before.map(|(before, took_before)| {
            let (after, took_after) = isolation::hashes(&self.mem, &self.servers, s);
            let intact = isolation::intact(self.servers.len(), s, &before, &after, &plan.peers);
            (intact, (took_before + took_after).as_secs_f64() * 1e6)
        });
        Ok(Carried {
            pages,
            peers,
            isolation,
        })
    }

    fn verdict(
        &self,
        fault_seq: u64,
        action: VerdictAction,
        delay: Option<Duration>,
    ) -> Result<(), Stop> {
        protocol::write_verdict(&self.mem, self.page, fault_seq, action, delay)
            .map_err(Stop::Recovery)
    }

    /// The names of the servers with task indices `tasks` (indices the engine does not know
    /// are left out).
    fn names_of(&self, tasks: impl Iterator<Item = u64>) -> Vec<String> {
        tasks
            .filter_map(|t| self.servers.get(usize::try_from(t).ok()?))
            .map(|s| s.name.clone())
            .collect()
    }

    /// Prints the line of `fault` on stderr without holding the guest up: formatted by the
    /// writer thread, and not even copied when lines are off (`-q`).
    fn log_fault(&self, fault: &FaultReport) {
        if self.events.enabled() {
            self.events.send(Event::Fault(Box::new(fault.clone())));
        }
    }

    fn log_record(&self, entry: usize) {
        if let Some(r) = self.records.get(entry)
            && self.events.enabled()
        {
            self.events
                .send(events::Event::Decision(Box::new(r.decision.clone())));
        }
    }

    /// The VM was paused: for `duration`, over which the guest's TSC ran on by `cycles` (0 where
    /// KVM stops it). Taken out of the latency of a recovery the pause fell in: a paused guest's
    /// clock stands still.
    pub fn paused(&mut self, cycles: u64, duration: Duration) {
        self.paused = (
            self.paused.0.saturating_add(cycles),
            self.paused.1.saturating_add(duration),
        );
    }

    /// RESTARTED: recovered task `task` runs its first instruction next (guest TSC `tsc`).
    /// Completes its recovery record with the latency and prints it. A task with no recovery
    /// pending is ignored.
    pub fn restarted(&mut self, task: u64, tsc: u64) {
        let Some(server) = usize::try_from(task)
            .ok()
            .and_then(|s| self.servers.get_mut(s))
        else {
            return;
        };
        let Some(p) = server.pending.take() else {
            return;
        };
        let (paused_cycles, paused_time) = (
            self.paused.0.saturating_sub(p.paused.0),
            self.paused.1.saturating_sub(p.paused.1),
        );
        let latency_us = match self.tsc_khz {
            Some(khz) if p.entry_tsc != 0 && tsc > p.entry_tsc => {
                let cycles = (tsc - p.entry_tsc).saturating_sub(paused_cycles);
                let window = cycles as f64 * 1000.0 / f64::from(khz);
                // `--check-isolation` hashed the peers inside that window: not recovery work.
                let check = self
                    .records
                    .get(p.record)
                    .and_then(|r| r.isolation_check_us);
                (window - check.unwrap_or(0.0)).max(0.0)
            }
            _ => p.at.elapsed().saturating_sub(paused_time).as_secs_f64() * 1e6,
        };
        if let Some(r) = self.records.get_mut(p.record) {
            r.complete(latency_us);
        }
        self.log_record(p.record);
    }

    /// What the engine did, for the run's report.
    pub fn summary(&self) -> Summary {
        Summary {
            servers: self
                .servers
                .iter()
                .filter(|s| !s.app)
                .map(|s| ServerSummary {
                    name: s.name.clone(),
                    crashes: s.crashes,
                    restores: s.restores,
                    peer_rollbacks: s.peer_rollbacks,
                    generation: s.generation,
                    snapshot_versions: s.store.versions(),
                })
                .collect(),
            recoveries: self.records.clone(),
            snapshots: self.snapshots.clone(),
            misdeclared_requests: self.misdeclared.clone(),
        }
    }

    /// The engine's log (tests write through it).
    #[cfg(test)]
    pub(super) fn dirty_log(&self) -> &L {
        &self.log
    }
}
