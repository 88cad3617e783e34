//! The recovery engine: per-server snapshots at message boundaries, and the restore of one
//! crashed server's pages while its peers keep their memory untouched. See docs/recovery.md.
//!
//! It runs on the vCPU thread, inside the hypercalls of the guest kernel, so the guest is stopped
//! while it works: nothing is delivered into a server's region while it is snapshotted or
//! restored.
//!
//! ```text
//!  boot       every server's state arena copied as version 0 (its boot image)
//!  BOUNDARY   server S, boundary n: KVM's dirty log of S's slot | pages the VMM wrote
//!             ─► copy those pages into S's store as version n ─► clear the log for them
//!  FAULT      record + crash context ─► S's policy decides (policies crate) ─► restore S's
//!             pages dirtied since its last boundary (or its boot image) ─► verdict into the
//!             monitor page ─► the kernel restarts S
//!  RESTARTED  S runs again: latency = TSC now - TSC at the kernel's fault entry; the
//!             decision record is complete and printed
//! ```
//!
//! Everything the guest hands over is untrusted: task indices and boundary numbers are checked
//! against the engine's own tables, a bad one is a protocol violation (the VM stops with one
//! line), and nothing the guest writes can make the engine panic.

pub mod bench;
pub mod declarations;
pub mod dirty;
pub mod events;
pub mod inject;
pub mod report;

use crate::devices::monitor::{Fault, PendingSnapshot};
use crate::layout::{Layout, SlotKind};
use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use abi::fault::FaultCause;
use abi::monitor::{
    CrashContext, FLAG_RECOVERY, FLAG_SNAPSHOTS, FaultPlan, MAX_PLANNED_FAULTS, MONITOR_MAGIC,
    MONITOR_VERSION, MonitorPage, SentRecord, SentWindow, Verdict, VerdictAction, WINDOW_MAX,
};
use abi::requests::RequestTable;
use declarations::{Declarations, Finding};
use dirty::DirtyLog;
use policies::{
    Cause, Crash, DecisionRecord, History, InFlight, Micros, Outcome, RecoveryPolicy,
    RecoveryWindow, SentMessage, ServerAction, ServerRef,
};
use report::{Misdeclared, PeerRestore, RecoveryEntry, ServerSummary, SnapshotSummary, Summary};
use snapshot::{DirtyPages, PAGE_SIZE, RegionSnapshots, SnapshotError};
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use zerocopy::IntoBytes;

/// Versions kept per server when nothing else is asked.
pub const DEFAULT_VERSIONS: usize = 4;
/// Fewest versions a store may keep (the last boundary and the one before).
pub const MIN_VERSIONS: usize = 2;
/// Most versions a store may keep.
pub const MAX_VERSIONS: usize = 1024;

/// How a run snapshots and recovers its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// Snapshot servers at their boundaries and recover crashed ones (off: a crashed server
    /// stays stopped, as without this engine).
    pub enabled: bool,
    /// Versions kept per server (at least [`MIN_VERSIONS`]).
    pub versions: usize,
    /// Faults to inject.
    pub faults: Vec<inject::FaultSpec>,
    /// Hash every other server's state arena around each restore and record whether it
    /// changed (costs a pass over guest memory per recovery).
    pub check_isolation: bool,
    /// Print a line per crash and per recovery on stderr.
    pub log_events: bool,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            versions: DEFAULT_VERSIONS,
            faults: Vec::new(),
            check_isolation: false,
            log_events: true,
        }
    }
}

/// Why the engine could not set up or go on.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// A snapshot store operation failed.
    #[error("snapshot of server {server}: {source}")]
    Snapshot {
        /// The server.
        server: String,
        /// What failed.
        source: SnapshotError,
    },
    /// KVM's dirty log could not be read or cleared.
    #[error("dirty log of server {server} (slot {slot}): {source}")]
    DirtyLog {
        /// The server.
        server: String,
        /// Its state slot.
        slot: u32,
        /// The ioctl's error.
        source: kvm_ioctls::Error,
    },
    /// The layout's memory and slots do not match (a VMM bug).
    #[error("server {0}: no memory region for its state arena")]
    NoRegion(String),
    /// The monitor page cannot be written.
    #[error("cannot write the monitor page at {0:#x}")]
    MonitorPage(u64),
    /// A bad number of versions.
    #[error("--snapshot-versions {0}: must be between {MIN_VERSIONS} and {MAX_VERSIONS}")]
    Versions(usize),
}

/// A recovered server waiting for its first instruction.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// Its entry in `Engine::records`.
    record: usize,
    /// The guest TSC at the kernel's fault entry.
    entry_tsc: u64,
    /// When the VMM heard of the fault.
    at: Instant,
}

/// One server's snapshots and history.
#[derive(Debug)]
struct Server {
    name: String,
    /// Declared an app by the manifest: never recovered, not in the report's servers.
    app: bool,
    slot: u32,
    base: u64,
    store: RegionSnapshots,
    boot: Vec<u8>,
    history: History,
    policy: Box<dyn RecoveryPolicy>,
    crashes: u64,
    restores: u64,
    /// Times it was rolled back as the peer of a crashed server (a consistent cut).
    peer_rollbacks: u64,
    generation: u32,
    /// Boundaries it passed (the kernel counts the same): the number of the next one is this
    /// plus one. Not the store's newest version, which goes back when it is rolled back.
    boundaries: u64,
    /// Pages left writable between snapshots (see [`HotPages`]).
    hot_pages: HotPages,
    pending: Option<Pending>,
    /// What its requests mean, from the image (`None`: nothing declared).
    requests: Option<RequestTable>,
    /// Which of its read-only declarations the VMM has seen hold.
    declarations: Declarations,
}

impl Server {
    /// (idempotent, state-changing) of its request `label`: what its table declares (a
    /// declaration caught false is taken as state-changing), the most cautious answer for an
    /// undeclared label or a server that declares nothing.
    fn declared(&self, label: u64) -> (bool, bool) {
        match &self.requests {
            Some(t) => (
                t.idempotent(label),
                t.changes_state(label) || self.declarations.caught(label),
            ),
            None => (false, true),
        }
    }
}

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
    events: events::EventLog,
}

/// Writes the monitor page the kernel reads at boot: the contract's header, the flags
/// (snapshots and recovery on when `recovering`) and the fault plan.
pub fn write_monitor_page(
    mem: &GuestMemory,
    page: u64,
    recovering: bool,
    plan: &[FaultPlan; MAX_PLANNED_FAULTS],
) -> Result<(), RecoveryError> {
    let flags = if recovering {
        FLAG_SNAPSHOTS | FLAG_RECOVERY
    } else {
        0
    };
    let contents = MonitorPage {
        magic: MONITOR_MAGIC,
        version: MONITOR_VERSION,
        flags,
        plan: *plan,
        ..MonitorPage::default()
    };
    mem.write_slice(contents.as_bytes(), GuestAddress(page))
        .map_err(|_| RecoveryError::MonitorPage(page))
}

