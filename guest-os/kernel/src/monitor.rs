//! The kernel's side of the monitor protocol ([`abi::monitor`], [`abi::hypercall`]): what it
//! writes into the monitor page and the recovery hypercalls it makes.
//!
//! A server's boundary is noted as a pending snapshot, which one SNAPSHOTS hypercall hands the
//! VMM (with every other one pending) just before the kernel returns to that server, or a FAULT
//! hands over before the VMM decides; a fault becomes a FAULT hypercall whose verdict, written
//! by the VMM into the monitor page during the call, the kernel then carries out
//! ([`kernel::Kernel::recover`]); a restarted task's first instruction is announced by a
//! RESTARTED hypercall carrying the TSC (the VMM measures recovery latency from the fault
//! record's `entry_tsc`). The fault record itself is written in place by the kernel, through
//! [`MachinePlatform`].

use crate::arch::x86_64::cpu;
use crate::kernel_only::KernelOnly;
use abi::hypercall::{Hypercall, call_word};
use abi::manifest::MAX_SERVERS;
use abi::monitor::{
    FLAG_RECOVERY, FLAG_SNAPSHOTS, FaultRecord, InjectRegs, KERNEL_TARGET, MonitorPage, StepRecord,
    VerdictAction, WorkloadReport,
};
use bare::hypercall;
use kernel::kernel::InjectReply;
use kernel::task::SavedRegs;
use kernel::umem::CheckedSlice;
use kernel::{Kernel, Platform};

/// The protocol's state on the kernel's side.
struct Protocol {
    /// The monitor page's flags (`FLAG_*`), as the VMM set them before boot.
    flags: u32,
    /// Servers (bit i: task i) that passed a boundary the VMM has not snapshotted yet.
    pending: u32,
}

static PROTOCOL: KernelOnly<Protocol> = KernelOnly::new(Protocol {
    flags: 0,
    pending: 0,
});

/// Sets the monitor page's flags (boot only).
pub fn set_flags(flags: u32) {
    PROTOCOL.get().flags = flags;
}

fn monitor_page() -> *mut MonitorPage {
    sysmap::MONITOR_PAGE as *mut MonitorPage
}

/// The monitor page, for a write the kernel makes before its next hypercall.
#[inline(always)]
fn monitor_page_mut() -> &'static mut MonitorPage {
    // SAFETY: the monitor page is mapped supervisor-only in every space; the VMM reads and
    // writes it only during a hypercall, when the kernel holds no reference to it (callers keep
    // the reference within one kernel entry and never hold two).
    unsafe { &mut *monitor_page() }
}

/// A live fault request the VMM posted and the kernel has not handled: `(seq, task, kind)`.
/// The VMM writes the `live` area while the VM runs (the one part of the page it writes
/// outside a hypercall): `task` and `kind` first, then `seq`; read here in that order's
/// reverse, with volatile loads (x86 keeps loads in order).
#[inline(always)]
pub fn live_request() -> Option<(u64, u32, u32)> {
    let page = monitor_page();
    // SAFETY: volatile reads of plain fields of the mapped monitor page; no reference is made,
    // so the VMM's concurrent writes to them are not aliased by one.
    unsafe {
        let seq = (&raw const (*page).live.seq).read_volatile();
        if seq == (&raw const (*page).live.done).read_volatile() {
            return None;
        }
        let task = (&raw const (*page).live.task).read_volatile();
        let kind = (&raw const (*page).live.kind).read_volatile();
        Some((seq, task, kind))
    }
}

/// The live request `seq` is handled, with `result` (`LiveRequest::PLANNED` ...).
#[inline(always)]
pub fn live_done(seq: u64, result: u32) {
    let page = monitor_page();
    // SAFETY: volatile writes of plain fields of the mapped monitor page; `done` last, so the
    // VMM that sees it sees the result.
    unsafe {
        (&raw mut (*page).live.result).write_volatile(result);
        (&raw mut (*page).live.done).write_volatile(seq);
    }
}

