//! The vCPU thread: runs `KVM_RUN` in a loop, hands exits to the [`Bus`], and stops promptly
//! when asked from another thread.
//!
//! Stopping a vCPU that may be inside `KVM_RUN` (or just about to enter it) without a race: the
//! controller sets the stop flag, then sends [`kick_signal`] to the vCPU thread. The signal's
//! handler sets `kvm_run.immediate_exit`, so `KVM_RUN` returns `EINTR` at once whether the signal
//! arrived before entry (KVM checks the flag on entry) or during guest execution (the signal
//! forces an exit). The loop then sees the flag and returns [`Stop::Kicked`].

use crate::devices::bus::{Bus, PioAction};
use crate::devices::monitor::{self, CallFrame, Effect, GuestRecords, MonitorInfo};
use crate::memory::GuestMemory;
use crate::outcome::Stop;
use crate::recovery::Engine;
use crate::recovery::dirty::KvmDirtyLog;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, for the kick handler.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

thread_local! {
    /// Set by the kick handler on the kicked thread: it is being stopped, so blocking host I/O
    /// (a console write to a full pipe) interrupted by the kick gives up rather than retries.
    static KICKED: Cell<bool> = const { Cell::new(false) };
}

/// True once this thread has been kicked (its VM is stopping). Other threads are unaffected:
/// the main thread still prints its closing messages.
pub fn kicked() -> bool {
    KICKED.with(Cell::get)
}

/// The real-time signal used to kick a vCPU thread out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    KICKED.with(|k| k.set(true));
    let ptr = IMMEDIATE_EXIT.with(Cell::get);
    if !ptr.is_null() {
        // SAFETY: the pointer was set by this thread's `Vcpu::run` to a byte of its own mapped
        // kvm_run page (KVM shares it with the kernel, which only reads it on entry) and is
        // cleared before that mapping can go away. The store is atomic, so it cannot tear
        // against kvm-ioctls' own write of the byte; an atomic byte store is async-signal-safe.
        unsafe { std::sync::atomic::AtomicU8::from_ptr(ptr) }.store(1, Ordering::Release);
    }
}

/// Stops a vCPU thread: sets its stop flag and kicks it until it has ended.
///
/// One kick is enough for `KVM_RUN`, but the thread may also be blocked in host I/O for the guest
/// (a console write to a full pipe): the kick interrupts it and the writer gives up, yet a kick
/// landing just before such a call would be lost, so the kick is repeated every few milliseconds
/// until the thread is gone.
pub fn stop_thread<T>(handle: &std::thread::JoinHandle<T>, stop: &AtomicBool) {
    use vmm_sys_util::signal::Killable;
    stop.store(true, Ordering::Release);
    while !handle.is_finished() {
        // A failed kick means the thread has already ended.
        let _ = handle.kill(kick_signal());
        std::thread::park_timeout(std::time::Duration::from_millis(5));
    }
}

/// Installs the kick handler (process-wide; call once before starting vCPU threads).
pub fn install_kick_handler() -> std::io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

/// One vCPU and what it needs to handle exits.
#[derive(Debug)]
pub struct Vcpu<W: Write> {
    fd: VcpuFd,
    bus: Bus<W>,
    mem: GuestMemory,
    stop: Arc<AtomicBool>,
    quiet: bool,
    monitor: MonitorInfo,
    records: Arc<Mutex<GuestRecords>>,
    engine: Option<Engine<KvmDirtyLog>>,
}

/// The width in bytes of one access of the port-I/O exit KVM just reported in `run`.
fn io_width(run: *const kvm_bindings::kvm_run) -> usize {
    // SAFETY: `run` points to the vCPU's mapped `kvm_run` page, which lives as long as the
    // vCPU fd that owns it; KVM_RUN has returned with an I/O exit, so the `io` member of the
    // exit union is the one KVM filled. The read goes through the raw pointer and touches only
    // the `io` header, not the data bytes kvm-ioctls lent out (they lie at `data_offset`, past
    // the `kvm_run` struct). The pointer was taken from `get_kvm_run()`'s reference before
    // `run()` re-borrowed the same mapping inside kvm-ioctls: a shared mmap the kernel writes
    // behind Rust's back on every KVM_RUN, which kvm-ioctls exposes only through references;
    // strictly, this aliasing is outside Rust's borrow model (as the immediate_exit kick is).
    let size = unsafe { std::ptr::addr_of!((*run).__bindgen_anon_1.io.size).read() };
    usize::from(size)
}

impl<W: Write> Vcpu<W> {
    /// A vCPU that stops when `stop` is set (followed by a kick).
    pub fn new(
        fd: VcpuFd,
        bus: Bus<W>,
        mem: GuestMemory,
        stop: Arc<AtomicBool>,
        quiet: bool,
    ) -> Self {
        Self {
            fd,
            bus,
            mem,
            stop,
            quiet,
            monitor: MonitorInfo::default(),
            records: Arc::default(),
            engine: None,
        }
    }

    /// Gives the vCPU the recovery engine that snapshots and restores the servers.
    pub fn with_engine(mut self, engine: Engine<KvmDirtyLog>) -> Self {
        self.engine = Some(engine);
        self
    }

