//! The engine on fake guest memory and a fake dirty log: snapshots and restores, consistent
//! cuts and the isolation check, declarations, and whatever a kernel might send (one file
//! each); here the fixtures they share.
use super::*;
use crate::devices::monitor::{FaultReport, PendingSnapshot};
use crate::layout::{Layout, SlotKind};
use crate::layout::{ServerRegions, Slot};
use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use crate::recovery::dirty::DirtyLog;
use abi::fault::FaultCause;
use abi::manifest::Range;
use abi::monitor::{
    CrashContext, FaultPlan, MAX_PLANNED_FAULTS, MonitorPage, SentRecord, SentWindow, Verdict,
    VerdictAction, WINDOW_MAX,
};
use abi::monitor::{FaultRecord, NO_CALLER};
use abi::requests::RequestDecl;
use abi::requests::RequestTable;
use policies::Outcome;
use snapshot::{DirtyPages, PAGE_SIZE};
use std::sync::Mutex;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::IntoBytes;

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
            text: Range::new(0, 0),
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

fn fault(task: u32, seq: u64, boundary: u64) -> FaultReport {
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
    FaultReport {
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

mod calls;
mod cuts;
mod declarations;
mod restores;
