//! The monitor page: records the guest kernel and the VMM hand each other.
//!
//! The page (its address is the manifest's `monitor_page`) holds one [`MonitorPage`]. Before the
//! guest runs, the VMM writes the header, its `flags` and the fault-injection `plan`; the kernel
//! reads them at boot. Later the kernel fills a record, then makes the hypercall that names it
//! ([`crate::hypercall::Hypercall::Fault`] or [`crate::hypercall::Hypercall::Report`]); the VMM
//! reads the record on that exit and, for a fault, writes its `verdict` before it resumes the
//! guest. Every guest-written field is untrusted: the VMM checks magic and version, treats
//! unknown causes as such, bounds-checks indices, and names tasks from its own validated layout,
//! never from guest text. The kernel in turn checks that a verdict answers the fault it reported.
//!
//! ```text
//!  offset  size  field                  written by  when
//!  0       8     magic (MONITOR_MAGIC)  VMM, kernel boot
//!  8       4     version                VMM, kernel boot
//!  12      4     flags (FLAG_*)         VMM         before boot
//!  16      64    fault: FaultRecord     kernel      before a FAULT hypercall
//!  80      40    report: WorkloadReport kernel      before a REPORT hypercall
//!  120     40    crash: CrashContext    kernel      before a FAULT hypercall
//!  160     16    verdict: Verdict       VMM         during a FAULT hypercall
//!  176     384   plan: [FaultPlan; 16]  VMM         before boot
//!  560     8     restart_tsc            kernel      before a RESTARTED hypercall
//!  568     200   window: SentWindow     kernel      before a FAULT hypercall
//!  768     32    snapshot_seq: [u16;16] kernel      at a boundary it snapshots later
//!  800     4     pending_snapshots      kernel      before a FAULT hypercall
//!  804     4     reserved (zero)
//!  808     128   read_only: [u64; 16]   VMM         before boot, during any exit
//!  936     32    snapshot_label: [u16;16] kernel    with snapshot_seq
//!  968     184   inject: InjectRecord   kernel, VMM during an INJECT hypercall
//!  1152    24    step: StepRecord       kernel      while and after it single-steps a task
//! ```

use crate::fault::{FaultCause, FaultKind, NULL_PAGE_END};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `MonitorPage::magic`: "CMMONPG1" little-endian.
pub const MONITOR_MAGIC: u64 = 0x3147_504e_4f4d_4d43;
/// `MonitorPage::version` this contract describes.
pub const MONITOR_VERSION: u32 = 8;

/// `MonitorPage::flags`: the VMM snapshots servers at their boundaries (the kernel reports them
/// with BOUNDARY or SNAPSHOTS hypercalls, and pending ones with a FAULT).
pub const FLAG_SNAPSHOTS: u32 = 1 << 0;
/// `MonitorPage::flags`: the VMM recovers crashed servers (it answers FAULT with a verdict).
pub const FLAG_RECOVERY: u32 = 1 << 1;
/// Entries of the fault-injection plan.
pub const MAX_PLANNED_FAULTS: usize = 16;
/// `CrashContext::caller` when no caller waits for the crashed task's reply.
pub const NO_CALLER: u32 = u32::MAX;
/// Messages of a recovery window the kernel describes ([`SentWindow::sent`]); a server that
/// sent more since its boundary is reported with `count` above this (the VMM must then assume
/// the worst about the ones not listed).
pub const WINDOW_MAX: usize = 8;

/// One stopped task.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FaultRecord {
    /// Counts fault records since boot (1 for the first).
    pub seq: u64,
    /// Task-table index; equal to its server index in the manifest.
    pub task: u32,
    /// The task's generation when it stopped.
    pub generation: u32,
    /// A [`FaultCause`] number.
    pub cause: u32,
    /// The CPU exception vector (or 0xffff_ffff for panics and hangs).
    pub vector: u32,
    /// Where the task was.
    pub rip: u64,
    /// Faulting address (CR2) for page faults, else 0.
    pub addr: u64,
    /// The exception's error code, else 0.
    pub error_code: u64,
    /// Messages the task had received (message boundaries passed) before it stopped.
    pub messages: u64,
    /// The guest TSC at the kernel's fault entry (0 when not read), for recovery latency.
    pub entry_tsc: u64,
}

