//! The system map of the bundled guest image: where the kernel, the monitor page and every task
//! live, defined once and used by the kernel (its manifest and task table), the kernel's build
//! script (which bundles the tasks) and the tasks' build scripts (which link them).
//!
//! ```text
//!  0x0020_0000  kernel image (at most 2 MiB: code, data, page tables, stacks;   ┐ kernel
//!               one 2 MiB page in every address space)                          │ region
//!  0x0040_0000  task text areas: task i's code and read-only data at           │
//!               TEXT_BASE + i * TEXT_SIZE (256 KiB each)                       ┘
//!  0x0080_0000  monitor page
//!  0x0100_0000  task i at TASK_BASE + i * TASK_STRIDE (2 MiB apart):
//!                 state arena  1 MiB     .data and .bss: all the task's state (dirty-logged)
//!                 scratch      128 KiB   guard page, then the stack (not logged)
//! ```
//!
//! Every task is a "server" of the manifest (it gets its own pair of memslots), apps included.
//! Task index = server index = position in [`TASKS`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::manifest::{MAX_SERVERS, Manifest, Range, ServerDecl};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Start of the kernel region (and of the kernel image). 2 MiB-aligned, so that one large page
/// maps the whole image: on KVM-PVM ring 0 is emulated and every access the kernel makes walks
/// the guest page tables, one level fewer with a 2 MiB page (measured: ~7% off the fault path).
pub const KERNEL_BASE: u64 = 0x20_0000;
/// Where the kernel image must end.
pub const KERNEL_IMAGE_END: u64 = TEXT_BASE;
/// First task text area.
pub const TEXT_BASE: u64 = 0x40_0000;
/// Size of one task text area.
pub const TEXT_SIZE: u64 = 256 * KIB;
/// The kernel region: the kernel image and every task text area.
pub const KERNEL_REGION: Range = Range::new(KERNEL_BASE, MONITOR_PAGE - KERNEL_BASE);
/// The monitor page.
pub const MONITOR_PAGE: u64 = 0x80_0000;
/// Task 0's state arena.
pub const TASK_BASE: u64 = 0x100_0000;
/// Distance between two tasks' state arenas.
pub const TASK_STRIDE: u64 = 2 * MIB;
/// Size of a state arena.
pub const STATE_SIZE: u64 = MIB;
/// Size of a scratch region (its first page is the stack guard).
pub const SCRATCH_SIZE: u64 = 128 * KIB;
/// The unmapped page at the bottom of each scratch region.
pub const GUARD_SIZE: u64 = 4 * KIB;

/// Servers answer requests; apps only make them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An event-driven server loop (has a per-message time budget).
    Server,
    /// A client program.
    App,
    /// A load client: an app that drives one server for the ticks its command-line value
    /// says, then answers the workload's WAIT with its figures (the `load` crate).
    Load,
}

/// What a task takes from the guest command line under its own name (`NAME=VALUE`), checked
/// by the kernel at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Nothing (its name is not a command-line key).
    None,
    /// A whole number, at most 16 digits (a load client's ticks).
    Number,
    /// The name of a fault kind (`null-deref`, `panic`, ...: [`abi::fault::FaultKind`]), or one
    /// of these words.
    FaultOr(&'static [&'static str]),
}

/// One task of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDef {
    /// Name: also its package and binary name, and its server name in the manifest.
    pub name: &'static str,
    /// Server, app or load client.
    pub kind: Kind,
    /// Scheduling priority: 0 is the most urgent.
    pub priority: u8,
    /// May stop the VM and report workload figures.
    pub may_exit: bool,
    /// Its command-line value.
    pub arg: Arg,
}

/// One server of the image, and the load client that drives it: one line of [`SERVERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerDef {
    /// Its name (package, binary, manifest name).
    pub name: &'static str,
    /// Scheduling priority (0 is the most urgent; servers are 1 unless they are test servers).
    pub priority: u8,
    /// Its command-line value.
    pub arg: Arg,
    /// Its load client's name (package and binary), if it has one.
    pub load: Option<&'static str>,
}

