//! Between the trap path and the kernel's logic, one job: decode the trap, call the kernel,
//! carry out its effect (console, the monitor protocol: [`crate::monitor`]), switch to the task
//! it picks (CR3, RSP0, FPU state) or idle.

use crate::arch::x86_64::{apic, cpu, gdt, idt};
use crate::kernel_only::KernelOnly;
use crate::monitor::{self, MachinePlatform};
use abi::fault::FaultCause;
use abi::monitor::VerdictAction;
use bare::{hypercall, serial};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::task::{SAVED_REGS_SIZE, SavedRegs};
use kernel::umem::CheckedSlice;
use kernel::{Effect, Kernel, TaskSetup};
use sysmap::TASKS;

/// The VM's exit status when the kernel itself fails.
pub const KERNEL_FAULT_STATUS: u64 = abi::status::KERNEL_FAULT as u64;
/// The VM's exit status when the guest command line has a token the kernel does not accept
/// ([`kernel::bootargs`]).
pub const BAD_CMDLINE_STATUS: u64 = 2;
/// Offset of the `ud2` system-call stub in a task's text area (measured alternative trap).
pub const UD2_STUB_OFFSET: u64 = 16;
const NTASKS: usize = TASKS.len();

/// The machine side of the tasks: FPU areas, address-space roots, what is loaded.
struct Machine {
    fx: [cpu::FxArea; NTASKS],
    roots: [u64; NTASKS],
    /// The task whose FPU/SSE state is in the registers.
    fpu_owner: usize,
    /// The loaded CR3.
    loaded_root: u64,
}

/// The kernel, as this machine runs it.
type TheKernel = Kernel<NTASKS, MachinePlatform>;

static KERNEL: KernelOnly<TheKernel> = KernelOnly::new(Kernel::on(MachinePlatform));
static MACHINE: KernelOnly<Machine> = KernelOnly::new(Machine {
    fx: [cpu::FxArea::ZERO; NTASKS],
    roots: [0; NTASKS],
    fpu_owner: usize::MAX,
    loaded_root: 0,
});
/// Timer ticks taken in the idle loop, not yet given to the kernel.
static PENDING_TICKS: AtomicU64 = AtomicU64::new(0);

fn kernel() -> &'static mut TheKernel {
    KERNEL.get()
}

/// Adds a task with address space `root` (boot only).
pub fn add_task(setup: &TaskSetup, root: u64) {
    let k = kernel();
    let Some(index) = k.add_task(setup) else {
        serial::line(b"kernel: too many tasks");
        hypercall::exit(KERNEL_FAULT_STATUS)
    };
    let m = MACHINE.get();
    m.roots[index] = root;
    m.fx[index].init();
}

/// Plans `fault` for task `task` (boot only); false when the task does not exist or its plan
/// is full.
pub fn plan_fault(task: usize, fault: kernel::task::PlannedFault) -> bool {
    let k = kernel();
    task < k.count && k.tasks[task].plan_fault(fault)
}

/// Plans `fault` for the kernel itself (boot only); false when one is planned already.
pub fn plan_kernel_fault(fault: kernel::task::PlannedFault) -> bool {
    kernel().plan_kernel_fault(fault)
}

/// Enters the first task.
pub fn start() -> ! {
    let k = kernel();
    let Some(first) = k.schedule(false) else {
        serial::line(b"kernel: no task to run");
        hypercall::exit(KERNEL_FAULT_STATUS)
    };
    cpu::enter_user(switch_to(k, first))
}