impl FaultRecord {
    /// The cause's name in the fault vocabulary ([`FaultCause::name`]), with a page fault in
    /// the null page named `null-deref`; `None` for a cause number this contract does not know.
    pub const fn cause_name(&self) -> Option<&'static str> {
        match FaultCause::from_number(self.cause) {
            Some(FaultCause::PageFault) if self.addr < NULL_PAGE_END => Some("null-deref"),
            Some(c) => Some(c.name()),
            None => None,
        }
    }

    /// All zero (no fault).
    pub const ZERO: FaultRecord = FaultRecord {
        seq: 0,
        task: 0,
        generation: 0,
        cause: 0,
        vector: 0,
        rip: 0,
        addr: 0,
        error_code: 0,
        messages: 0,
        entry_tsc: 0,
    };
}

/// What the kernel adds to a fault record for the recovery decision.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CrashContext {
    /// Boundaries the task passed (0: none since boot; snapshots are numbered separately).
    pub boundary: u64,
    /// The label of the request in flight (received since the boundary), if `caller` is set.
    pub label: u64,
    /// Task index of the caller waiting for the in-flight request's reply, or [`NO_CALLER`].
    pub caller: u32,
    /// Bit 0: the task is a server (it has boundaries and can be recovered); bit 1: the
    /// in-flight request is a replay (it was delivered again after an earlier crash); bits
    /// 8-15: the [`FaultKind`] planned for the message it was handling (0: none),
    /// i.e. the crash was injected.
    pub flags: u32,
    /// Guest-physical address of the task's panic text (0: none).
    pub text_addr: u64,
    /// Its length (the VMM reads at most `MAX_PANIC_TEXT` bytes).
    pub text_len: u64,
}

impl CrashContext {
    /// `flags` bit: the task is a server.
    pub const SERVER: u32 = 1 << 0;
    /// `flags` bit: the in-flight request is a replay.
    pub const REPLAY: u32 = 1 << 1;
    /// Shift of the planned fault kind's number in `flags`.
    pub const INJECTED_SHIFT: u32 = 8;

    /// The fault kind planned for the message the task was handling, if one was (unknown
    /// numbers read as none).
    pub const fn injected(&self) -> Option<FaultKind> {
        FaultKind::from_number(((self.flags >> Self::INJECTED_SHIFT) & 0xff) as u64)
    }

    /// The caller waiting for the in-flight request, if any.
    pub fn caller(&self) -> Option<u32> {
        (self.caller != NO_CALLER).then_some(self.caller)
    }
}

/// What the VMM tells the kernel to do with a crashed task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum VerdictAction {
    /// Leave it stopped: the tasks it held get `PeerCrashed` (also the answer to any verdict the
    /// kernel cannot read).
    Stop = 0,
    /// Its state was restored to its last boundary: restart it there, answer the in-flight
    /// request "peer restarted".
    Rollback = 1,
    /// As rollback, but deliver the in-flight request again (at most once per request).
    Replay = 2,
    /// Its state was restored to its boot image: restart it, answer the in-flight request and
    /// the callers queued on it "state lost".
    RestartFresh = 3,
}

impl VerdictAction {
    /// The action with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        Some(match n {
            0 => Self::Stop,
            1 => Self::Rollback,
            2 => Self::Replay,
            3 => Self::RestartFresh,
            _ => return None,
        })
    }
}

/// The VMM's answer to a FAULT hypercall.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Verdict {
    /// The `seq` of the fault record it answers.
    pub fault_seq: u64,
    /// A [`VerdictAction`] number.
    pub action: u32,
    /// Timer ticks (10 ms) to wait before the task runs again (a policy's backoff); its
    /// callers stay queued meanwhile.
    pub delay_ticks: u32,
}

impl Verdict {
    /// The action, if this verdict answers fault `seq` with a known one; else `Stop`.
    pub fn action_for(&self, seq: u64) -> VerdictAction {
        match VerdictAction::from_number(self.action) {
            Some(a) if self.fault_seq == seq => a,
            _ => VerdictAction::Stop,
        }
    }
}

