//! The vCPU thread: runs `KVM_RUN` in a loop, hands exits to the [`Bus`], and stops promptly
//! when asked from another thread (the kick: [`crate::kick`]); the loop then sees the stop flag
//! and returns [`Stop::Kicked`].

use crate::devices::bus::{Bus, PioAction};
use crate::devices::monitor::{self, Call, CallFrame, MonitorInfo};
use crate::faults::injector::Injector;
use crate::kick;
use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use crate::records::GuestRecords;
use crate::recovery::Engine;
use crate::recovery::dirty::KvmDirtyLog;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    injector: Option<Injector>,
    /// The kernel code address a hardware breakpoint watches (a kernel code fault's).
    breakpoint: Option<u64>,
    /// Publish the recovery summary after every fault (for the control API's readers).
    publish: bool,
    /// The pause switch (runs with a control API).
    pause: Option<Arc<crate::pause::Pause>>,
}

/// The time-stamp counter MSR.
const IA32_TSC: u32 = 0x10;

// `_IOW(KVMIO, 0xe1, struct kvm_device_attr)` (kvm-ioctls offers it only on aarch64).
vmm_sys_util::ioctl_iow_nr!(
    KVM_SET_DEVICE_ATTR,
    kvm_bindings::KVMIO,
    0xe1,
    kvm_bindings::kvm_device_attr
);