/// Publishes server `task`'s progress (its clients' figures so far) for the VMM, which reads
/// it while the VM runs.
#[inline(always)]
pub fn publish_progress(task: usize, figures: WorkloadReport) {
    let page = monitor_page();
    if task < MAX_SERVERS {
        // SAFETY: a volatile write of a plain field of the mapped monitor page, in bounds (checked
        // above); the VMM only reads it.
        unsafe { (&raw mut (*page).progress[task]).write_volatile(figures) };
    }
}

/// Publishes each task's message count for the VMM (at every timer tick: a store per task, so
/// that the message path itself stays as it was).
#[inline(always)]
pub fn publish_messages<const N: usize>(k: &Kernel<N, MachinePlatform>) {
    let page = monitor_page();
    for (t, task) in k.tasks.iter().enumerate().take(k.count.min(MAX_SERVERS)) {
        // SAFETY: as in `publish_progress`; `t` is below MAX_SERVERS.
        unsafe { (&raw mut (*page).messages[t]).write_volatile(task.messages()) };
    }
}

/// Task `task` passed its snapshot number `seq` (low 16 bits), closing request `label`: noted
/// as pending, the snapshot waits until the server is about to run again (or a fault is
/// reported). Until then its state cannot change, and one exit then covers every server
/// pending (on KVM-PVM the exit, ~35 us, is most of what a snapshot costs). The reply released
/// meanwhile is covered all the same: no crash is handled before the snapshot is taken.
/// `Err` for a task past the page's slots (the kernel then stops: a build checks they fit).
#[inline(always)]
pub fn note_snapshot(task: usize, seq: u64, label: u16) -> Result<(), ()> {
    let p = PROTOCOL.get();
    if p.flags & FLAG_SNAPSHOTS == 0 {
        return Ok(());
    }
    let page = monitor_page_mut();
    let (Some(slot), Some(closed)) = (
        page.snapshot_seq.get_mut(task),
        page.snapshot_label.get_mut(task),
    ) else {
        return Err(());
    };
    *slot = seq as u16;
    *closed = label;
    p.pending |= 1 << task;
    Ok(())
}

/// Before task `next` runs: if its snapshot is pending, one SNAPSHOTS hypercall hands the VMM
/// every snapshot pending.
#[inline(always)]
pub fn take_snapshots_before(next: usize) {
    let p = PROTOCOL.get();
    if p.pending & (1 << next) != 0 {
        let mask = p.pending as u16;
        p.pending = 0;
        hypercall::recovery_call(call_word(Hypercall::Snapshots, 0, mask));
    }
}

/// Task `task`, restarted, runs its first instruction next: RESTARTED with the TSC now.
#[inline(always)]
pub fn announce_restart(task: usize) {
    monitor_page_mut().restart_tsc = cpu::rdtsc();
    hypercall::recovery_call(call_word(Hypercall::Restarted, task as u8, 0));
}

/// Hands the workload's figures to the VMM (REPORT).
pub fn report_workload(report: WorkloadReport) {
    monitor_page_mut().report = report;
    hypercall::call(Hypercall::Report as u32, [0; 4]);
}

/// Tells the VMM that a task stopped (its record is the platform's, the kernel entered at guest
/// TSC `entry_tsc`, `text` its panic message) and returns the task and the VMM's verdict on it:
/// the action and its delay in ticks (`Stop` when the VMM does not recover tasks).
///
/// This is the recovery path, and every instruction of it is emulated on KVM-PVM: the record
/// (by [`Kernel::crash`]), context and window are written straight into the monitor page,
/// nothing is kept on the stack across the hypercall.
#[inline(always)]
pub fn report_fault<const N: usize>(
    k: &mut Kernel<N, MachinePlatform>,
    text: Option<CheckedSlice>,
    entry_tsc: u64,
) -> (usize, VerdictAction, u64) {
    k.platform.fault_record_mut().entry_tsc = entry_tsc;
    let t = k.platform.fault_record().task as usize;
    let page = monitor_page();
    // SAFETY: as in `monitor_page_mut`; these are fields the kernel's record accessors never
    // reach (they touch only `fault`), so they alias nothing the calls below use.
    let (crash, window) = unsafe { (&mut (*page).crash, &mut (*page).window) };
    k.write_crash_context(t, text, crash);
    k.fill_window(t, window);
    // The VMM takes the pending snapshots before it decides (the crashed server has none: it
    // was running).
    let p = PROTOCOL.get();
    // SAFETY: as above.
    unsafe { (*page).pending_snapshots = p.pending };
    hypercall::recovery_call(call_word(Hypercall::Fault, t as u8, 0));
    p.pending = 0;
    if p.flags & FLAG_RECOVERY == 0 {
        return (t, VerdictAction::Stop, 0);
    }
    // SAFETY: as in `monitor_page_mut`; the VMM wrote the verdict during the hypercall.
    let verdict = unsafe { (&raw const (*monitor_page()).verdict).read_volatile() };
    (
        t,
        verdict.action_for(k.faults),
        u64::from(verdict.delay_ticks),
    )
}