/// [`FaultPlan::task`] of a fault planned for the kernel itself (`vmm run --fault
/// kernel:KIND@N`): its `message` counts the messages delivered to every task.
pub const KERNEL_TARGET: u32 = 0xff;

/// One planned fault: task `task` takes fault `kind` ([`FaultKind`]) while it
/// handles its `message`-th delivered message, and again every `period` messages after that
/// when `period` is not 0. Unused entries have `message` 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FaultPlan {
    /// Task-table index.
    pub task: u32,
    /// A [`FaultKind`] number, with [`crate::fault::AFTER_SEND`] for a fault
    /// taken after the handler, on the first message from the `message`-th on during which the
    /// task sent a message.
    pub kind: u32,
    /// The message number (1 = the first message the task receives); 0 = unused entry.
    pub message: u64,
    /// Messages between repeats (0: once).
    pub period: u64,
}

/// The workload's figures: its final report, and (per server, in [`MonitorPage::progress`]) what
/// the clients published so far.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct WorkloadReport {
    /// Requests issued.
    pub ops: u64,
    /// Requests answered with an error the model did not expect.
    pub errors: u64,
    /// Requests retried after a "peer restarted" reply.
    pub retries: u64,
    /// Requests whose effect a server declared lost.
    pub lost: u64,
    /// Replies or reads that disagreed with the model.
    pub mismatches: u64,
}

impl WorkloadReport {
    /// Nothing yet.
    pub const ZERO: Self = Self {
        ops: 0,
        errors: 0,
        retries: 0,
        lost: 0,
        mismatches: 0,
    };

    /// Each figure of `self` plus `other`'s (saturating: guest-given figures may be anything).
    #[must_use]
    pub const fn plus(self, other: Self) -> Self {
        Self {
            ops: self.ops.saturating_add(other.ops),
            errors: self.errors.saturating_add(other.errors),
            retries: self.retries.saturating_add(other.retries),
            lost: self.lost.saturating_add(other.lost),
            mismatches: self.mismatches.saturating_add(other.mismatches),
        }
    }

    /// Each figure of `self` less `earlier`'s (what changed since `earlier` was taken).
    #[must_use]
    pub const fn since(self, earlier: Self) -> Self {
        Self {
            ops: self.ops.saturating_sub(earlier.ops),
            errors: self.errors.saturating_sub(earlier.errors),
            retries: self.retries.saturating_sub(earlier.retries),
            lost: self.lost.saturating_sub(earlier.lost),
            mismatches: self.mismatches.saturating_sub(earlier.mismatches),
        }
    }
}

/// One message a crashed server sent (with `send` or `call`) since its last boundary, as the
/// kernel recorded it when the message was delivered. Whether its request type changes the
/// receiver's state is declared in the receiver's `*-api` crate; the VMM looks that up.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SentRecord {
    /// The receiver's task-table index.
    pub to: u32,
    /// `SentRecord::PEER_*` bits, computed when the fault is reported.
    pub flags: u32,
    /// The message's label (the request type).
    pub label: u64,
    /// The receiver's boundary count when the message was delivered to it: its state then was
    /// its snapshot of that number, from before this message.
    pub peer_boundary: u64,
}

impl SentRecord {
    /// `flags` bit: since this message was delivered, the receiver has done nothing but handle
    /// this and later messages of the crashed server (no other message or notification, no
    /// message of its own, no timer set), and it now waits for its next message at a boundary.
    /// Only then can it be rolled back to `peer_boundary` without touching anyone else.
    pub const PEER_QUIET: u32 = 1 << 0;
    /// `flags` bit: the receiver is a server (it has snapshots); apps have none.
    pub const PEER_SERVER: u32 = 1 << 1;

    /// True when [`Self::PEER_QUIET`] is set.
    pub fn peer_quiet(&self) -> bool {
        self.flags & Self::PEER_QUIET != 0
    }
}

/// The crashed server's recovery window: what it sent since its last boundary (OSIRIS-style
/// dependency tracking).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SentWindow {
    /// Messages sent since the boundary; only the first [`WINDOW_MAX`] are in `sent`.
    pub count: u32,
    /// Zero.
    pub reserved: u32,
    /// The first `min(count, WINDOW_MAX)` of them, in delivery order.
    pub sent: [SentRecord; WINDOW_MAX],
}