/// The host's time-stamp counter.
fn host_tsc() -> u64 {
    // SAFETY: RDTSC reads a counter; it has no memory effects and every x86_64 CPU has it.
    unsafe { core::arch::x86_64::_rdtsc() }
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
            injector: None,
            breakpoint: None,
            publish: false,
            pause: None,
        }
    }

    /// Gives the vCPU a pause switch: while it is on, the vCPU does not run the guest.
    pub fn with_pause(mut self, pause: Arc<crate::pause::Pause>) -> Self {
        self.pause = Some(pause);
        self
    }

    /// Publishes the recovery summary in the records after every fault, as well as at the end
    /// (the control API reads it while the VM runs; it costs a copy of the summary a crash).
    pub fn publishing(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    /// Gives the vCPU the fault injector that carries out the planned faults of the VMM's
    /// kinds.
    pub fn with_injector(mut self, injector: Injector) -> Self {
        self.injector = Some(injector);
        self
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
        kick::arm(&mut run.immediate_exit);
        let stop = loop {
            if self.stop.load(Ordering::Acquire) {
                break Stop::Kicked;
            }
            if let Some(pause) = self.pause.as_ref().filter(|p| p.is_paused()) {
                // The guest's clock stops too: its TSC (what recovery latencies are measured
                // with) goes on from where it was, not from where the host's is now.
                // The guest's clock stops too. Where KVM can offset the guest's TSC (hardware
                // KVM), it goes on from where it was; where it cannot (KVM-PVM: guest code reads
                // the host's TSC natively), the cycles it ran on are handed to the recovery
                // engine, which takes them out of the latency of a recovery the pause fell in.
                let before = self.guest_tsc();
                let since = std::time::Instant::now();
                pause.wait_while_paused(|| self.stop.load(Ordering::Acquire));
                if self.stop.load(Ordering::Acquire) {
                    break Stop::Kicked;
                }
                if let Some(guest) = before {
                    // Guest TSC = host TSC + offset (no TSC scaling: the guest runs at the
                    // host's rate). Best effort: the check below measures what it achieved.
                    self.set_tsc_offset(guest.wrapping_sub(host_tsc()));
                }
                if let (Some(before), Some(after), Some(engine)) =
                    (before, self.guest_tsc(), self.engine.as_mut())
                {
                    engine.paused(after.saturating_sub(before), since.elapsed());
                }
                // The kick that paused it was no stop: its console writes go on.
                kick::unkick();
            }
            if let Err(stop) = self.step() {
                break stop;
            }
        };
        kick::disarm();
        if let Some(engine) = &self.engine {
            self.records().recovery = Some(engine.summary());
        }
        if let Some(injector) = self.injector.take() {
            let step = monitor::read_step(&self.mem, &self.monitor);
            let (injections, bystanders) = injector.finish(step);
            let mut records = self.records();
            records.injections = injections;
            records.bystanders = bystanders;
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
                let rip = self.rip();
                // The bytes there (identity-mapped images: the address is guest-physical).
                let insn = rip
                    .and_then(|r| {
                        let mut b = [0u8; 4];
                        vm_memory::Bytes::read_slice(&self.mem, &mut b, vm_memory::GuestAddress(r))
                            .ok()
                            .map(|()| b.to_vec())
                    })
                    .unwrap_or_default();
                return Err(Stop::InternalError {
                    suberror,
                    rip,
                    insn,
                });
            }
            Ok(VcpuExit::FailEntry(reason, _cpu)) => return Err(Stop::FailEntry { reason }),
            Ok(VcpuExit::Intr) => PioAction::Continue,
            Ok(VcpuExit::Debug(debug)) if self.breakpoint.is_some() => {
                // The kernel reached its injected instruction: note it, and let it run on
                // (a breakpoint fires again until disarmed).
                if let Some(injector) = &mut self.injector
                    && self.breakpoint == Some(debug.pc)
                {
                    injector.kernel_reached();
                }
                self.watch(None)?;
                PioAction::Continue
            }
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
            Call::Continue => Ok(()),
            Call::Log(line) => {
                if !self.quiet {
                    eprintln!("vmm: guest log: {line}");
                }
                self.records().last_log = Some(line);
                Ok(())
            }
            Call::Exit(status) => Err(Stop::GuestExit(status)),
            Call::Fault(fault) => {
                // The VM keeps running: the guest kernel confined the fault to the task, and the
                // engine (if any) restores it before the guest goes on; its line is written by
                // the engine's log thread, not to delay the recovery.
                self.records().faults += 1;
                if let Some(injector) = &mut self.injector {
                    let step = monitor::read_step(&self.mem, &self.monitor).unwrap_or_default();
                    injector.crashed(&self.mem, &fault, &step);
                }
                match &mut self.engine {
                    Some(engine) => {
                        let handled = engine.fault(&fault);
                        if self.publish {
                            let summary = engine.summary();
                            self.records().publish_recovery(summary);
                        }
                        handled
                    }
                    None => {
                        if !self.quiet {
                            eprintln!("vmm: fault: {fault}");
                        }
                        Ok(())
                    }
                }
            }
            Call::Report(report) => {
                self.records().workload = Some(report);
                Ok(())
            }
            Call::Inject(call) => {
                let Some(injector) = &mut self.injector else {
                    return Err(Stop::Protocol(Violation::Inject {
                        task: call.record.task,
                        phase: call.record.phase,
                        kind: call.record.word,
                        message: call.record.message,
                        why: "no fault of the VMM's kinds is planned",
                    }));
                };
                let answer = injector.inject(&self.mem, &call)?;
                if call.record.phase == abi::monitor::InjectRecord::START
                    && let Some(injection) = injector.latest()
                {
                    if !self.quiet {
                        eprintln!("vmm: {injection}");
                    }
                    if self.publish {
                        // For the control API's event stream (the run's end replaces the list
                        // with the final records).
                        let injection = injection.clone();
                        self.records
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .publish_injection(injection);
                    }
                }
                let watch = injector.kernel_watch();
                monitor::answer_inject(&self.mem, &self.monitor, &answer)?;
                if watch != self.breakpoint {
                    self.watch(watch)?;
                }
                Ok(())
            }
            Call::Snapshots(pending) => match &mut self.engine {
                Some(engine) => {
                    engine.snapshot_exit();
                    pending
                        .into_iter()
                        .try_for_each(|snapshot| engine.boundary(snapshot))
                }
                None => Ok(()),
            },
            Call::Restarted { task, tsc } => {
                if let Some(engine) = &mut self.engine {
                    engine.restarted(task, tsc);
                    // The recovery's latency is known now: the API's readers get it.
                    if self.publish {
                        let summary = engine.summary();
                        self.records().publish_recovery(summary);
                    }
                }
                Ok(())
            }
        }
    }

    /// Arms a hardware breakpoint on guest address `addr` (`None`: disarms it).
    fn watch(&mut self, addr: Option<u64>) -> Result<(), Stop> {
        use kvm_bindings::{KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP, kvm_guest_debug};
        let mut debug = kvm_guest_debug::default();
        if let Some(addr) = addr {
            debug.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
            debug.arch.debugreg[0] = addr;
            // DR7: local enable of DR0, an execution breakpoint (R/W 00, LEN 00).
            debug.arch.debugreg[7] = 1;
        }
        self.fd.set_guest_debug(&debug).map_err(Stop::Kvm)?;
        self.breakpoint = addr;
        Ok(())
    }

    /// The guest's TSC (`None` if KVM would not say).
    fn guest_tsc(&self) -> Option<u64> {
        let mut msrs = kvm_bindings::Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
            index: IA32_TSC,
            ..Default::default()
        }])
        .ok()?;
        match self.fd.get_msrs(&mut msrs) {
            Ok(1) => Some(msrs.as_slice()[0].data),
            _ => None,
        }
    }

    /// Sets the guest's TSC offset (KVM_VCPU_TSC_OFFSET: a plain write of the TSC MSR is taken
    /// by KVM as a resynchronisation and ignored when it is within a second of what it expects).
    /// Best effort: KVM-PVM accepts it and changes nothing (its guest reads the host's TSC).
    fn set_tsc_offset(&self, offset: u64) {
        let attr = kvm_bindings::kvm_device_attr {
            group: kvm_bindings::KVM_VCPU_TSC_CTRL,
            attr: u64::from(kvm_bindings::KVM_VCPU_TSC_OFFSET),
            addr: std::ptr::from_ref(&offset) as u64,
            flags: 0,
        };
        // SAFETY: KVM_SET_DEVICE_ATTR on our vCPU fd with a valid kvm_device_attr whose `addr`
        // points to a live u64 for the call; KVM reads 8 bytes there and writes nothing.
        unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&self.fd, KVM_SET_DEVICE_ATTR(), &attr) };
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
