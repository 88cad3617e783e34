//! Between the trap path and the kernel's logic: decode the trap, call the kernel, carry out its
//! effect (console, hypercalls), switch to the task it picks (CR3, RSP0, FPU state) or idle.
//!
//! Recovery, on the machine side: a server's boundary is noted as a pending snapshot, which one
//! SNAPSHOTS hypercall hands the VMM (with every other one pending) just before the kernel
//! returns to that server, or a FAULT hands over before the VMM decides; a fault becomes a FAULT
//! hypercall whose verdict, written by the VMM into the monitor page during the call, the kernel
//! then carries out ([`Kernel::recover`]); a restarted task's first instruction is announced by a
//! RESTARTED hypercall carrying the TSC (the VMM measures recovery latency from the fault
//! record's `entry_tsc`).

use crate::arch::x86_64::{apic, cpu, gdt, idt, trap};
use abi::fault::FaultCause;
use abi::hypercall::{Hypercall, call_word};
use abi::monitor::{FLAG_RECOVERY, FLAG_SNAPSHOTS, FaultRecord, MonitorPage, VerdictAction};
use bare::{hypercall, serial};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::task::{SAVED_REGS_SIZE, SavedRegs};
use kernel::umem::CheckedSlice;
use kernel::{Effect, Kernel, Platform, TaskSetup};
use sysmap::TASKS;

/// The VM's exit status when the kernel itself fails.
pub const KERNEL_FAULT_STATUS: u64 = 62;
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
    /// The monitor page's flags (`FLAG_*`), as the VMM set them before boot.
    flags: u32,
    /// Servers (bit i: task i) that passed a boundary the VMM has not snapshotted yet.
    pending_snapshots: u32,
}

/// State only the kernel, on its one CPU with interrupts masked, ever touches.
struct KernelOnly<T>(UnsafeCell<T>);

// SAFETY: one CPU; the kernel runs with interrupts masked and is never re-entered (the ring-0
// interrupt path, `from_kernel`, touches only `PENDING_TICKS`), so accesses never overlap.
unsafe impl<T> Sync for KernelOnly<T> {}

impl<T> KernelOnly<T> {
    /// The value. Callers keep the reference within one kernel entry and never hold two.
    #[allow(clippy::mut_from_ref)]
    fn get(&self) -> &mut T {
        // SAFETY: see the `Sync` impl: no other reference is live while the kernel runs.
        unsafe { &mut *self.0.get() }
    }
}

/// The kernel, as this machine runs it.
type TheKernel = Kernel<NTASKS, MachinePlatform>;

static KERNEL: KernelOnly<TheKernel> = KernelOnly(UnsafeCell::new(Kernel::on(MachinePlatform)));
static MACHINE: KernelOnly<Machine> = KernelOnly(UnsafeCell::new(Machine {
    fx: [cpu::FxArea::ZERO; NTASKS],
    roots: [0; NTASKS],
    fpu_owner: usize::MAX,
    loaded_root: 0,
    flags: 0,
    pending_snapshots: 0,
}));
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

/// Sets the monitor page's flags (boot only).
pub fn set_flags(flags: u32) {
    MACHINE.get().flags = flags;
}

/// Plans `fault` for task `task` (boot only); false when the task does not exist or its plan
/// is full.
pub fn plan_fault(task: usize, fault: kernel::task::PlannedFault) -> bool {
    let k = kernel();
    task < k.count && k.tasks[task].plan_fault(fault)
}

/// The machine under the kernel: task memory read through the current task's mapped address
/// space; the fault record kept in the monitor page, where the VMM reads it. Not `Copy`: the
/// kernel's one value is the only way to the record.
#[derive(Debug)]
struct MachinePlatform;

impl Platform for MachinePlatform {
    #[inline(always)]
    fn read_u64(&self, addr: u64) -> u64 {
        // SAFETY: `addr` was checked at declaration to be an aligned `u64` inside the task's
        // state arena, which is mapped in its address space, the one loaded while it runs a
        // system call.
        unsafe { (addr as *const u64).read_volatile() }
    }