impl SentWindow {
    /// The listed messages (at most [`WINDOW_MAX`], whatever `count` says).
    pub fn listed(&self) -> &[SentRecord] {
        let n = usize::try_from(self.count)
            .unwrap_or(usize::MAX)
            .min(WINDOW_MAX);
        &self.sent[..n]
    }

    /// True when the server sent more than the window lists.
    pub fn overflowed(&self) -> bool {
        usize::try_from(self.count).map_or(true, |n| n > WINDOW_MAX)
    }
}

/// The general registers of a task as the INJECT record carries them, in the order of
/// [`InjectRegs::NAMES`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct InjectRegs {
    /// rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8-r15.
    pub gpr: [u64; 16],
    /// Where the task resumes (read only: the VMM's changes are not taken).
    pub rip: u64,
    /// Its flags (read only).
    pub rflags: u64,
}

impl InjectRegs {
    /// The general registers' names, in `gpr` order.
    pub const NAMES: [&'static str; 16] = [
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    /// The registers that carry a message as it is delivered (`gpr` indices): the label (rsi)
    /// and the six words (rdx, r8, r9, r10, r12, r13).
    pub const PAYLOAD: [usize; 7] = [4, 3, 8, 9, 10, 12, 13];
}

/// An INJECT hypercall: a fault the VMM carries out ([`crate::fault::Executor::Vmm`]) is due.
///
/// `START`: the kernel delivered task `task`'s `message`-th message, for which fault `word` is
/// planned, and the task is about to run with it: the kernel writes the task's registers; the
/// VMM corrupts what the fault says (memory directly, registers in `regs`, whose general
/// registers the kernel takes back), and answers with `watch` (single-step the task until it
/// is about to execute the instruction at `watch`, at most `budget` steps; 0: no) and
/// `notify_end` (1: make an `END` call when the task's next message is delivered). `END`: that
/// next message came (the faulted one is over); the VMM undoes a transient fault, and reads how
/// the stepping went in the [`StepRecord`]. For [`KERNEL_TARGET`], `message` counts every
/// task's messages and `regs` are the task about to run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct InjectRecord {
    /// The task index, or [`KERNEL_TARGET`].
    pub task: u32,
    /// [`InjectRecord::START`] or [`InjectRecord::END`].
    pub phase: u32,
    /// The plan's kind word (a [`FaultKind`] number).
    pub word: u64,
    /// The message number it is due at.
    pub message: u64,
    /// The registers the task resumes with (`START`).
    pub regs: InjectRegs,
    /// VMM: the instruction address to single-step to (0: none).
    pub watch: u64,
    /// VMM: most single steps.
    pub budget: u32,
    /// VMM: 1 to be told (`END`) when the task's next message is delivered.
    pub notify_end: u32,
}

impl InjectRecord {
    /// `phase`: the fault is due.
    pub const START: u32 = 1;
    /// `phase`: the task's next message came.
    pub const END: u32 = 2;
}

/// How the kernel's single-stepping of a task toward an injected instruction went: written
/// when it starts and whenever its outcome is known (reached, the message ended, the budget
/// ran out, the task crashed first).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct StepRecord {
    /// The task stepped.
    pub task: u32,
    /// One of `StepRecord::*` (0: no stepping yet).
    pub outcome: u32,
    /// The watched address.
    pub watch: u64,
    /// Steps taken.
    pub steps: u64,
}

impl StepRecord {
    /// `outcome`: stepping.
    pub const STEPPING: u32 = 1;
    /// `outcome`: the task was about to execute the watched instruction (it then ran it).
    pub const REACHED: u32 = 2;
    /// `outcome`: the message ended (the task's next one was delivered) before it got there.
    pub const ENDED: u32 = 3;
    /// `outcome`: the step budget ran out first.
    pub const BUDGET: u32 = 4;
    /// `outcome`: the task crashed first.
    pub const CRASHED: u32 = 5;
}

