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
}

/// What a task takes from the guest command line under its own name (`NAME=VALUE`), checked
/// by the kernel at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Nothing (its name is not a command-line key).
    None,
    /// A whole number, at most 16 digits (a load client's ticks).
    Number,
    /// The name of a fault kind (`null-deref`, `panic`, ...: [`abi::inject::FaultKind`]), or one
    /// of these words.
    FaultOr(&'static [&'static str]),
}

/// One task of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDef {
    /// Name: also its package and binary name, and its server name in the manifest.
    pub name: &'static str,
    /// Server or app.
    pub kind: Kind,
    /// Scheduling priority: 0 is the most urgent.
    pub priority: u8,
    /// May stop the VM and report workload figures.
    pub may_exit: bool,
    /// Its command-line value.
    pub arg: Arg,
}

const fn task(name: &'static str, kind: Kind, priority: u8, may_exit: bool, arg: Arg) -> TaskDef {
    TaskDef {
        name,
        kind,
        priority,
        may_exit,
        arg,
    }
}

/// Index of the name server, which every task can reach without a lookup.
pub const NAMES: usize = 0;

/// The tasks, in task-index order.
pub const TASKS: &[TaskDef] = &[
    task("names", Kind::Server, 1, false, Arg::None),
    task("kv", Kind::Server, 1, false, Arg::None),
    task("fs", Kind::Server, 1, false, Arg::None),
    task("bank", Kind::Server, 1, false, Arg::None),
    // `crasher=KIND`: the fault to take under a POKE; `init`: a fault before its first
    // boundary; `bench`: time the system-call traps; `misdeclare`: break PING's declaration.
    task(
        "crasher",
        Kind::Server,
        2,
        false,
        Arg::FaultOr(&["init", "bench", "misdeclare"]),
    ),
    // Takes `ops` and `seed` instead (see the kernel's boot arguments).
    task("workload", Kind::App, 3, true, Arg::None),
    // Load clients, one per server (idle unless given a duration on the command line).
    task("namesload", Kind::App, 3, false, Arg::Number),
    task("kvload", Kind::App, 3, false, Arg::Number),
    task("fsload", Kind::App, 3, false, Arg::Number),
    task("bankload", Kind::App, 3, false, Arg::Number),
];

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
        if matches!(TASKS[i].kind, Kind::App) {
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
    fn names_are_found() {
        assert_eq!(index_of("names"), Some(NAMES));
        assert_eq!(index_of("workload"), Some(5));
        assert_eq!(index_of("bankload"), Some(TASKS.len() - 1));
        assert_eq!(index_of("nope"), None);
    }
}