    #[inline(always)]
    fn read_only(&self, task: usize) -> u64 {
        if task >= abi::manifest::MAX_SERVERS {
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

/// Enters the first task.
pub fn start() -> ! {
    let k = kernel();
    let Some(first) = k.schedule(false) else {
        serial::line(b"kernel: no task to run");
        hypercall::exit(KERNEL_FAULT_STATUS)
    };
    trap::enter_user(switch_to(k, first))
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
            k.tick(true)
        }
        // An NMI (none is expected): resume the task from the IST frame, untouched.
        2 => return regs,
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

/// Waits for a task to become ready: halts until timer ticks arrive and hands them to the
/// kernel (timers may wake a task).
fn idle(k: &mut TheKernel) -> usize {
    loop {
        cpu::wait_for_interrupt();
        let ticks = PENDING_TICKS.swap(0, Ordering::Relaxed);
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
    let m = MACHINE.get();
    if m.pending_snapshots & (1 << next) != 0 {
        let mask = m.pending_snapshots as u16;
        m.pending_snapshots = 0;
        hypercall::recovery_call(call_word(Hypercall::Snapshots, 0, mask));
    }
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
    if k.tasks[next].restarted {
        k.tasks[next].restarted = false;
        let tsc = cpu::rdtsc();
        monitor_page_mut().restart_tsc = tsc;
        hypercall::recovery_call(call_word(Hypercall::Restarted, next as u8, 0));
    }
    regs
}

/// Carries out `effect` of a kernel entry made at guest TSC `entry_tsc`.
#[inline(always)]
fn perform(k: &mut TheKernel, effect: Effect, entry_tsc: u64) {
    match effect {
        Effect::None => {}
        Effect::Console(text) => serial::write(user_bytes(text)),
        // The snapshot waits until the server is about to run again (or a fault is reported):
        // until then its state cannot change, and one exit then covers every server pending
        // (on KVM-PVM the exit, ~35 us, is most of what a snapshot costs). The reply released
        // meanwhile is covered all the same: no crash is handled before the snapshot is taken.
        Effect::Boundary { task: t, label } => {
            let m = MACHINE.get();
            if m.flags & FLAG_SNAPSHOTS != 0 {
                let page = monitor_page_mut();
                // Every task has a slot: TASKS.len() <= MAX_SERVERS is checked at build time.
                let (Some(seq), Some(closed)) =
                    (page.snapshot_seq.get_mut(t), page.snapshot_label.get_mut(t))
                else {
                    fatal(
                        b"boundary of a task past the monitor page's slots",
                        t as u64,
                        0,
                    );
                };
                *seq = k.tasks[t].snapshots as u16;
                *closed = label;
                m.pending_snapshots |= 1 << t;
            }
        }
        Effect::Fault(text) => fault(k, text, entry_tsc),
        Effect::Report => {
            monitor_page_mut().report = k.report;
            hypercall::call(Hypercall::Report as u32, [0; 4]);
        }
        Effect::Exit(status) => hypercall::exit(u64::from(status)),
    }
}

/// The bytes of a checked slice of the current task (its space is the loaded one).
fn user_bytes(text: CheckedSlice) -> &'static [u8] {
    // SAFETY: `CheckedSlice` lies inside the current task's mapped regions, and the current
    // task's address space is loaded (effects run before any switch).
    unsafe { core::slice::from_raw_parts(text.addr as *const u8, text.len as usize) }
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

/// Tells the VMM that a task stopped (the kernel entered at guest TSC `entry_tsc`) and carries
/// out its verdict; a task left stopped is also announced on the console (a recovered one is
/// not: the VMM reports it, and console output from ring 0 costs an exit per byte).
///
/// This is the recovery path, and every instruction of it is emulated on KVM-PVM: the record
/// (by [`Kernel::crash`]), context and window are written straight into the monitor page,
/// nothing is kept on the stack across the hypercall.
#[inline(always)]
fn fault(k: &mut TheKernel, text: Option<CheckedSlice>, entry_tsc: u64) {
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
    // SAFETY: as above.
    unsafe { (*page).pending_snapshots = MACHINE.get().pending_snapshots };
    hypercall::recovery_call(call_word(Hypercall::Fault, t as u8, 0));
    MACHINE.get().pending_snapshots = 0;
    let (action, delay) = if MACHINE.get().flags & FLAG_RECOVERY != 0 {
        // SAFETY: as in `monitor_page_mut`; the VMM wrote the verdict during the hypercall.
        let verdict = unsafe { (&raw const (*monitor_page()).verdict).read_volatile() };
        (verdict.action_for(k.faults), u64::from(verdict.delay_ticks))
    } else {
        (VerdictAction::Stop, 0)
    };
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