/// Server `name` at scheduling priority `priority`, without a load client or a command-line
/// value.
pub const fn server(name: &'static str, priority: u8) -> ServerDef {
    ServerDef {
        name,
        priority,
        arg: Arg::None,
        load: None,
    }
}

impl ServerDef {
    /// The same server, driven by load client `load` (a task of its own, run with `load=TICKS`).
    pub const fn with_load(self, load: &'static str) -> Self {
        Self {
            load: Some(load),
            ..self
        }
    }

    /// The same server, taking `arg` from the command line.
    pub const fn with_arg(self, arg: Arg) -> Self {
        Self { arg, ..self }
    }
}

/// Index of the name server, which every task can reach without a lookup.
pub const NAMES: usize = 0;

/// The image's servers, one line each: adding a server to the image is adding its line (and
/// its crates; docs/writing-a-server.md). Task indices follow this order: the servers, then the
/// workload, then the load clients in their servers' order.
pub const SERVERS: &[ServerDef] = &[
    server("names", 1).with_load("namesload"),
    server("kv", 1).with_load("kvload"),
    server("fs", 1).with_load("fsload"),
    server("bank", 1).with_load("bankload"),
    // `crasher=KIND`: the fault to take under a POKE; `init`: a fault before its first
    // boundary; `bench`: time the system-call traps; `misdeclare`: break PING's declaration.
    server("crasher", 2).with_arg(Arg::FaultOr(&["init", "bench", "misdeclare"])),
    server("queue", 1).with_load("queueload"),
];

/// The workload: the self-checking client (takes `ops` and `seed` instead of a value of its
/// own: see the kernel's boot arguments).
pub const WORKLOAD: TaskDef = TaskDef {
    name: "workload",
    kind: Kind::App,
    priority: 3,
    may_exit: true,
    arg: Arg::None,
};

/// Priority of the load clients.
const LOAD_PRIORITY: u8 = 3;