fn cause_of(record: &abi::monitor::FaultRecord) -> Cause {
    match FaultCause::from_number(record.cause) {
        Some(FaultCause::PageFault) => Cause::PageFault { addr: record.addr },
        Some(FaultCause::StackOverflow) => Cause::StackOverflow,
        Some(FaultCause::InvalidOpcode) => Cause::IllegalInsn,
        Some(FaultCause::DivideError) => Cause::DivZero,
        Some(FaultCause::GeneralProtection) => Cause::GeneralProtection,
        Some(FaultCause::FloatingPoint) => Cause::FloatingPoint,
        Some(FaultCause::Panic) => Cause::Panic,
        Some(FaultCause::BudgetOverrun) => Cause::Hang,
        Some(FaultCause::Corruption) => Cause::CorruptState,
        Some(FaultCause::OtherException) => Cause::Exception(record.vector),
        None => Cause::Unknown(record.cause),
    }
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
            let snap_err = |source| RecoveryError::Snapshot {
                server: decl.name.clone(),
                source,
            };
            let (store, _) = RegionSnapshots::new(region, 0, options.versions).map_err(snap_err)?;
            let boot = store.image(0).map_err(snap_err)?;
            let pages = store.pages();
            let slot = slot as u32;
            log.clear(slot, &DirtyPages::all(store.pages()))
                .map_err(|source| RecoveryError::DirtyLog {
                    server: decl.name.clone(),
                    slot,
                    source,
                })?;
            vmm_bitmap(region).reset();
            servers.push(Server {
                name: decl.name.clone(),
                app: decl.app,
                slot,
                base: decl.state.base,
                store,
                boot,
                history: History::new(),
                policy: policies::default_policy(),
                crashes: 0,
                restores: 0,
                peer_rollbacks: 0,
                generation: 0,
                boundaries: 0,
                hot_pages: HotPages::new(pages),
                pending: None,
                requests: decl.requests,
                declarations: Declarations::new(decl.requests.as_ref()),
            });
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
            events: events::EventLog::new(options.log_events),
            options,
        })
    }

    /// Prints the line of `fault` on stderr without holding the guest up: formatted by the
    /// writer thread, and not even copied when lines are off (`-q`).
    fn log_fault(&self, fault: &Fault) {
        if self.events.enabled() {
            self.events
                .send(events::Event::Fault(Box::new(fault.clone())));
        }
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
        let (region, dirty) = dirty_pages(&self.mem, &self.log, server)?;
        let stats = server
            .store
            .commit(region, &dirty, seq)
            .map_err(|e| snapshot_error(server, e))?;
        let faults_before = server.hot_pages.faults;
        let protect = server.hot_pages.next(&dirty, seq);
        let faults = server.hot_pages.faults - faults_before;
        self.log
            .clear(server.slot, &protect)
            .map_err(|e| log_error(server, e))?;
        server.boundaries = seq;
        let trusted = server.declarations.trusted();
        let finding = server.declarations.snapshot(label, stats.pages);
        if server.declarations.trusted() != trusted {
            self.write_read_only(s)?;
        }
        if let Finding::Misdeclared { pages } = finding {
            self.misdeclared(s, label, seq, pages);
        }
        let sn = &mut self.snapshots;
        sn.boundaries += 1;
        sn.pages_copied += stats.pages as u64;
        sn.dirty_pages += dirty.count() as u64;
        sn.write_faults += faults;
        sn.time_us += started.elapsed().as_secs_f64() * 1e6;
        Ok(())
    }

    /// Writes server `s`'s trusted read-only labels into the monitor page, for the kernel.
    fn write_read_only(&self, s: usize) -> Result<(), Stop> {
        let mask = self.servers[s].declarations.trusted();
        let addr = self.page + std::mem::offset_of!(MonitorPage, read_only) as u64 + 8 * s as u64;
        self.mem
            .write_obj(mask, GuestAddress(addr))
            .map_err(|_| Stop::Recovery(RecoveryError::MonitorPage(self.page)))
    }

    /// Server `s`'s request `label`, declared read-only, changed `pages` pages before boundary
    /// `boundary`: recorded, and said on stderr.
    fn misdeclared(&mut self, s: usize, label: u16, boundary: u64, pages: usize) {
        let server = &self.servers[s];
        let request = server
            .requests
            .as_ref()
            .and_then(|t| t.name_of(u64::from(label)))
            .map(str::to_owned);
        let entry = Misdeclared {
            server: server.name.clone(),
            label,
            request,
            boundary,
            pages: pages as u64,
        };
        self.events.line(format!("vmm: {entry}"));
        self.misdeclared.push(entry);
    }
}

/// The pages a server keeps writing, left writable between its snapshots.
///
/// After a snapshot the VMM re-protects the pages it copied (KVM_CLEAR_DIRTY_LOG), so that the
/// next write to each is logged; that write then takes a write-protect fault, ~22 us under
/// KVM-PVM. A page written again within [`HotPages::WINDOW`] snapshots of its last write is
/// likely to be written again soon: it is left writable and logged dirty instead, so every
/// snapshot reads it (a compare with the shadow, well under a microsecond) and no fault is
/// taken. Nothing is missed: a page never re-protected stays in the dirty log, so every commit
/// and every restore covers it. Every [`HotPages::RESET`] snapshots all pages are re-protected
/// and the set is learnt again (so that pages no longer written stop being read).
#[derive(Debug)]
struct HotPages {
    /// Per page: the snapshot at which it was last dirty (0: never).
    last_dirty: Vec<u64>,
    /// The pages left writable after the last snapshot.
    writable: DirtyPages,
    /// Write-protect faults taken so far: pages found dirty that were protected.
    faults: u64,
}

impl HotPages {
    /// Snapshots between two full re-protections.
    const RESET: u64 = 256;
    /// A page dirty again within this many snapshots of its last write is left writable.
    const WINDOW: u64 = 16;

    fn new(pages: usize) -> Self {
        Self {
            last_dirty: vec![0; pages],
            writable: DirtyPages::clean(pages),
            faults: 0,
        }
    }

    /// The pages to re-protect after snapshot `seq` of `dirty`: all of them every
    /// [`Self::RESET`] snapshots, else those not dirty at any of the [`Self::WINDOW`]
    /// snapshots before. Counts the faults the pages protected until now took to be dirty.
    fn next(&mut self, dirty: &DirtyPages, seq: u64) -> DirtyPages {
        let mut protect = DirtyPages::clean(dirty.pages());
        let reset = seq.is_multiple_of(Self::RESET);
        let mut writable = DirtyPages::clean(dirty.pages());
        for page in dirty.iter() {
            if !self.writable.contains(page) {
                self.faults += 1;
            }
            let Some(last) = self.last_dirty.get_mut(page) else {
                protect.set(page);
                continue;
            };
            let recent = *last != 0 && seq.saturating_sub(*last) <= Self::WINDOW;
            *last = seq;
            if reset || !recent {
                protect.set(page);
            } else {
                writable.set(page);
            }
        }
        if reset {
            self.last_dirty.fill(0);
        }
        self.writable = writable;
        protect
    }
}

/// A message the VMM cannot vouch for, taken at its most cautious: state-changing, sent to a
/// receiver with no snapshot to go back to.
fn unrecoverable(to: ServerRef, label: u32) -> SentMessage {
    SentMessage {
        to,
        label,
        state_changing: true,
        peer_snapshot: None,
        peer_answered_others: true,
        peer_sent_state_changing: false,
    }
}

/// Guest memory region of one server's state arena.
type Region = vm_memory::GuestRegionMmap<vm_memory::bitmap::AtomicBitmap>;

/// The VMM's own record of the pages it wrote into `region` (vm-memory marks every write made
/// through its `Bytes` API).
fn vmm_bitmap(region: &Region) -> &vm_memory::bitmap::AtomicBitmap {
    (**region).bitmap()
}

/// The state arena of `server` and its dirty pages: KVM's log ORed with the pages the VMM
/// itself wrote (which KVM does not see).
fn dirty_pages<'m>(
    mem: &'m GuestMemory,
    log: &impl DirtyLog,
    server: &Server,
) -> Result<(&'m Region, DirtyPages), Stop> {
    let region = region_of(mem, server)?;
    let pages = server.store.pages();
    let mut dirty = log
        .fetch(server.slot, pages)
        .map_err(|e| log_error(server, e))?;
    let ours = vmm_bitmap(region).get_and_reset();
    dirty.union_with(&DirtyPages::from_words(ours, pages));
    Ok((region, dirty))
}

fn region_of<'m>(mem: &'m GuestMemory, server: &Server) -> Result<&'m Region, Stop> {
    mem.find_region(GuestAddress(server.base))
        .ok_or_else(|| Stop::Recovery(RecoveryError::NoRegion(server.name.clone())))
}

fn log_error(server: &Server, source: kvm_ioctls::Error) -> Stop {
    Stop::Recovery(RecoveryError::DirtyLog {
        server: server.name.clone(),
        slot: server.slot,
        source,
    })
}

fn snapshot_error(server: &Server, source: SnapshotError) -> Stop {
    Stop::Recovery(RecoveryError::Snapshot {
        server: server.name.clone(),
        source,
    })
}

impl<L: DirtyLog> Engine<L> {
    /// Now, on the engine's clock.
    fn now(&self) -> Micros {
        Micros(micros(self.clock.elapsed()))
    }