/// A trap from ring 3 (`regs` is the current task's record).
#[inline(always)]
pub fn from_user(regs: *mut SavedRegs) -> *mut SavedRegs {
    // The start of a fault's recovery latency (one `rdtsc` per trap).
    let entry_tsc = cpu::rdtsc();
    let k = kernel();
    let Some(current) = k.current else {
        // Only a running task can trap from ring 3.
        fatal(b"trap from ring 3 with no current task", 0, 0);
    };
    // SAFETY: `regs` is the frame the entry just completed: the current task's record, or for
    // the IST vectors (NMI, #DF) a frame on their own stack.
    let (vector, rip) = unsafe { ((*regs).vector, (*regs).rip) };
    let (effect, rotate) = match vector as u8 {
        idt::SYSCALL_VECTOR | idt::INT80_VECTOR => (k.syscall(), false),
        idt::TIMER_VECTOR => {
            apic::eoi();
            take_live_request(k);
            k.tick(true)
        }
        // An NMI (none is expected): resume the task from the IST frame, untouched.
        2 => return regs,
        // A single step toward an injected instruction: the task goes on.
        1 if k.single_step(current) => return regs,
        // A double fault means the kernel's own trap delivery failed.
        8 => fatal(b"double fault", vector, rip),
        6 if rip == k.tasks[current].regions.text.base + UD2_STUB_OFFSET => {
            k.tasks[current].regs.rip += 2;
            (k.syscall(), false)
        }
        v if v < 32 => {
            // The task's own fault: straight to the VMM and back (the recovery path).
            let cr2 = if v == 14 { cpu::cr2() } else { 0 };
            let guard_hit = sysmap::guard(current).contains(cr2);
            let error = k.tasks[current].regs.error;
            k.crash_on_exception(current, u64::from(v), error, cr2, guard_hit);
            fault(k, None, entry_tsc);
            (Effect::None, false)
        }
        idt::SPURIOUS_VECTOR => (Effect::None, false),
        _ => (Effect::None, false),
    };
    if effect != Effect::None {
        perform(k, effect, entry_tsc);
    }
    let next = match k.schedule(rotate) {
        Some(next) => next,
        None => idle(k),
    };
    switch_to(k, next)
}

/// An interrupt or exception in ring 0: timer ticks in the idle loop are counted; anything
/// else is a kernel bug and stops the VM.
pub fn from_kernel(regs: *mut SavedRegs) {
    // SAFETY: `regs` is the frame the entry pushed on the interrupted kernel stack.
    let (vector, rip) = unsafe { ((*regs).vector, (*regs).rip) };
    match vector as u8 {
        idt::TIMER_VECTOR => {
            PENDING_TICKS.fetch_add(1, Ordering::Relaxed);
            apic::eoi();
        }
        idt::SPURIOUS_VECTOR => {}
        _ => fatal(b"kernel fault", vector, rip),
    }
}

/// A live fault the VMM posted since the last tick, planned (or cancelled) now: one load
/// a tick when there is none. The tasks' message counts are published with it.
#[inline(always)]
fn take_live_request(k: &mut TheKernel) {
    monitor::publish_messages(k);
    if let Some((seq, task, kind)) = monitor::live_request() {
        let result = k.live_request(task as usize, kind);
        monitor::live_done(seq, result);
    }
}

/// Waits for a task to become ready: halts until timer ticks arrive and hands them to the
/// kernel (timers may wake a task).
fn idle(k: &mut TheKernel) -> usize {
    loop {
        cpu::wait_for_interrupt();
        let ticks = PENDING_TICKS.swap(0, Ordering::Relaxed);
        if ticks > 0 {
            take_live_request(k);
        }
        for _ in 0..ticks {
            let (effect, _) = k.tick(false);
            perform(k, effect, cpu::rdtsc());
        }
        if let Some(next) = k.schedule(false) {
            return next;
        }
    }
}

/// Makes `next` the running task: its address space, its FPU state, its RSP0; returns its
/// record for `trap_restore`. A server with a boundary not yet snapshotted gets its snapshot
/// first, with every other one pending, in one SNAPSHOTS hypercall (see [`perform`]).
#[inline(always)]
fn switch_to(k: &mut TheKernel, next: usize) -> *mut SavedRegs {
    monitor::take_snapshots_before(next);
    let m = MACHINE.get();
    if m.fpu_owner != next {
        if let Some(area) = m.fx.get_mut(m.fpu_owner) {
            cpu::fxsave(area);
        }
        cpu::fxrstor(&m.fx[next]);
        m.fpu_owner = next;
    }
    let root = m.roots[next];
    if m.loaded_root != root {
        // SAFETY: every task space maps the kernel image exactly as the boot tables do.
        unsafe { cpu::write_cr3(root) };
        m.loaded_root = root;
    }
    let regs = &raw mut k.tasks[next].regs;
    gdt::set_rsp0(regs as u64 + SAVED_REGS_SIZE as u64);
    if k.tasks[next].take_restarted() {
        monitor::announce_restart(next);
    }
    regs
}