const fn load_clients() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < SERVERS.len() {
        if SERVERS[i].load.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

const TASK_COUNT: usize = SERVERS.len() + 1 + load_clients();

const fn all_tasks() -> [TaskDef; TASK_COUNT] {
    let mut tasks = [WORKLOAD; TASK_COUNT];
    let mut i = 0;
    while i < SERVERS.len() {
        let s = SERVERS[i];
        tasks[i] = TaskDef {
            name: s.name,
            kind: Kind::Server,
            priority: s.priority,
            may_exit: false,
            arg: s.arg,
        };
        i += 1;
    }
    let mut next = SERVERS.len() + 1;
    let mut j = 0;
    while j < SERVERS.len() {
        if let Some(load) = SERVERS[j].load {
            tasks[next] = TaskDef {
                name: load,
                kind: Kind::Load,
                priority: LOAD_PRIORITY,
                may_exit: false,
                arg: Arg::Number,
            };
            next += 1;
        }
        j += 1;
    }
    tasks
}

const ALL_TASKS: [TaskDef; TASK_COUNT] = all_tasks();

/// The tasks, in task-index order: [`SERVERS`], the [`WORKLOAD`], the load clients.
pub const TASKS: &[TaskDef] = &ALL_TASKS;

/// Number of priority levels.
pub const PRIORITIES: u8 = 4;

const _: () = {
    assert!(TASKS.len() <= MAX_SERVERS);
    assert!(TEXT_BASE + MAX_SERVERS as u64 * TEXT_SIZE <= MONITOR_PAGE);
    assert!(KERNEL_REGION.base + KERNEL_REGION.size <= MONITOR_PAGE);
    assert!(MONITOR_PAGE + 0x1000 <= TASK_BASE);
    assert!(STATE_SIZE + SCRATCH_SIZE <= TASK_STRIDE);
    assert!(KERNEL_BASE.is_multiple_of(2 * MIB) && KERNEL_IMAGE_END - KERNEL_BASE == 2 * MIB);
    let mut i = 0;
    while i < TASKS.len() {
        assert!(TASKS[i].priority < PRIORITIES);
        i += 1;
    }
};

/// Task `index`'s text area (code and read-only data; user-readable, executable).
pub const fn text(index: usize) -> Range {
    Range::new(TEXT_BASE + index as u64 * TEXT_SIZE, TEXT_SIZE)
}

/// Task `index`'s state arena (.data and .bss; user-writable, not executable).
pub const fn state(index: usize) -> Range {
    Range::new(TASK_BASE + index as u64 * TASK_STRIDE, STATE_SIZE)
}

/// Task `index`'s scratch region (guard page + stack).
pub const fn scratch(index: usize) -> Range {
    Range::new(
        TASK_BASE + index as u64 * TASK_STRIDE + STATE_SIZE,
        SCRATCH_SIZE,
    )
}

/// The stack guard page of task `index` (never mapped).
pub const fn guard(index: usize) -> Range {
    Range::new(scratch(index).base, GUARD_SIZE)
}

/// The initial stack pointer of task `index`: the top of its scratch region.
pub const fn stack_top(index: usize) -> u64 {
    scratch(index).base + SCRATCH_SIZE
}

/// The index of the task called `name`.
pub fn index_of(name: &str) -> Option<usize> {
    TASKS
        .iter()
        .position(|t| t.name.as_bytes() == name.as_bytes())
}

/// The region manifest the kernel image carries.
pub const fn manifest() -> Manifest {
    let mut m = Manifest::EMPTY;
    m.kernel = KERNEL_REGION;
    m.monitor_page = MONITOR_PAGE;
    let mut i = 0;
    while i < TASKS.len() {
        m.servers[i] = ServerDecl::new(TASKS[i].name.as_bytes(), state(i), scratch(i));
        m.text[i] = text(i);
        if !matches!(TASKS[i].kind, Kind::Server) {
            m.apps |= 1 << i;
        }
        i += 1;
    }
    m.server_count = TASKS.len() as u16;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_do_not_overlap_and_fit_128_mib() {
        let m = manifest();
        let mut all = vec![m.kernel, Range::new(m.monitor_page, 0x1000)];
        for s in m.declared_servers() {
            all.push(s.state);
            all.push(s.scratch);
            assert!(s.name_str().is_some());
        }
        for (i, a) in all.iter().enumerate() {
            assert!(a.end().is_some_and(|e| e <= 128 * MIB));
            for b in &all[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} overlaps {b:?}");
            }
        }
        for i in 0..TASKS.len() {
            assert!(m.kernel.contains_range(&text(i)));
            assert!(scratch(i).contains_range(&guard(i)));
            assert_eq!(stack_top(i) % 16, 0);
        }
    }

    #[test]
    fn one_line_per_server_makes_its_tasks() {
        let names: Vec<&str> = TASKS.iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "names",
                "kv",
                "fs",
                "bank",
                "crasher",
                "queue",
                "workload",
                "namesload",
                "kvload",
                "fsload",
                "bankload",
                "queueload"
            ]
        );
        assert!(
            TASKS[..SERVERS.len()]
                .iter()
                .all(|t| t.kind == Kind::Server)
        );
        assert_eq!(TASKS[SERVERS.len()], WORKLOAD);
        assert!(
            TASKS[SERVERS.len() + 1..]
                .iter()
                .all(|t| t.kind == Kind::Load && t.arg == Arg::Number && !t.may_exit)
        );
        let m = manifest();
        assert_eq!(
            m.apps, 0b1111_1100_0000,
            "the workload and the load clients are apps"
        );
    }

    #[test]
    fn names_are_found() {
        assert_eq!(index_of("names"), Some(NAMES));
        assert_eq!(index_of("workload"), Some(6));
        assert_eq!(index_of("queueload"), Some(TASKS.len() - 1));
        assert_eq!(index_of("nope"), None);
    }
}