    /// Gives the monitor the image's monitor page and task names, and where to keep what the
    /// guest reports (fault records, the workload's figures).
    pub fn with_monitor(mut self, monitor: MonitorInfo, records: Arc<Mutex<GuestRecords>>) -> Self {
        self.monitor = monitor;
        self.records = records;
        self
    }

    /// Runs the guest until it stops; returns why.
    pub fn run(mut self) -> Stop {
        let run = self.fd.get_kvm_run();
        IMMEDIATE_EXIT.with(|p| p.set(&mut run.immediate_exit));
        let stop = loop {
            if self.stop.load(Ordering::Acquire) {
                break Stop::Kicked;
            }
            if let Err(stop) = self.step() {
                break stop;
            }
        };
        IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
        if let Some(engine) = &self.engine {
            self.records().recovery = Some(engine.summary());
        }
        stop
    }

    /// One `KVM_RUN` and the handling of its exit; `Err` stops the VM.
    fn step(&mut self) -> Result<(), Stop> {
        // For the width of a port access, which kvm-ioctls does not pass on (see `io_width`).
        let run = std::ptr::from_mut(self.fd.get_kvm_run()).cast_const();
        let action = match self.fd.run() {
            Ok(VcpuExit::IoOut(port, data)) => self.bus.pio_write(port, io_width(run), data)?,
            Ok(VcpuExit::IoIn(port, data)) => {
                self.bus.pio_read(port, io_width(run), data)?;
                PioAction::Continue
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                self.bus.mmio_read(addr, data)?;
                PioAction::Continue
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                self.bus.mmio_write(addr, data)?;
                PioAction::Continue
            }
            Ok(VcpuExit::Shutdown) => return Err(Stop::TripleFault { rip: self.rip() }),
            Ok(VcpuExit::InternalError) => {
                let suberror = self.internal_suberror();
                return Err(Stop::InternalError {
                    suberror,
                    rip: self.rip(),
                });
            }
            Ok(VcpuExit::FailEntry(reason, _cpu)) => return Err(Stop::FailEntry { reason }),
            Ok(VcpuExit::Intr) => PioAction::Continue,
            Ok(other) => return Err(Stop::UnexpectedExit(format!("{other:?}"))),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                PioAction::Continue
            }
            Err(e) => return Err(Stop::Kvm(e)),
        };
        match action {
            PioAction::Continue => Ok(()),
            PioAction::Hypercall(word) => self.hypercall(word),
        }
    }

    fn hypercall(&mut self, word: u32) -> Result<(), Stop> {
        let effect = match abi::hypercall::recovery_call(word) {
            // The hot path (a BOUNDARY per message a server handles): no register read.
            Some(call) => monitor::handle_recovery(&self.mem, &self.monitor, call)?,
            None => {
                let regs = self.fd.get_regs().map_err(Stop::Kvm)?;
                let sregs = self.fd.get_sregs().map_err(Stop::Kvm)?;
                // CPL is the RPL of CS; KVM also reports it as the code segment's DPL. Take
                // the higher, so that neither a forged selector nor a backend quirk can pass
                // ring 3 off as ring 0.
                let cpl = (sregs.cs.selector & 3).max(u16::from(sregs.cs.dpl));
                let frame = CallFrame {
                    cpl,
                    rip: regs.rip,
                    args: [regs.rdi, regs.rsi, regs.r8, regs.r9],
                };
                monitor::handle(&self.mem, &self.monitor, word, &frame)?
            }
        };
        match effect {
            Effect::Continue => Ok(()),
            Effect::Log(line) => {
                if !self.quiet {
                    eprintln!("vmm: guest log: {line}");
                }
                Ok(())
            }
            Effect::Exit(status) => Err(Stop::GuestExit(status)),
            Effect::Fault(fault) => {
                // The VM keeps running: the guest kernel confined the fault to the task, and the
                // engine (if any) restores it before the guest goes on; its line is written by
                // the engine's log thread, not to delay the recovery.
                self.records().faults += 1;
                match &mut self.engine {
                    Some(engine) => engine.fault(&fault),
                    None => {
                        if !self.quiet {
                            eprintln!("vmm: fault: {fault}");
                        }
                        Ok(())
                    }
                }
            }
            Effect::Report(report) => {
                self.records().workload = Some(report);
                Ok(())
            }
            Effect::Snapshots(pending) => match &mut self.engine {
                Some(engine) => {
                    engine.snapshot_exit();
                    pending
                        .into_iter()
                        .try_for_each(|snapshot| engine.boundary(snapshot))
                }
                None => Ok(()),
            },
            Effect::Restarted { task, tsc } => {
                if let Some(engine) = &mut self.engine {
                    engine.restarted(task, tsc);
                }
                Ok(())
            }
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, GuestRecords> {
        // panic = "abort": no holder can panic with the lock held, so it is never poisoned.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn rip(&self) -> Option<u64> {
        self.fd.get_regs().ok().map(|r| r.rip)
    }

    fn internal_suberror(&mut self) -> u32 {
        let run = self.fd.get_kvm_run();
        // SAFETY: KVM filled the `internal` member of the exit union: exit_reason is
        // KVM_EXIT_INTERNAL_ERROR (that is how kvm-ioctls produced VcpuExit::InternalError).
        unsafe { run.__bindgen_anon_1.internal.suberror }
    }
}