/// A fault the VMM plans while the VM runs (`vmm ctl fault`, the API): the VMM writes `task`
/// and `kind`, then a new `seq`; at its next timer tick (every 10 ms, or as it idles) the
/// kernel plans it for the task's next message, or cancels the task's pending one when `kind`
/// is [`LiveRequest::CANCEL`], and writes `result`, then `done = seq`. One request at a time:
/// the VMM waits for `done` before the next.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct LiveRequest {
    /// Bumped by the VMM for each request (0: none yet).
    pub seq: u64,
    /// The task.
    pub task: u32,
    /// An `abi::fault::FaultKind` number, or [`LiveRequest::CANCEL`].
    pub kind: u32,
    /// The `seq` the kernel handled last.
    pub done: u64,
    /// One of `LiveRequest::PLANNED` ... for the request `done` names.
    pub result: u32,
    /// Zero.
    pub reserved: u32,
}

impl LiveRequest {
    /// `kind`: cancel the task's pending live fault.
    pub const CANCEL: u32 = 0;
    /// `result`: planned for the task's next message.
    pub const PLANNED: u32 = 1;
    /// `result`: the pending one was cancelled.
    pub const CANCELLED: u32 = 2;
    /// `result`: nothing was pending to cancel.
    pub const NOTHING_PENDING: u32 = 3;
    /// `result`: the task's plan has no room.
    pub const FULL: u32 = 4;
    /// `result`: no such task, or not a server.
    pub const NO_TASK: u32 = 5;
    /// `result`: not a kind a live fault can be.
    pub const BAD_KIND: u32 = 6;
}

/// The whole monitor page's used part.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MonitorPage {
    /// [`MONITOR_MAGIC`].
    pub magic: u64,
    /// [`MONITOR_VERSION`].
    pub version: u32,
    /// `FLAG_*` bits set by the VMM before boot.
    pub flags: u32,
    /// The last fault.
    pub fault: FaultRecord,
    /// The workload's report.
    pub report: WorkloadReport,
    /// The last fault's context.
    pub crash: CrashContext,
    /// The VMM's answer to the last fault.
    pub verdict: Verdict,
    /// Faults to inject (read by the kernel at boot).
    pub plan: [FaultPlan; MAX_PLANNED_FAULTS],
    /// The guest TSC just before a restarted task's first instruction (RESTARTED).
    pub restart_tsc: u64,
    /// The last fault's recovery window (what the crashed server sent since its boundary).
    pub window: SentWindow,
    /// Per task: the low 16 bits of the number of its boundary waiting for a snapshot (read
    /// by the VMM for the tasks a SNAPSHOTS call or `pending_snapshots` names).
    pub snapshot_seq: [u16; crate::manifest::MAX_SERVERS],
    /// With a FAULT: the tasks (bit i: task i) whose boundary waits for a snapshot; the VMM
    /// takes those snapshots before it handles the fault.
    pub pending_snapshots: u32,
    /// Zero.
    pub reserved: u32,
    /// Per task: bit `l` set when a boundary that closes a request with label `l` needs no
    /// snapshot (the VMM trusts that request not to change the task's state). Written by the
    /// VMM before boot and during any exit; read by the kernel at every boundary. A label the
    /// VMM has not set here is snapshotted.
    pub read_only: [u64; crate::manifest::MAX_SERVERS],
    /// Per task, beside `snapshot_seq`: the label of the request the pending boundary closed
    /// (0: none, e.g. the first receive), so that the VMM can check what the request's
    /// declaration says against what the snapshot finds written.
    pub snapshot_label: [u16; crate::manifest::MAX_SERVERS],
    /// The last INJECT hypercall's record.
    pub inject: InjectRecord,
    /// The single-stepping of a task toward an injected instruction.
    pub step: StepRecord,
    /// A fault planned while the VM runs.
    pub live: LiveRequest,
    /// Per task: the messages it has received, as of the kernel's last timer tick (read by the
    /// VMM while the VM runs; guest-written: a display figure, never trusted for anything).
    pub messages: [u64; crate::manifest::MAX_SERVERS],
    /// Per server task: the figures its clients published so far (`PROGRESS` calls, summed by
    /// the kernel): requests, errors, retries, lost, mismatches. Guest-written, as `messages`.
    pub progress: [WorkloadReport; crate::manifest::MAX_SERVERS],
}