/// The machine under the kernel: task memory read through the current task's mapped address
/// space; the fault record kept in the monitor page, where the VMM reads it. Not `Copy`: the
/// kernel's one value is the only way to the record.
#[derive(Debug)]
pub struct MachinePlatform;

/// A task's general registers in the order of [`InjectRegs::gpr`].
fn gprs(r: &SavedRegs) -> [u64; 16] {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ]
}

fn set_gprs(r: &mut SavedRegs, g: &[u64; 16]) {
    [
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11, r.r12,
        r.r13, r.r14, r.r15,
    ] = *g;
}

impl Platform for MachinePlatform {
    /// INJECT: the record written, the call made, the VMM's answer read back (a task's
    /// general registers too). A task's pending snapshot is taken first: its boundary state
    /// must not include what the VMM is about to change.
    fn inject(
        &mut self,
        task: u32,
        phase: u32,
        word: u64,
        message: u64,
        regs: Option<&mut SavedRegs>,
    ) -> InjectReply {
        if task != KERNEL_TARGET {
            take_snapshots_before(task as usize);
        }
        let record = &mut monitor_page_mut().inject;
        record.task = task;
        record.phase = phase;
        record.word = word;
        record.message = message;
        record.watch = 0;
        record.budget = 0;
        record.notify_end = 0;
        if let Some(r) = &regs {
            record.regs = InjectRegs {
                gpr: gprs(r),
                rip: r.rip,
                rflags: r.rflags,
            };
        }
        hypercall::recovery_call(call_word(Hypercall::Inject, task as u8, 0));
        // SAFETY: as in `monitor_page_mut`; the VMM wrote its answer during the hypercall.
        let answer = unsafe { (&raw const (*monitor_page()).inject).read_volatile() };
        if let Some(r) = regs {
            set_gprs(r, &answer.regs.gpr);
        }
        InjectReply {
            watch: answer.watch,
            budget: answer.budget,
            notify_end: answer.notify_end != 0,
        }
    }

    fn step_outcome(&mut self, step: StepRecord) {
        monitor_page_mut().step = step;
    }

    #[inline(always)]
    fn read_u64(&self, addr: u64) -> u64 {
        // SAFETY: `addr` was checked at declaration to be an aligned `u64` inside the task's
        // state arena, which is mapped in its address space, the one loaded while it runs a
        // system call.
        unsafe { (addr as *const u64).read_volatile() }
    }

    #[inline(always)]
    fn read_only(&self, task: usize) -> u64 {
        if task >= MAX_SERVERS {
            return 0;
        }
        // SAFETY: as in `monitor_page_mut`; `task` is in bounds. The VMM writes the masks only
        // during an exit: read afresh at each boundary (volatile, one word).
        unsafe { (&raw const (*monitor_page()).read_only[task]).read_volatile() }
    }

    #[inline(always)]
    fn fault_record(&self) -> &FaultRecord {
        // SAFETY: as in `monitor_page_mut`.
        unsafe { &(*monitor_page()).fault }
    }

    #[inline(always)]
    fn fault_record_mut(&mut self) -> &mut FaultRecord {
        &mut monitor_page_mut().fault
    }
}