/// Carries out `effect` of a kernel entry made at guest TSC `entry_tsc`.
#[inline(always)]
fn perform(k: &mut TheKernel, effect: Effect, entry_tsc: u64) {
    match effect {
        Effect::None => {}
        Effect::Console(text) => serial::write(user_bytes(text)),
        Effect::Boundary { task: t, label } => {
            if monitor::note_snapshot(t, k.tasks[t].snapshots, label).is_err() {
                fatal(
                    b"boundary of a task past the monitor page's slots",
                    t as u64,
                    0,
                );
            }
        }
        Effect::Fault(text) => fault(k, text, entry_tsc),
        Effect::Report => monitor::report_workload(k.report),
        Effect::Progress(t) => monitor::publish_progress(t, k.progress[t]),
        Effect::Exit(status) => hypercall::exit(u64::from(status)),
    }
}

/// The bytes of a checked slice of the current task (its space is the loaded one).
fn user_bytes(text: CheckedSlice) -> &'static [u8] {
    // SAFETY: `CheckedSlice` lies inside the current task's mapped regions, and the current
    // task's address space is loaded (effects run before any switch).
    unsafe { core::slice::from_raw_parts(text.addr as *const u8, text.len as usize) }
}

/// A task stopped (the kernel entered at guest TSC `entry_tsc`): the VMM is told
/// ([`monitor::report_fault`]) and its verdict carried out; a task left stopped is also
/// announced on the console (a recovered one is not: the VMM reports it, and console output from
/// ring 0 costs an exit per byte).
#[inline(always)]
fn fault(k: &mut TheKernel, text: Option<CheckedSlice>, entry_tsc: u64) {
    let (t, action, delay) = monitor::report_fault(k, text, entry_tsc);
    k.recover(t, action, delay);
    if action != VerdictAction::Stop {
        reset_fpu(t);
        return;
    }
    announce_stopped(k, t, text);
}

/// Prints why task `t` stays stopped (a kernel line: rare, and each byte is an exit).
#[cold]
fn announce_stopped(k: &TheKernel, t: usize, text: Option<CheckedSlice>) {
    let record = k.last_fault();
    let name = TASKS.get(t).map_or("?", |d| d.name);
    serial::write(b"kernel: task ");
    serial::write(name.as_bytes());
    serial::write(b" stopped: ");
    serial::write(
        FaultCause::from_number(record.cause)
            .map_or("?", |c| c.name())
            .as_bytes(),
    );
    serial::write(b" rip ");
    serial::write_hex(record.rip);
    if let Some(text) = text {
        serial::write(b": ");
        serial::write(user_bytes(text));
    }
    serial::line(b"");
}

/// The FPU/SSE state of a fresh task, loaded by one FXRSTOR when a task restarts.
static INITIAL_FX: cpu::FxArea = cpu::FxArea::INITIAL;

/// A restarted task starts with the FPU/SSE state of a fresh task, as at boot: the registers
/// are loaded from [`INITIAL_FX`] and the task becomes their owner (its old values are dropped;
/// another owner's are saved first). Ring 0 is emulated under KVM-PVM, where rewriting a 512-byte
/// area costs some 250 us; one FXRSTOR costs a fraction of that, and the crashed task is
/// nearly always the owner already (it was running).
fn reset_fpu(t: usize) {
    let m = MACHINE.get();
    if t >= m.fx.len() {
        return;
    }
    if m.fpu_owner != t
        && let Some(area) = m.fx.get_mut(m.fpu_owner)
    {
        cpu::fxsave(area);
    }
    cpu::fxrstor(&INITIAL_FX);
    m.fpu_owner = t;
}

/// Reports a kernel bug and stops the VM.
fn fatal(what: &[u8], vector: u64, rip: u64) -> ! {
    serial::write(b"kernel: ");
    serial::write(what);
    serial::write(b": vector ");
    serial::write_dec(vector);
    serial::write(b" rip ");
    serial::write_hex(rip);
    serial::write(b" cr2 ");
    serial::write_hex(cpu::cr2());
    serial::line(b"");
    hypercall::exit(KERNEL_FAULT_STATUS)
}