impl MonitorPage {
    /// True when magic and version match this contract.
    pub fn is_valid(&self) -> bool {
        self.magic == MONITOR_MAGIC && self.version == MONITOR_VERSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_table() {
        assert_eq!(core::mem::offset_of!(MonitorPage, fault), 16);
        assert_eq!(core::mem::size_of::<FaultRecord>(), 64);
        assert_eq!(core::mem::offset_of!(MonitorPage, report), 80);
        assert_eq!(core::mem::offset_of!(MonitorPage, crash), 120);
        assert_eq!(core::mem::offset_of!(MonitorPage, verdict), 160);
        assert_eq!(core::mem::offset_of!(MonitorPage, plan), 176);
        assert_eq!(core::mem::offset_of!(MonitorPage, restart_tsc), 560);
        assert_eq!(core::mem::offset_of!(MonitorPage, window), 568);
        assert_eq!(core::mem::size_of::<SentWindow>(), 200);
        assert_eq!(core::mem::offset_of!(MonitorPage, snapshot_seq), 768);
        assert_eq!(core::mem::offset_of!(MonitorPage, pending_snapshots), 800);
        assert_eq!(core::mem::offset_of!(MonitorPage, read_only), 808);
        assert_eq!(core::mem::offset_of!(MonitorPage, snapshot_label), 936);
        assert_eq!(core::mem::offset_of!(MonitorPage, inject), 968);
        assert_eq!(core::mem::size_of::<InjectRecord>(), 184);
        assert_eq!(core::mem::offset_of!(MonitorPage, step), 1152);
        assert_eq!(core::mem::offset_of!(MonitorPage, live), 1176);
        assert_eq!(core::mem::size_of::<LiveRequest>(), 32);
        assert_eq!(core::mem::offset_of!(MonitorPage, messages), 1208);
        assert_eq!(core::mem::offset_of!(MonitorPage, progress), 1336);
        assert_eq!(core::mem::size_of::<MonitorPage>(), 1976);
        assert_eq!(InjectRegs::NAMES[InjectRegs::PAYLOAD[0]], "rsi");
        assert!(core::mem::size_of::<MonitorPage>() <= crate::layout::PAGE_SIZE as usize);
    }

    #[test]
    fn causes_round_trip_and_map_exceptions() {
        for n in 1..=10 {
            let cause = FaultCause::from_number(n).expect("defined");
            assert_eq!(cause as u32, n);
            assert!(!cause.name().is_empty());
        }
        assert_eq!(FaultCause::from_number(0), None);
        assert_eq!(
            FaultCause::from_exception(14, true),
            FaultCause::StackOverflow
        );
        assert_eq!(FaultCause::from_exception(14, false), FaultCause::PageFault);
        assert_eq!(
            FaultCause::from_exception(0, false),
            FaultCause::DivideError
        );
        assert_eq!(
            FaultCause::from_exception(17, false),
            FaultCause::OtherException
        );
    }

    #[test]
    fn verdicts_answer_only_their_fault() {
        let v = Verdict {
            fault_seq: 7,
            action: VerdictAction::Replay as u32,
            delay_ticks: 0,
        };
        assert_eq!(v.action_for(7), VerdictAction::Replay);
        assert_eq!(v.action_for(8), VerdictAction::Stop, "an old verdict");
        let garbage = Verdict {
            fault_seq: 7,
            action: 99,
            delay_ticks: 0,
        };
        assert_eq!(garbage.action_for(7), VerdictAction::Stop);
        for n in 0..4 {
            assert_eq!(VerdictAction::from_number(n).map(|a| a as u32), Some(n));
        }
        let c = CrashContext {
            caller: NO_CALLER,
            ..Default::default()
        };
        assert_eq!(c.caller(), None);
    }

    #[test]
    fn a_window_lists_at_most_its_capacity() {
        let mut w = SentWindow::default();
        assert!(w.listed().is_empty() && !w.overflowed());
        w.count = 3;
        assert_eq!(w.listed().len(), 3);
        w.count = u32::MAX;
        assert_eq!(w.listed().len(), WINDOW_MAX);
        assert!(w.overflowed());
    }
}
