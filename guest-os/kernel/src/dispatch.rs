//! Between the trap path and the kernel's logic: decode the trap, call the kernel, carry out its
//! effect (console, hypercalls), switch to the task it picks (CR3, RSP0, FPU state) or idle.

use crate::arch::x86_64::{apic, cpu, gdt, idt, trap};
use abi::hypercall::Hypercall;
use abi::monitor::{FaultCause, FaultRecord, MonitorPage};
use bare::{hypercall, serial};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::task::{SAVED_REGS_SIZE, SavedRegs};
use kernel::umem::CheckedSlice;
use kernel::{Effect, Kernel, TaskSetup};
use sysmap::TASKS;

/// The VM's exit status when the kernel itself fails.
pub const KERNEL_FAULT_STATUS: u64 = 62;
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

static KERNEL: KernelOnly<Kernel<NTASKS>> = KernelOnly(UnsafeCell::new(Kernel::new()));
static MACHINE: KernelOnly<Machine> = KernelOnly(UnsafeCell::new(Machine {
    fx: [cpu::FxArea::ZERO; NTASKS],
    roots: [0; NTASKS],
    fpu_owner: usize::MAX,
    loaded_root: 0,
}));
/// Timer ticks taken in the idle loop, not yet given to the kernel.
static PENDING_TICKS: AtomicU64 = AtomicU64::new(0);

fn kernel() -> &'static mut Kernel<NTASKS> {
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
pub fn from_user(regs: *mut SavedRegs) -> *mut SavedRegs {
    let k = kernel();
    let Some(current) = k.current else {
        // Only a running task can trap from ring 3.
        fatal(b"trap from ring 3 with no current task", 0, 0);
    };
    // SAFETY: `regs` is the frame the entry just completed: the current task's record, or for
    // the IST vectors (NMI, #DF) a frame on their own stack.
    let (vector, rip) = unsafe { ((*regs).vector, (*regs).rip) };
    match vector {
        // An NMI (none is expected): resume the task from the IST frame, untouched.
        2 => return regs,
        // A double fault means the kernel's own trap delivery failed.
        8 => fatal(b"double fault", vector, rip),
        _ => {}
    }
    let text_base = k.tasks[current].regions.text.base;
    let (effect, rotate) = match vector as u8 {
        idt::SYSCALL_VECTOR | idt::INT80_VECTOR => (k.syscall(), false),
        6 if rip == text_base + UD2_STUB_OFFSET => {
            k.tasks[current].regs.rip += 2;
            (k.syscall(), false)
        }
        idt::TIMER_VECTOR => {
            apic::eoi();
            k.tick(true)
        }
        idt::SPURIOUS_VECTOR => (Effect::None, false),
        v if v < 32 => {
            let cr2 = if v == 14 { cpu::cr2() } else { 0 };
            let guard = sysmap::guard(current);
            let error = k.tasks[current].regs.error;
            (
                k.exception(u64::from(v), error, cr2, guard.contains(cr2)),
                false,
            )
        }
        _ => (Effect::None, false),
    };
    if effect != Effect::None {
        perform(k, effect);
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
fn idle(k: &mut Kernel<NTASKS>) -> usize {
    loop {
        cpu::wait_for_interrupt();
        let ticks = PENDING_TICKS.swap(0, Ordering::Relaxed);
        for _ in 0..ticks {
            let (effect, _) = k.tick(false);
            perform(k, effect);
        }
        if let Some(next) = k.schedule(false) {
            return next;
        }
    }
}

/// Makes `next` the running task: its address space, its FPU state, its RSP0; returns its
/// record for `trap_restore`.
fn switch_to(k: &mut Kernel<NTASKS>, next: usize) -> *mut SavedRegs {
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
    regs
}

fn perform(k: &Kernel<NTASKS>, effect: Effect) {
    match effect {
        Effect::None => {}
        Effect::Console(text) => serial::write(user_bytes(text)),
        Effect::Fault(text) => fault(&k.last_fault, text),
        Effect::Report => {
            monitor_page_write(|page| page.report = k.report);
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

fn monitor_page_write(f: impl FnOnce(&mut MonitorPage)) {
    // SAFETY: the monitor page is mapped supervisor-only in every space and only the kernel
    // writes it; the VMM reads it only during the hypercall that follows.
    f(unsafe { &mut *(sysmap::MONITOR_PAGE as *mut MonitorPage) });
}

/// Tells the console and the VMM that a task stopped.
fn fault(record: &FaultRecord, text: Option<CheckedSlice>) {
    let name = TASKS.get(record.task as usize).map_or("?", |t| t.name);
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
    monitor_page_write(|page| page.fault = *record);
    hypercall::call(Hypercall::Fault as u32, [0; 4]);
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