    /// Hashes of every server's state arena but `except` (for the isolation check), and how
    /// long hashing took (not part of a recovery's latency).
    fn peer_hashes(&self, except: usize) -> (Vec<u64>, Duration) {
        use std::hash::{Hash, Hasher};
        let started = Instant::now();
        let mut hashes = Vec::new();
        let mut page = vec![0u8; PAGE_SIZE];
        for (i, server) in self
            .servers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != except)
        {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            if let Ok(region) = region_of(&self.mem, server) {
                for p in 0..server.store.pages() {
                    let addr = vm_memory::MemoryRegionAddress((p * PAGE_SIZE) as u64);
                    if region.read_slice(&mut page, addr).is_ok() {
                        page.hash(&mut h);
                    }
                }
            }
            (i, h.finish()).hash(&mut h);
            hashes.push(h.finish());
        }
        (hashes, started.elapsed())
    }

    /// Puts server `s`'s state arena back: to its last boundary, or (`fresh`) to its boot
    /// image, which then also becomes its only snapshot. Returns the pages written.
    fn restore(&mut self, s: usize, fresh: bool) -> Result<u64, Stop> {
        let versions = self.options.versions;
        let server = &mut self.servers[s];
        let (region, dirty) = dirty_pages(&self.mem, &self.log, server)?;
        // Before its first boundary the only version is the boot image: a plain restore.
        let fresh = fresh && server.boundaries != 0;
        let pages = if fresh {
            let mut written = 0;
            let mut buf = vec![0u8; PAGE_SIZE];
            for (p, boot) in server.boot.chunks_exact(PAGE_SIZE).enumerate() {
                let addr = vm_memory::MemoryRegionAddress((p * PAGE_SIZE) as u64);
                let mem_err = |e: vm_memory::guest_memory::Error| {
                    snapshot_error(
                        server,
                        SnapshotError::Memory {
                            page: p,
                            reason: e.to_string(),
                        },
                    )
                };
                region.read_slice(&mut buf, addr).map_err(mem_err)?;
                if buf != boot {
                    region.write_slice(boot, addr).map_err(mem_err)?;
                    written += 1;
                }
            }
            let (store, _) = RegionSnapshots::new(region, server.boundaries, versions)
                .map_err(|e| snapshot_error(server, e))?;
            server.store = store;
            written
        } else {
            server
                .store
                .restore_latest(region, &dirty)
                .map_err(|e| snapshot_error(server, e))?
                .pages as u64
        };
        // The region now equals the snapshot on every page written: those are clean again, for
        // KVM (write-protected anew) and for the VMM's own bitmap.
        self.log
            .clear(server.slot, &dirty)
            .map_err(|e| log_error(server, e))?;
        vmm_bitmap(region).reset();
        Ok(pages)
    }

    fn write_verdict(
        &self,
        fault_seq: u64,
        action: VerdictAction,
        delay: Option<Duration>,
    ) -> Result<(), Stop> {
        // The kernel counts 10 ms ticks; a delay is rounded up to whole ticks.
        let delay_ticks = delay.map_or(0, |d| d.as_millis().div_ceil(10));
        let verdict = Verdict {
            fault_seq,
            action: action as u32,
            delay_ticks: u32::try_from(delay_ticks).unwrap_or(u32::MAX),
        };
        let addr = self.page + std::mem::offset_of!(MonitorPage, verdict) as u64;
        self.mem
            .write_slice(verdict.as_bytes(), GuestAddress(addr))
            .map_err(|_| Stop::Recovery(RecoveryError::MonitorPage(self.page)))
    }

    /// The crashed server `s`'s recovery window as the policies see it: the kernel's record of
    /// what it sent since its boundary, each message classified by the receiver's `*-api`
    /// declarations and matched with the receiver's kept snapshots. Anything the VMM cannot
    /// vouch for (an index it does not know, an app, messages past the window's capacity) is
    /// taken at its most cautious: state-changing, no snapshot to go back to.
    fn window_of(&self, boundary: u64, sent: &SentWindow) -> RecoveryWindow {
        let mut messages: Vec<SentMessage> = sent
            .listed()
            .iter()
            .map(|m| {
                let peer = usize::try_from(m.to)
                    .ok()
                    .and_then(|p| self.servers.get(p))
                    .filter(|p| m.flags & SentRecord::PEER_SERVER != 0 && !p.app);
                let Some(peer) = peer else {
                    return unrecoverable(
                        ServerRef::new(m.to, format!("#{}", m.to)),
                        u32::try_from(m.label).unwrap_or(u32::MAX),
                    );
                };
                let (_, state_changing) = peer.declared(m.label);
                SentMessage {
                    to: ServerRef::new(m.to, peer.name.clone()),
                    label: u32::try_from(m.label).unwrap_or(u32::MAX),
                    state_changing,
                    peer_snapshot: peer
                        .store
                        .versions()
                        .contains(&m.peer_boundary)
                        .then_some(m.peer_boundary),
                    // The kernel's "quiet" covers both: since the message the peer handled
                    // nothing but this server's messages and sent nothing of its own.
                    peer_answered_others: !m.peer_quiet(),
                    peer_sent_state_changing: false,
                }
            })
            .collect();
        if sent.overflowed() {
            let unlisted = sent.count.saturating_sub(WINDOW_MAX as u32);
            messages.push(unrecoverable(
                ServerRef::new(u32::MAX, format!("{unlisted} unlisted message(s)")),
                0,
            ));
        }
        RecoveryWindow {
            boundary: (boundary > 0).then_some(boundary),
            sent: messages,
        }
    }

    /// Rolls peer `p` back to its kept version `to` (part of a consistent cut): its state arena
    /// goes back, its kernel state stays (the kernel reported it waiting at a boundary, having
    /// done nothing since but handle the crashed server's messages). The kernel goes on counting
    /// the peer's snapshots from where it was, and names that number in later recovery windows,
    /// so the restored image is kept under it too (a version equal to `to`). Returns the pages
    /// written.
    fn roll_back_peer(&mut self, p: usize, to: u64) -> Result<u64, Stop> {
        let server = &mut self.servers[p];
        let (region, dirty) = dirty_pages(&self.mem, &self.log, server)?;
        let stats = server
            .store
            .restore_to(region, to, &dirty)
            .map_err(|e| snapshot_error(server, e))?;
        if to < server.boundaries {
            let unchanged = DirtyPages::clean(server.store.pages());
            server
                .store
                .commit(region, &unchanged, server.boundaries)
                .map_err(|e| snapshot_error(server, e))?;
        }
        self.log
            .clear(server.slot, &dirty)
            .map_err(|e| log_error(server, e))?;
        vmm_bitmap(region).reset();
        server.peer_rollbacks += 1;
        Ok(stats.pages as u64)
    }

    /// FAULT: a task stopped. First takes the snapshots still pending with it (other servers'
    /// boundaries: a decision may roll them back to those; the crashed task's own is refused,
    /// it was running), then decides with its server's policy, restores its pages (and, for a
    /// consistent cut, its dependent peers' pages) and writes the verdict the kernel carries
    /// out; the fault's line goes to the log after the restore. `Err` stops the VM (fail-stop,
    /// a bad pending snapshot, a failed restore).
    pub fn fault(&mut self, fault: &Fault) -> Result<(), Stop> {
        for &snapshot in &fault.pending_snapshots {
            if snapshot.task == u64::from(fault.record.task) {
                return Err(Stop::Protocol(Violation::Boundary {
                    task: snapshot.task,
                    seq: u64::from(snapshot.seq16),
                }));
            }
            self.boundary(snapshot)?;
        }
        let result = self.decide(fault);
        // A fail-stop has logged the fault with its decision.
        if !matches!(result, Err(Stop::FailStop { .. })) {
            self.log_fault(fault);
        }
        result
    }

    /// [`Engine::fault`] once the pending snapshots are taken.
    fn decide(&mut self, fault: &Fault) -> Result<(), Stop> {
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
            return self.write_verdict(record.seq, VerdictAction::Stop, None);
        };
        let name = self.servers[s].name.clone();
        let busy: Vec<String> = self
            .servers
            .iter()
            .filter(|o| o.pending.is_some())
            .map(|o| o.name.clone())
            .collect();
        let in_flight = context.caller().map(|_| {
            let (idempotent, state_changing) = self.servers[s].declared(context.label);
            InFlight {
                label: u32::try_from(context.label).unwrap_or(u32::MAX),
                idempotent,
                state_changing,
                replays: u32::from(context.flags & CrashContext::REPLAY != 0),
            }
        });
        let pfault = policies::FaultRecord {
            server: ServerRef::new(record.task, name.clone()),
            generation: record.generation,
            cause: cause_of(record),
            rip: record.rip,
            messages: record.messages,
            at: now,
        };
        let window = self.window_of(context.boundary, &fault.window);
        let server = &mut self.servers[s];
        let crash = Crash {
            fault: &pfault,
            history: &server.history,
            window: &window,
            in_flight: in_flight.as_ref(),
            now,
        };
        let decision = server.policy.decide(&crash);
        let mut decision_record = DecisionRecord::new(&crash, &decision);
        server.history.record_decision(&pfault, &decision);
        // The peers of a consistent cut must be servers this VMM snapshots, other than the
        // crashed one; a policy naming anything else is refused (fail-stop).
        let peers: Option<Vec<(usize, u64)>> = decision
            .action
            .peers()
            .iter()
            .map(|p| {
                usize::try_from(p.peer.index)
                    .ok()
                    .filter(|&i| i < self.servers.len() && i != s && !self.servers[i].app)
                    .map(|i| (i, p.to_snapshot))
            })
            .collect();
        let (Some(own), Some(peers)) = (decision.action.own(), peers) else {
            decision_record.outcome = Outcome::Stopped;
            self.push_record(fault, &decision_record, 0, None);
            // The VM stops: the fault's line first, then the decision's (a recovered fault's
            // line is the caller's to send, after the restore).
            self.log_fault(fault);
            self.log_record(self.records.len() - 1);
            return Err(Stop::FailStop {
                server: name,
                reason: decision.reason.clone(),
            });
        };
        let before = self.options.check_isolation.then(|| self.peer_hashes(s));
        let mut rolled_back = Vec::with_capacity(peers.len());
        for &(p, to) in &peers {
            let pages = self.roll_back_peer(p, to)?;
            rolled_back.push(PeerRestore {
                server: self.servers[p].name.clone(),
                to_snapshot: to,
                pages,
            });
        }
        let pages = self.restore(s, own == ServerAction::RestartFresh)?;
        // With peers rolled back, "intact" is about the servers outside the cut.
        let isolation = before.map(|(b, took_before)| {
            let (after, took_after) = self.peer_hashes(s);
            let others: Vec<usize> = (0..self.servers.len()).filter(|&i| i != s).collect();
            let intact = others
                .iter()
                .zip(b.iter().zip(&after))
                .all(|(i, (x, y))| x == y || peers.iter().any(|(p, _)| p == i));
            (intact, took_before + took_after)
        });
        let peers_intact = isolation.map(|(intact, _)| intact);
        let action = match own {
            ServerAction::Rollback => VerdictAction::Rollback,
            ServerAction::Replay => VerdictAction::Replay,
            ServerAction::RestartFresh => VerdictAction::RestartFresh,
        };
        self.write_verdict(record.seq, action, decision.delay)?;
        let entry = self.push_record(fault, &decision_record, pages, peers_intact);
        self.records[entry].during_recovery_of = busy;
        self.records[entry].isolation_check_us =
            isolation.map(|(_, took)| took.as_secs_f64() * 1e6);
        self.records[entry].peers_rolled_back = rolled_back;
        let server = &mut self.servers[s];
        server.restores += 1;
        server.generation = record.generation.wrapping_add(1);
        server.pending = Some(Pending {
            record: entry,
            entry_tsc: record.entry_tsc,
            at: Instant::now(),
        });
        Ok(())
    }

    fn push_record(
        &mut self,
        fault: &Fault,
        decision: &DecisionRecord,
        pages: u64,
        peers_intact: Option<bool>,
    ) -> usize {
        let mut entry = RecoveryEntry::new(fault, decision, pages, peers_intact);
        entry.snapshots_taken_first = fault
            .pending_snapshots
            .iter()
            .filter_map(|p| self.servers.get(usize::try_from(p.task).ok()?))
            .map(|s| s.name.clone())
            .collect();
        self.records.push(entry);
        self.records.len() - 1
    }

    fn log_record(&self, entry: usize) {
        if let Some(r) = self.records.get(entry)
            && self.events.enabled()
        {
            self.events
                .send(events::Event::Decision(Box::new(r.decision.clone())));
        }
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
        let latency_us = match self.tsc_khz {
            Some(khz) if p.entry_tsc != 0 && tsc > p.entry_tsc => {
                let window = (tsc - p.entry_tsc) as f64 * 1000.0 / f64::from(khz);
                // `--check-isolation` hashed the peers inside that window: not recovery work.
                let check = self
                    .records
                    .get(p.record)
                    .and_then(|r| r.isolation_check_us);
                (window - check.unwrap_or(0.0)).max(0.0)
            }
            _ => p.at.elapsed().as_secs_f64() * 1e6,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::monitor::{Fault, PendingSnapshot};
    use crate::layout::{ServerRegions, Slot};
    use abi::manifest::Range;
    use abi::monitor::{FaultRecord, NO_CALLER};
    use abi::requests::RequestDecl;
    use std::sync::Mutex;

    const PAGE: u64 = PAGE_SIZE as u64;
    const MONITOR: u64 = 0x1000;
    const ARENA: u64 = 4 * PAGE;
    const SERVERS: [&str; 2] = ["kv", "fs"];
    /// Request labels every test server declares: PUT changes state, GET is read-only; both
    /// are idempotent.
    const PUT: u64 = 1;
    const GET: u64 = 2;

    /// Boundary `seq` of `task`, closing no request.
    fn snap(task: u64, seq: u16) -> PendingSnapshot {
        PendingSnapshot::new(task, seq, 0)
    }

    /// The tasks of the test layout: the two servers, then an app.
    const TASKS: [(&str, bool); 3] = [("kv", false), ("fs", false), ("client", true)];
    /// Task index of the app.
    const APP: usize = 2;

    /// KVM's log, as the test says: pages to report per slot, cleared when cleared.
    #[derive(Debug, Default)]
    struct FakeLog(Mutex<Vec<(u32, usize)>>, Mutex<Option<Sabotage>>);

    /// A test-only hook: a write into guest memory made the next time the engine clears the
    /// log of `slot` (as it does in the middle of a restore), to show what the isolation check
    /// sees when a restore touches memory it should not.
    #[derive(Debug)]
    struct Sabotage {
        slot: u32,
        mem: GuestMemory,
        addr: u64,
    }

    impl FakeLog {
        fn sabotage(&self, slot: u32, mem: &GuestMemory, server: usize) {
            *self.1.lock().expect("lock") = Some(Sabotage {
                slot,
                mem: mem.clone(),
                addr: arena(server) + 2 * PAGE + 5,
            });
        }
    }

    impl DirtyLog for FakeLog {
        fn fetch(&self, slot: u32, pages: usize) -> Result<DirtyPages, kvm_ioctls::Error> {
            let mut d = DirtyPages::clean(pages);
            let log = self.0.lock().expect("lock");
            log.iter()
                .filter(|(s, _)| *s == slot)
                .for_each(|(_, p)| d.set(*p));
            Ok(d)
        }
        fn clear(&self, slot: u32, dirty: &DirtyPages) -> Result<(), kvm_ioctls::Error> {
            let mut log = self.0.lock().expect("lock");
            log.retain(|(s, p)| *s != slot || !dirty.contains(*p));
            let mut hook = self.1.lock().expect("lock");
            if hook.as_ref().is_some_and(|h| h.slot == slot)
                && let Some(h) = hook.take()
            {
                h.mem
                    .write_slice(&[0xee], GuestAddress(h.addr))
                    .expect("sabotage");
            }
            Ok(())
        }
    }

    /// The state slot of task `t` in the test layout.
    fn slot(t: usize) -> u32 {
        1 + 2 * t as u32
    }

    /// Slot 0: low memory with the monitor page; then per task a state arena of 4 pages and
    /// a scratch of 1.
    fn layout() -> Layout {
        let mut slots = vec![Slot {
            base: 0,
            size: 0x10_0000,
            kind: SlotKind::Ram,
        }];
        let mut servers = Vec::new();
        let mut base = 0x10_0000;
        for (i, (name, app)) in TASKS.iter().enumerate() {
            slots.push(Slot {
                base,
                size: ARENA,
                kind: SlotKind::ServerState(i),
            });
            slots.push(Slot {
                base: base + ARENA,
                size: PAGE,
                kind: SlotKind::ServerScratch(i),
            });
            servers.push(ServerRegions {
                name: (*name).to_owned(),
                state: Range::new(base, ARENA),
                scratch: Range::new(base + ARENA, PAGE),
                app: *app,
                requests: (!*app).then(|| {
                    RequestTable::new(
                        name,
                        &[
                            RequestDecl::new(
                                PUT,
                                "PUT",
                                RequestDecl::CHANGES_STATE | RequestDecl::IDEMPOTENT,
                            ),
                            RequestDecl::new(GET, "GET", RequestDecl::IDEMPOTENT),
                        ],
                    )
                }),
            });
            base += ARENA + PAGE;
        }
        Layout {
            mem_size: base,
            slots,
            memmap: Vec::new(),
            servers,
            monitor_page: Some(MONITOR),
        }
    }

    fn engine() -> (Engine<FakeLog>, GuestMemory) {
        engine_booted_with(|_| {})
    }

    /// An engine whose tasks' arenas hold what `boot` wrote when it took their boot images.
    fn engine_booted_with(boot: impl FnOnce(&GuestMemory)) -> (Engine<FakeLog>, GuestMemory) {
        let layout = layout();
        let mem = crate::memory::create(&layout).expect("memory");
        boot(&mem);
        let options = RecoveryOptions {
            log_events: false,
            check_isolation: true,
            ..RecoveryOptions::default()
        };
        let plan = [FaultPlan::default(); MAX_PLANNED_FAULTS];
        write_monitor_page(&mem, MONITOR, true, &plan).expect("page");
        let e = Engine::new(
            mem.clone(),
            &layout,
            FakeLog::default(),
            options,
            Some(1000),
        )
        .expect("engine");
        (e, mem)
    }

    fn arena(server: usize) -> u64 {
        layout().servers[server].state.base
    }

    fn poke(mem: &GuestMemory, server: usize, page: u64, byte: u8) {
        mem.write_slice(&[byte], GuestAddress(arena(server) + page * PAGE))
            .expect("write");
    }

    /// Task `server`'s whole state arena.
    fn arena_image(mem: &GuestMemory, server: usize) -> Vec<u8> {
        let mut image = vec![0u8; ARENA as usize];
        mem.read_slice(&mut image, GuestAddress(arena(server)))
            .expect("read");
        image
    }

    fn peek(mem: &GuestMemory, server: usize, page: u64) -> u8 {
        let mut b = [0u8];
        mem.read_slice(&mut b, GuestAddress(arena(server) + page * PAGE))
            .expect("read");
        b[0]
    }

    fn fault(task: u32, seq: u64, boundary: u64) -> Fault {
        let record = FaultRecord {
            seq,
            task,
            cause: FaultCause::PageFault as u32,
            vector: 14,
            entry_tsc: 1000,
            ..Default::default()
        };
        let context = CrashContext {
            boundary,
            caller: NO_CALLER,
            flags: CrashContext::SERVER,
            ..Default::default()
        };
        Fault {
            task: "t".into(),
            cause: FaultCause::from_number(record.cause),
            record,
            context,
            text: None,
            window: SentWindow::default(),
            pending_snapshots: Vec::new(),
        }
    }

    fn verdict(mem: &GuestMemory) -> Verdict {
        let mut v = Verdict::default();
        let addr = MONITOR + std::mem::offset_of!(MonitorPage, verdict) as u64;
        mem.read_slice(v.as_mut_bytes(), GuestAddress(addr))
            .expect("read");
        v
    }

    #[test]
    fn a_restore_puts_back_the_last_boundary_and_only_the_crashed_server() {
        let (mut e, mem) = engine();
        poke(&mem, 0, 1, 7);
        poke(&mem, 1, 2, 9);
        e.boundary(snap(0, 1)).expect("kv boundary 1");
        e.boundary(snap(1, 1)).expect("fs boundary 1");
        // kv writes after its boundary (a KVM-logged write and one the bitmap sees), crashes.
        e.log.0.lock().expect("lock").push((1, 3));
        poke(&mem, 0, 1, 8);
        poke(&mem, 0, 3, 5);
        poke(&mem, 1, 2, 10); // fs's own later change must survive kv's restore
        let f = fault(0, 1, 1);
        e.fault(&f).expect("recovered");
        assert_eq!(
            (peek(&mem, 0, 1), peek(&mem, 0, 3)),
            (7, 0),
            "kv at boundary 1"
        );
        assert_eq!(peek(&mem, 1, 2), 10, "fs untouched");
        let v = verdict(&mem);
        assert_eq!((v.fault_seq, v.action), (1, VerdictAction::Rollback as u32));
        e.restarted(0, 251_000);
        let s = e.summary();
        let r = &s.recoveries[0];
        assert_eq!((r.server.as_str(), r.action.as_str()), ("kv", "rollback"));
        assert_eq!(r.pages_restored, 2);
        let check = r.isolation_check_us.expect("the isolation check ran");
        let latency = r.latency_us.expect("complete");
        assert!(
            (latency + check - 250_000.0).abs() < 1e-6,
            "(251000 - 1000) cycles at 1 MHz, less the check's {check} us: {latency}"
        );
        assert_eq!(r.peers_intact, Some(true));
        assert_eq!((s.servers[0].crashes, s.servers[0].generation), (1, 1));
    }

    /// A FAULT hands over the snapshots still pending (batched boundaries of other servers):
    /// taken before the decision and listed in the record. One naming the crashed task itself
    /// (it was running, so it has none) is a protocol violation, never a snapshot of its
    /// crashed state.
    #[test]
    fn a_fault_takes_the_pending_snapshots_first_but_never_the_crashed_one() {
        let (mut e, mem) = engine();
        e.boundary(snap(0, 1)).expect("kv boundary 1");
        poke(&mem, 1, 2, 4);
        let mut f = fault(0, 1, 1);
        f.pending_snapshots = vec![snap(1, 1)];
        e.fault(&f).expect("recovered");
        assert_eq!(e.summary().recoveries[0].snapshots_taken_first, ["fs"]);
        assert!(
            matches!(e.boundary(snap(1, 1)), Err(Stop::Protocol(_))),
            "fs's boundary 1 was taken with the fault"
        );
        e.boundary(snap(1, 2)).expect("so its next one is 2");
        poke(&mem, 0, 1, 9);
        let mut f = fault(0, 2, 1);
        f.pending_snapshots = vec![snap(0, 2)];
        assert!(matches!(
            e.fault(&f),
            Err(Stop::Protocol(Violation::Boundary { task: 0, .. }))
        ));
        assert_eq!(
            peek(&mem, 0, 1),
            9,
            "the crashed state was neither kept nor restored"
        );
    }

    #[test]
    fn a_crash_before_the_first_boundary_restores_the_boot_image() {
        let (mut e, mem) = engine();
        poke(&mem, 1, 0, 3);
        let f = fault(1, 1, 0);
        e.fault(&f).expect("recovered");
        assert_eq!(peek(&mem, 1, 0), 0);
        assert_eq!(e.summary().recoveries[0].action, "restart-fresh");
    }

    /// One name per fault kind: `--fault`'s kinds, the cause the kernel records for each (as
    /// abi and the policies name it), the `--help` text and the table in docs/recovery.md.
    #[test]
    fn one_name_per_fault_kind_everywhere() {
        use abi::fault::FaultKind;
        use clap::CommandFactory;
        let kinds: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
        for k in FaultKind::ALL {
            let record = FaultRecord {
                cause: k.cause() as u32,
                ..FaultRecord::ZERO
            };
            assert_eq!(record.cause_name(), Some(k.name()), "abi, {k:?}");
            assert_eq!(cause_of(&record).name(), k.name(), "policies, {k:?}");
        }
        let help = crate::cli::Cli::command()
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            help.contains(&kinds.join(", ")),
            "--help lists {kinds:?}: {help}"
        );
        let doc = include_str!("../../../docs/recovery.md");
        let table = doc
            .split("<!-- fault-kinds:")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .expect("the fault-kinds table in docs/recovery.md");
        let documented: Vec<&str> = table
            .lines()
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        let (mut a, mut b) = (kinds.clone(), documented.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "docs/recovery.md lists {documented:?}");
    }

    #[test]
    fn bad_boundaries_are_violations() {
        let (mut e, _mem) = engine();
        for (task, seq) in [(APP as u64, 1), (3, 1), (u64::MAX, 1), (0, 0), (0, 2)] {
            assert!(
                matches!(
                    e.boundary(snap(task, seq)),
                    Err(Stop::Protocol(Violation::Boundary { .. }))
                ),
                "{task} {seq}"
            );
        }
        assert_eq!(e.summary().snapshots.boundaries, 0);
        e.boundary(snap(0, 1)).expect("the next one is fine");
        assert_eq!(e.summary().snapshots.boundaries, 1);
    }

    /// An app that faults, a task the kernel did not flag as a server, and a task index the
    /// VMM does not know: each is told to stay stopped, and nothing of theirs is restored.
    #[test]
    fn apps_and_strangers_stay_stopped() {
        let (mut e, mem) = engine();
        e.boundary(snap(0, 1)).expect("kv boundary 1");
        poke(&mem, APP, 1, 6);
        poke(&mem, 0, 1, 4);
        let app = e.fault(&fault(APP as u32, 3, 0));
        app.expect("the app's fault stops only the app");
        assert_eq!(
            (verdict(&mem).fault_seq, verdict(&mem).action),
            (3, VerdictAction::Stop as u32)
        );
        assert_eq!(peek(&mem, APP, 1), 6, "the app's memory is left as it was");
        let mut f = fault(0, 4, 1);
        f.context.flags = 0; // not a server
        e.fault(&f).expect("no recovery");
        assert_eq!(
            (verdict(&mem).fault_seq, verdict(&mem).action),
            (4, VerdictAction::Stop as u32)
        );
        assert_eq!(peek(&mem, 0, 1), 4, "kv not restored");
        e.fault(&fault(99, 5, 1)).expect("unknown task");
        assert_eq!(
            (verdict(&mem).fault_seq, verdict(&mem).action),
            (5, VerdictAction::Stop as u32)
        );
        let s = e.summary();
        assert!(s.recoveries.is_empty());
        assert_eq!(
            s.servers
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            SERVERS,
            "apps are not in the report's servers"
        );
        assert_eq!((s.servers[0].restores, s.servers[0].generation), (0, 0));
        // RESTARTED for a task with nothing pending, or none at all, completes nothing.
        e.restarted(APP as u64, 1);
        e.restarted(7, 1);
        e.restarted(0, 1);
        assert!(e.summary().recoveries.is_empty());
    }

    /// fs (task 1) sent kv a PUT after both passed boundary 1; kv applied it, passed boundary 2,
    /// then wrote more pages before fs crashed. Rolling kv back as fs's peer puts back every
    /// page: those the PUT changed (kept in the store) and those written after its newest
    /// snapshot (known only from the dirty log).
    #[test]
    fn a_peer_rollback_restores_every_page_the_peer_wrote() {
        let (mut e, mem) = engine();
        poke(&mem, 0, 1, 7);
        e.boundary(snap(0, 1)).expect("kv 1");
        e.boundary(snap(1, 1)).expect("fs 1");
        let at1 = arena_image(&mem, 0);
        poke(&mem, 0, 1, 8);
        poke(&mem, 0, 2, 5);
        e.boundary(snap(0, 2)).expect("kv 2");
        // After boundary 2: a write KVM logs (page 0) and one through the VMM (page 3).
        e.log.0.lock().expect("lock").push((slot(0), 0));
        mem.write_slice(&[3], GuestAddress(arena(0)))
            .expect("write");
        poke(&mem, 0, 3, 4);
        e.fault(&fs_crash_after_a_put(true)).expect("recovered");
        assert_eq!(arena_image(&mem, 0), at1, "kv as it was at boundary 1");
        let r = &e.summary().recoveries[0];
        assert_eq!(r.peers_rolled_back.len(), 1);
        assert_eq!(
            r.peers_rolled_back[0].pages, 4,
            "pages 1 and 2 from the store, 0 and 3 from the dirty log"
        );
    }

    /// The read-only masks the engine wrote into the monitor page, per server.
    fn read_only_masks(mem: &GuestMemory) -> [u64; 2] {
        let addr = MONITOR + std::mem::offset_of!(MonitorPage, read_only) as u64;
        [0, 1].map(|s| mem.read_obj(GuestAddress(addr + 8 * s)).expect("read"))
    }

    /// A request declared read-only is snapshotted until its snapshots have shown it changing
    /// nothing, then trusted (its bit goes into the monitor page, for the kernel). One that
    /// changed the state is reported once, never trusted, and from then on counts as
    /// state-changing in a crashed server's recovery window.
    #[test]
    fn read_only_declarations_are_trusted_only_once_they_hold() {
        let (mut e, mem) = engine();
        let get = |task, seq| PendingSnapshot::new(task, seq, GET as u16);
        for seq in 1..=u16::from(declarations::CHECKS) {
            assert_eq!(
                read_only_masks(&mem),
                [0, 0],
                "not trusted before check {seq}"
            );
            e.boundary(get(0, seq)).expect("kv GET");
        }
        assert_eq!(read_only_masks(&mem), [1 << GET, 0], "kv's GET trusted");
        // fs's GET writes its state: caught at its first check.
        poke(&mem, 1, 2, 1);
        e.boundary(get(1, 1)).expect("fs GET");
        let caught = &e.summary().misdeclared_requests;
        assert_eq!(caught.len(), 1);
        let m = &caught[0];
        assert_eq!(
            (
                m.server.as_str(),
                m.label,
                m.request.as_deref(),
                m.boundary,
                m.pages
            ),
            ("fs", GET as u16, Some("GET"), 1, 1)
        );
        for seq in 2..=2 * u16::from(declarations::CHECKS) {
            e.boundary(get(1, seq)).expect("fs GET");
        }
        assert_eq!(
            read_only_masks(&mem),
            [1 << GET, 0],
            "fs's GET is never trusted"
        );
        assert_eq!(e.summary().misdeclared_requests.len(), 1, "reported once");
        // kv sent fs a GET since its last boundary, then crashed: fs holds its effect now.
        let mut f = fault(0, 1, 4);
        f.window.count = 1;
        f.window.sent[0] = SentRecord {
            to: 1,
            flags: SentRecord::PEER_SERVER | SentRecord::PEER_QUIET,
            label: GET,
            peer_boundary: 8,
        };
        e.fault(&f).expect("recovered");
        assert_eq!(e.summary().recoveries[0].action, "rollback-peers");
    }

    /// The isolation check reports a peer whose arena changed during a restore (the test's
    /// dirty log writes into it when the engine clears the crashed server's log).
    #[test]
    fn the_isolation_check_catches_a_peer_changed_during_a_restore() {
        let (mut e, mem) = engine();
        e.boundary(snap(0, 1)).expect("kv 1");
        e.boundary(snap(1, 1)).expect("fs 1");
        poke(&mem, 0, 1, 9);
        e.log.sabotage(slot(0), &mem, 1);
        e.fault(&fault(0, 1, 1)).expect("recovered");
        assert_eq!(peek(&mem, 0, 1), 0, "kv restored");
        let r = &e.summary().recoveries[0];
        assert_eq!(
            r.peers_intact,
            Some(false),
            "fs changed during kv's restore"
        );
    }

    /// In a consistent cut the peers rolled back may change, but nobody else: the app's arena
    /// changing during the restore makes the check fail, kv's (in the cut) does not.
    #[test]
    fn the_isolation_check_spares_only_the_cut() {
        for (victim, intact) in [(0, true), (APP, false)] {
            let (mut e, mem) = engine();
            put_from_fs(&mut e, &mem);
            e.log.sabotage(slot(1), &mem, victim);
            e.fault(&fs_crash_after_a_put(true)).expect("recovered");
            let r = &e.summary().recoveries[0];
            assert_eq!(r.action, "rollback-peers");
            assert_eq!(r.peers_intact, Some(intact), "task {victim} changed");
        }
    }

    /// A fresh restart after boundaries writes the boot image back over everything written
    /// since boot, and the boot image is then the only version.
    #[test]
    fn a_fresh_restart_after_boundaries_puts_back_the_boot_image() {
        let (mut e, mem) = engine_booted_with(|mem| {
            poke(mem, 0, 0, 0x11);
            poke(mem, 0, 2, 0x22);
        });
        let boot = arena_image(&mem, 0);
        let config =
            policies::RecoveryConfig::from_toml("[recovery.servers.kv]\npolicy = \"restart\"\n")
                .expect("valid");
        let set = config.build(&SERVERS).expect("builds");
        e.set_policies(set.into_policies().into_iter().map(|(_, p)| p).collect());
        for (seq, page, byte) in [(1u16, 0, 1u8), (2, 1, 2), (3, 3, 3)] {
            poke(&mem, 0, page, byte);
            e.boundary(snap(0, seq)).expect("kv boundary");
        }
        poke(&mem, 0, 2, 4); // after the last boundary
        e.fault(&fault(0, 1, 3)).expect("recovered");
        assert_eq!(arena_image(&mem, 0), boot, "kv as it booted");
        let s = e.summary();
        assert_eq!(s.recoveries[0].action, "restart-fresh");
        assert_eq!(s.recoveries[0].pages_restored, 4, "every page had changed");
        assert_eq!(verdict(&mem).action, VerdictAction::RestartFresh as u32);
        assert_eq!(
            s.servers[0].snapshot_versions,
            [3],
            "the boot image, under kv's count"
        );
        // A later rollback goes back to the boot image, not to what boundary 3 held.
        poke(&mem, 0, 1, 5);
        e.fault(&fault(0, 2, 3)).expect("recovered");
        assert_eq!(arena_image(&mem, 0), boot);
    }

    #[test]
    fn pages_dirty_again_within_the_window_stay_writable_until_the_periodic_reset() {
        let mut hot = HotPages::new(4);
        let dirty = |pages: &[usize]| {
            let mut d = DirtyPages::clean(4);
            pages.iter().for_each(|&p| d.set(p));
            d
        };
        let protected = |d: DirtyPages| d.iter().collect::<Vec<_>>();
        assert_eq!(
            protected(hot.next(&dirty(&[1, 2]), 1)),
            [1, 2],
            "first time: protect"
        );
        assert_eq!(
            hot.faults, 2,
            "both were protected (as every page is at first)"
        );
        assert_eq!(protected(hot.next(&dirty(&[1, 3]), 2)), [3], "1 again: hot");
        assert_eq!(hot.faults, 4);
        assert_eq!(protected(hot.next(&dirty(&[1, 3]), 3)), Vec::<usize>::new());
        assert_eq!(hot.faults, 5, "1 was writable: only 3 faulted");
        // Page 2, written again only after the window: protected again.
        let late = 1 + HotPages::WINDOW + 1;
        assert_eq!(protected(hot.next(&dirty(&[1, 2, 3]), late)), [2]);
        // Page 0, written at an interval inside the window: hot from its second write.
        assert_eq!(protected(hot.next(&dirty(&[0, 1, 3]), late + 1)), [0]);
        assert_eq!(
            protected(hot.next(&dirty(&[0, 1, 3]), late + 1 + HotPages::WINDOW)),
            Vec::<usize>::new()
        );
        assert_eq!(
            protected(hot.next(&dirty(&[0, 1, 3]), HotPages::RESET)),
            [0, 1, 3],
            "the periodic reset re-protects everything"
        );
        assert_eq!(protected(hot.next(&dirty(&[1]), HotPages::RESET + 1)), [1]);
    }

    /// A page left writable is still covered: a later write reaches the next snapshot and a
    /// restore puts it back.
    #[test]
    fn a_hot_page_is_still_snapshotted_and_restored() {
        let (mut e, mem) = engine();
        for (seq, byte) in [(1u16, 1u8), (2, 2), (3, 3)] {
            poke(&mem, 0, 1, byte);
            e.log.0.lock().expect("lock").push((1, 1)); // as KVM would log the write
            e.boundary(snap(0, seq)).expect("boundary");
        }
        assert!(
            e.log.0.lock().expect("lock").contains(&(1, 1)),
            "dirty at boundaries 1, 2 and 3: left writable (still logged) after 2 and 3"
        );
        poke(&mem, 0, 1, 9); // after the last snapshot: must be rolled back
        e.fault(&fault(0, 1, 3)).expect("recovered");
        assert_eq!(peek(&mem, 0, 1), 3);
    }

    /// fs (task 1) called kv (task 0) with a PUT since its boundary, then crashed: the
    /// window the kernel would report, with kv quiet or not.
    fn fs_crash_after_a_put(quiet: bool) -> Fault {
        let mut f = fault(1, 1, 1);
        f.window.count = 1;
        f.window.sent[0] = SentRecord {
            to: 0,
            flags: SentRecord::PEER_SERVER | if quiet { SentRecord::PEER_QUIET } else { 0 },
            label: PUT,
            peer_boundary: 1,
        };
        f
    }

    /// kv at boundary 1 holds 7; fs at boundary 1; then kv handles fs's PUT (8) and passes
    /// boundary 2.
    fn put_from_fs(e: &mut Engine<FakeLog>, mem: &GuestMemory) {
        poke(mem, 0, 1, 7);
        e.boundary(snap(0, 1)).expect("kv 1");
        e.boundary(snap(1, 1)).expect("fs 1");
        poke(mem, 0, 1, 8);
        e.boundary(snap(0, 2)).expect("kv 2");
    }

    #[test]
    fn a_state_changing_send_rolls_the_quiet_peer_back_too() {
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        e.fault(&fs_crash_after_a_put(true)).expect("recovered");
        assert_eq!(
            peek(&mem, 0, 1),
            7,
            "kv back at its snapshot from before the PUT"
        );
        assert_eq!(verdict(&mem).action, VerdictAction::Rollback as u32);
        let s = e.summary();
        let r = &s.recoveries[0];
        assert_eq!(r.action, "rollback-peers");
        assert_eq!(r.peers_rolled_back.len(), 1);
        assert_eq!(
            (
                r.peers_rolled_back[0].server.as_str(),
                r.peers_rolled_back[0].to_snapshot
            ),
            ("kv", 1)
        );
        assert_eq!(r.peers_intact, Some(true), "nobody outside the cut changed");
        assert_eq!(s.servers[0].peer_rollbacks, 1);
        assert_eq!(
            s.servers[0].snapshot_versions,
            [0, 1, 2],
            "version 2 now holds the image of 1: the kernel goes on naming kv's state 2"
        );
        // kv's snapshots go on from 3 (the kernel's count).
        poke(&mem, 0, 1, 9);
        e.boundary(snap(0, 3)).expect("kv 3");
        assert_eq!(e.summary().servers[0].snapshot_versions.last(), Some(&3));
    }

    /// After kv was rolled back as fs's peer, the next message delivered to kv is recorded
    /// with kv's snapshot number as the kernel counts it (2): a second consistent cut, e.g. on
    /// fs's retry crashing again, must find that version.
    #[test]
    fn a_second_cut_after_a_peer_rollback_finds_the_peer_s_snapshot() {
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        e.fault(&fs_crash_after_a_put(true)).expect("first cut");
        assert_eq!(peek(&mem, 0, 1), 7);
        e.restarted(1, 2000);
        e.boundary(snap(1, 2))
            .expect("fs 2 (restarted, first receive)");
        // fs's retried PUT reaches kv (kernel: peer_boundary 2), kv applies it and snapshots.
        poke(&mem, 0, 1, 8);
        e.boundary(snap(0, 3)).expect("kv 3");
        let mut f = fs_crash_after_a_put(true);
        f.record.seq = 2;
        f.context.boundary = 2;
        f.window.sent[0].peer_boundary = 2;
        e.fault(&f).expect("second consistent cut");
        assert_eq!(
            peek(&mem, 0, 1),
            7,
            "kv back at the state it had before either PUT"
        );
        assert_eq!(e.summary().servers[0].peer_rollbacks, 2);
    }

    #[test]
    fn a_peer_that_answered_others_makes_the_default_fail_stop() {
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        let stop = e
            .fault(&fs_crash_after_a_put(false))
            .expect_err("no consistent cut");
        assert!(matches!(stop, Stop::FailStop { .. }), "{stop:?}");
        assert_eq!(peek(&mem, 0, 1), 8, "kv untouched");
        assert_eq!(e.summary().recoveries[0].decision.outcome, Outcome::Stopped);
    }

    #[test]
    fn without_tracking_the_peer_keeps_the_effect() {
        let (mut e, mem) = engine();
        let config =
            policies::RecoveryConfig::from_toml("[recovery]\ndependency_tracking = false\n")
                .expect("valid");
        let set = config.build(&SERVERS).expect("builds");
        e.set_policies(set.into_policies().into_iter().map(|(_, p)| p).collect());
        put_from_fs(&mut e, &mem);
        e.fault(&fs_crash_after_a_put(true)).expect("recovered");
        assert_eq!(peek(&mem, 0, 1), 8, "kv keeps the PUT fs forgot");
        assert_eq!(e.summary().recoveries[0].action, "rollback");
    }

    #[test]
    fn a_window_past_its_capacity_or_naming_strangers_is_not_trusted() {
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        let mut f = fs_crash_after_a_put(true);
        f.window.count = WINDOW_MAX as u32 + 1;
        assert!(matches!(e.fault(&f), Err(Stop::FailStop { .. })));
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        let mut f = fs_crash_after_a_put(true);
        f.window.sent[0].to = 77;
        assert!(matches!(e.fault(&f), Err(Stop::FailStop { .. })));
        // A read-only message needs nothing.
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        let mut f = fs_crash_after_a_put(false);
        f.window.sent[0].label = GET;
        e.fault(&f).expect("plain rollback");
        assert_eq!(peek(&mem, 0, 1), 8);
    }

    /// One call as a (possibly buggy) kernel might make it.
    #[derive(Clone, Debug)]
    enum Call {
        /// BOUNDARY of `task`: the number the kernel would send (`next`), or any.
        Boundary { task: u64, next: bool, any: u16 },
        /// FAULT of `task`, with pending snapshots of `pending` tasks (their next numbers or
        /// not) and a window derived from `n`.
        Fault {
            task: u32,
            server: bool,
            cause: u32,
            n: u16,
            pending: Vec<(u64, bool)>,
        },
        /// RESTARTED of `task`.
        Restarted { task: u64, tsc: u64 },
    }

    fn call() -> impl proptest::strategy::Strategy<Value = Call> {
        use proptest::prelude::*;
        prop_oneof![
            5 => (0u64..4, proptest::bool::weighted(0.8), any::<u16>())
                .prop_map(|(task, next, any)| Call::Boundary { task, next, any }),
            2 => (
                0u32..4,
                proptest::bool::weighted(0.9),
                0u32..12,
                any::<u16>(),
                proptest::collection::vec((0u64..5, proptest::bool::weighted(0.8)), 0..3),
            )
                .prop_map(|(task, server, cause, n, pending)| Call::Fault { task, server, cause, n, pending }),
            1 => (0u64..4, any::<u64>()).prop_map(|(task, tsc)| Call::Restarted { task, tsc }),
        ]
    }

    /// Whatever the kernel sends, in any order, the engine never panics and keeps the books the
    /// test keeps itself: a boundary is taken exactly when it is a server's next number, each
    /// server's newest snapshot is always its last boundary (rollbacks and fresh restarts keep
    /// the kernel's numbering), every fault of a server that reaches a decision is counted and
    /// recorded, and nothing else is. Across the run, a good share of the calls must reach the
    /// snapshot and the decision, so the property is not vacuous.
    #[test]
    fn arbitrary_calls_keep_the_books() {
        use proptest::test_runner::{Config, TestRunner};
        use std::sync::atomic::{AtomicU32, Ordering};
        const CASES: u32 = 256;
        let (taken, decided) = (AtomicU32::new(0), AtomicU32::new(0));
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let strategy = proptest::collection::vec(call(), 0..60);
        runner
            .run(&strategy, |calls| {
                let (mut e, _mem) = engine();
                // The test's books: boundaries per server, and faults decided per server.
                let mut boundaries = [0u64; 2];
                let mut crashes = [0u64; 2];
                let mut records = 0usize;
                let is_server = |t: u64| t < 2;
                let next = |b: &[u64; 2], t: u64| is_server(t).then(|| (b[t as usize] + 1) as u16);
                for call in calls {
                    match call {
                        Call::Boundary {
                            task,
                            next: wanted,
                            any,
                        } => {
                            let seq = if wanted {
                                next(&boundaries, task).unwrap_or(1)
                            } else {
                                any
                            };
                            let ok = next(&boundaries, task) == Some(seq);
                            proptest::prop_assert_eq!(
                                e.boundary(snap(task, seq)).is_ok(),
                                ok,
                                "{} {}",
                                task,
                                seq
                            );
                            if ok {
                                boundaries[task as usize] += 1;
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Call::Fault {
                            task,
                            server,
                            cause,
                            n,
                            pending,
                        } => {
                            let mut f = fault(
                                task,
                                u64::from(n),
                                boundaries.get(task as usize).copied().unwrap_or(0),
                            );
                            f.record.cause = cause;
                            f.context.flags = if server { CrashContext::SERVER } else { 0 };
                            f.context.caller = if n % 2 == 0 { NO_CALLER } else { u32::from(n) };
                            f.context.label = u64::from(cause);
                            f.window.count = u32::from(n % 11);
                            for (i, m) in f.window.sent.iter_mut().enumerate() {
                                m.to = (u32::from(n) + i as u32) % 4;
                                m.flags = u32::from(n) >> (i % 3);
                                m.label = u64::from(cause) + i as u64;
                                m.peer_boundary = u64::from(n % 5);
                            }
                            // The books after the pending snapshots: taken in order while each
                            // is another server's next number; the first bad one stops the call.
                            let mut after = boundaries;
                            let mut reaches_decision = true;
                            f.pending_snapshots = pending
                                .iter()
                                .map(|&(t, good)| {
                                    let seq = if good {
                                        next(&after, t).unwrap_or(1)
                                    } else {
                                        n
                                    };
                                    if reaches_decision
                                        && t != u64::from(task)
                                        && next(&after, t) == Some(seq)
                                    {
                                        after[t as usize] += 1;
                                    } else {
                                        reaches_decision = false;
                                    }
                                    snap(t, seq)
                                })
                                .collect();
                            let result = e.fault(&f);
                            boundaries = after;
                            if reaches_decision && is_server(u64::from(task)) {
                                crashes[task as usize] += 1;
                                if server {
                                    records += 1;
                                    decided.fetch_add(1, Ordering::Relaxed);
                                }
                            } else {
                                proptest::prop_assert!(
                                    !reaches_decision || result.is_ok(),
                                    "{:?}",
                                    result
                                );
                            }
                        }
                        Call::Restarted { task, tsc } => e.restarted(task, tsc),
                    }
                    let s = e.summary();
                    for t in 0..2 {
                        proptest::prop_assert_eq!(
                            s.servers[t].snapshot_versions.last(),
                            Some(&boundaries[t])
                        );
                        proptest::prop_assert_eq!(s.servers[t].crashes, crashes[t]);
                    }
                    proptest::prop_assert_eq!(s.recoveries.len(), records);
                    proptest::prop_assert_eq!(
                        s.snapshots.boundaries,
                        boundaries.iter().sum::<u64>()
                    );
                }
                Ok(())
            })
            .expect("property holds");
        let (taken, decided) = (taken.into_inner(), decided.into_inner());
        assert!(
            taken >= CASES * 4,
            "only {taken} snapshots taken in {CASES} runs"
        );
        assert!(
            decided >= CASES / 2,
            "only {decided} decisions in {CASES} runs"
        );
    }
}
