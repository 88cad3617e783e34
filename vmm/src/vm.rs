//! Building and running a VM: the named steps from a validated [`VmConfig`] to an exit status.

use crate::backend;
use crate::boot::{self, BootError};
use crate::config::{ImageSource, VmConfig};
use crate::devices::bus::{Bus, IoCounters};
use crate::devices::monitor::MonitorInfo;
use crate::devices::serial::{self, COM1_IRQ};
use crate::event_loop::{self, LoopInputs, Shutdown, SignalFd};
use crate::faults::classify::{Class, Ending, RunFacts};
use crate::faults::injector::Injector;
use crate::faults::record::{Injection, classify_all};
use crate::faults::{FaultOptions, FaultSpecError};
use crate::image::{Image, ImageError};
use crate::kick;
use crate::layout::{self, Layout, LayoutError};
use crate::memory::{self, GuestMemory, MemoryError};
use crate::outcome::Stop;
use crate::records::GuestRecords;
use crate::recovery::dirty::{self, KvmDirtyLog};
use crate::recovery::report::Summary;
use crate::recovery::{Engine, RecoveryError, RecoveryOptions};
use crate::vcpu::Vcpu;
use abi::monitor::WorkloadReport;
use abi::{Backend, status};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vmm_sys_util::eventfd::EventFd;

/// The label errors use for the bundled image.
pub const BUNDLED_LABEL: &str = "bundled demo guest";

/// Where Intel's VMX wants its three-page real-mode TSS: just below the 4 GiB boundary, above
/// any guest RAM this VMM creates.
const TSS_ADDRESS: usize = 0xfffb_d000;

/// Host-side failures: the machine cannot run the VM, or a setup ioctl failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// /dev/kvm missing or not accessible.
    #[error("cannot open {}: {source} (is KVM enabled, and may this user open it?)", path.display())]
    OpenKvm {
        /// The device.
        path: std::path::PathBuf,
        /// Why.
        source: kvm_ioctls::Error,
    },
    /// The device is there but does not answer as KVM.
    #[error("{} is not a KVM device (KVM_GET_API_VERSION gave {version}, not 12)", path.display())]
    NotKvm {
        /// The device.
        path: std::path::PathBuf,
        /// What it answered.
        version: i32,
    },
    /// A required capability is missing.
    #[error("KVM lacks a required capability: {0}")]
    MissingCap(&'static str),
    /// A KVM ioctl failed.
    #[error("{what} failed: {source}")]
    Ioctl {
        /// Which call.
        what: &'static str,
        /// Its error.
        source: kvm_ioctls::Error,
    },
    /// An OS resource (eventfd, signalfd, thread, epoll) could not be set up.
    #[error("cannot set up {what}: {source}")]
    Os {
        /// Which resource.
        what: &'static str,
        /// Its error.
        source: std::io::Error,
    },
}

/// Everything that can stop `vmm run` before the guest runs, by kind.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad image file.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Image does not fit the memory or declares bad regions.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Boot structures or vCPU setup.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The host.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A `--fault` the image cannot take.
    #[error(transparent)]
    Fault(#[from] FaultSpecError),
    /// The recovery engine could not be set up.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    /// The `[recovery]` configuration does not fit the image's servers.
    #[error(transparent)]
    Policy(#[from] policies::ConfigError),
    /// `--api-sock` or `--metrics-addr` cannot be served.
    #[error("{0}")]
    Api(String),
}

impl RunError {
    /// The exit status of the contract in [`abi::status`].
    pub fn status(&self) -> u8 {
        match self {
            Self::Image(_) | Self::Layout(_) | Self::Boot(BootError::Load { .. }) => status::IMAGE,
            Self::Memory(MemoryError::Allocate { .. }) | Self::Host(_) => status::HOST,
            Self::Memory(_) | Self::Boot(_) => status::VMM_INTERNAL,
            Self::Fault(_) | Self::Policy(_) | Self::Recovery(RecoveryError::Versions(_)) => {
                status::CONFIG
            }
            Self::Recovery(_) => status::VMM_INTERNAL,
            Self::Api(_) => status::USAGE,
        }
    }
}

/// How a run ended.
#[derive(Debug)]
pub struct RunReport {
    /// The process exit status.
    pub status: u8,
    /// The one-line explanation, if the ending needs one.
    pub message: Option<String>,
    /// KVM backend.
    pub backend: Backend,
    /// The image label.
    pub image: String,
    /// From the start of VM creation to the vCPU's stop.
    pub elapsed: Duration,
    /// Accesses to unknown ports that were ignored.
    pub unknown_pio: u64,
    /// Accesses to unmapped MMIO that were ignored.
    pub unknown_mmio: u64,
    /// Bytes of the guest's console output that stdout did not take (full or closed).
    pub console_lost: u64,
    /// The workload's figures, if the guest reported them (REPORT hypercall).
    pub workload: Option<WorkloadReport>,
    /// When it did not (a run stopped before its workload ended, e.g. `ops=forever`): what the
    /// clients had published so far (every 64 requests, all servers summed), if the image has a
    /// monitor page.
    pub workload_so_far: Option<WorkloadReport>,
    /// FaultReport records the guest reported (tasks it stopped; the VM kept running).
    pub faults: u64,
    /// What the recovery engine did (images with servers, recovery on).
    pub recovery: Option<Summary>,
    /// Every planned fault, as it went, classified.
    pub injections: Vec<Injection>,
    /// The run's class: the worst of its faults' (runs with `--fault`).
    pub classification: Option<Class>,
}

/// Step 1: the image, read and checked.
pub fn load_image(config: &VmConfig, bundled: &[u8]) -> Result<Image, ImageError> {
    match &config.image {
        ImageSource::Bundled => Image::from_bytes(BUNDLED_LABEL.to_owned(), bundled.to_vec()),
        ImageSource::File(path) => Image::from_file(path, config.memory_bytes()),
    }
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> HostError {
    move |source| HostError::Ioctl { what, source }
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> HostError {
    move |source| HostError::Os { what, source }
}

/// The environment variable that points `vmm` at another KVM device than /dev/kvm: for tests
/// only (a missing path or one that is not KVM makes the "no usable KVM" statuses observable).
pub const KVM_DEVICE_ENV: &str = "VMM_KVM_DEVICE";

/// Opens KVM (/dev/kvm, or the test-only `VMM_KVM_DEVICE`) and checks that it is KVM and has
/// what this VMM needs: the host's part of a run, checked before anything is said or started.
pub fn open_kvm() -> Result<Kvm, HostError> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::var_os(KVM_DEVICE_ENV).map_or_else(
        || std::path::PathBuf::from("/dev/kvm"),
        std::path::PathBuf::from,
    );
    let c_path =
        std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| HostError::NotKvm {
            path: path.clone(),
            version: -1,
        })?;
    let kvm = Kvm::new_with_path(&c_path).map_err(|source| HostError::OpenKvm {
        path: path.clone(),
        source,
    })?;
    let version = kvm.get_api_version();
    if version != kvm_bindings::KVM_API_VERSION as i32 {
        return Err(HostError::NotKvm { path, version });
    }
    for (cap, name) in [
        (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
        (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
        (Cap::Irqfd, "KVM_CAP_IRQFD"),
        (Cap::ImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(HostError::MissingCap(name));
        }
    }
    Ok(kvm)
}

/// A VM whose memory, image and boot state are in place, with its one vCPU ready to run.
struct BuiltVm {
    // Field order is drop order: the vCPU and VM fds close before guest memory is unmapped.
    vcpu: VcpuFd,
    vm: Arc<VmFd>,
    mem: memory::GuestMemory,
    /// The recovery engine, with every server's boot image as version 0.
    engine: Option<Engine<KvmDirtyLog>>,
}

/// What `--fault` and the `[recovery]` table ask of this layout's servers, checked against
/// them (before anything is printed or created).
struct RecoveryPlan {
    /// Server names by task index; `None` for apps (clients), which can be neither crashed on
    /// purpose nor configured.
    tasks: Vec<Option<String>>,
    /// The faults to inject, as the monitor page carries them.
    faults: [abi::monitor::FaultPlan; abi::monitor::MAX_PLANNED_FAULTS],
    /// Each server's policy.
    policies: policies::PolicySet,
}

fn plan_recovery(
    config: &VmConfig,
    layout: &Layout,
    faults: &FaultOptions,
) -> Result<RecoveryPlan, RunError> {
    let tasks: Vec<Option<String>> = layout
        .servers
        .iter()
        .map(|s| (!s.app).then(|| s.name.clone()))
        .collect();
    let faults = crate::faults::plan::plan(&faults.specs, &tasks)?;
    let names: Vec<&String> = tasks.iter().flatten().collect();
    let policies = config.recovery.build(&names)?;
    Ok(RecoveryPlan {
        tasks,
        faults,
        policies,
    })
}

/// Steps 3-7: KVM VM, memory and memslots, image, boot structures (and the monitor page's
/// flags and fault plan), irqchip, vCPU, and the recovery engine's first snapshots.
fn build(
    kvm: Kvm,
    config: &VmConfig,
    image: &Image,
    layout: &Layout,
    backend: Backend,
    recovery: &RecoveryOptions,
    planned: RecoveryPlan,
) -> Result<BuiltVm, RunError> {
    let RecoveryPlan {
        tasks,
        faults: plan,
        policies,
    } = planned;
    // Memory first: locals drop in reverse order, so on any error below the VM fd (and its
    // memslots) goes before the mapping they point into.
    let mem = memory::create(layout)?;
    let vm = Arc::new(kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?);
    vm.set_tss_address(TSS_ADDRESS)
        .map_err(ioctl("KVM_SET_TSS_ADDR"))?;
    let recovering = recovery.enabled && !layout.servers.is_empty();
    // Before the slots exist: manual protection applies to the slots created afterwards.
    let manual = recovering && dirty::enable_manual_protect(&vm);
    memory::register(&vm, &mem, layout, kvm.get_nr_memslots())?;
    boot::load_image(&mem, image)?;
    boot::write_boot_structures(&mem, layout, image, &config.cmdline, backend)?;
    if let Some(page) = layout.monitor_page {
        crate::recovery::write_monitor_page(&mem, page, recovering, &plan)?;
    }
    // KVM requires the in-kernel irqchip before any vCPU exists.
    vm.create_irq_chip().map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
    let vcpu = vm.create_vcpu(0).map_err(ioctl("KVM_CREATE_VCPU"))?;
    boot::setup_vcpu(&kvm, &vcpu, image.entry)?;
    let engine = if recovering {
        let log = KvmDirtyLog::new(Arc::clone(&vm), manual);
        let tsc_khz = vcpu.get_tsc_khz().ok();
        let mut engine = Engine::new(mem.clone(), layout, log, recovery.clone(), tsc_khz)?;
        let mut by_name = policies.into_policies();
        engine.set_policies(
            tasks
                .iter()
                .map(|task| {
                    let named = by_name.iter().position(|(n, _)| Some(n) == task.as_ref());
                    match named {
                        Some(i) => by_name.swap_remove(i).1,
                        None => policies::default_policy(), // an app: never recovered
                    }
                })
                .collect(),
        );
        Some(engine)
    } else {
        None
    };
    Ok(BuiltVm {
        vcpu,
        vm,
        mem,
        engine,
    })
}

/// Builds the VM from `config` and runs it to the end, snapshotting and recovering its servers
/// as `recovery` says.
pub fn run(
    config: &VmConfig,
    bundled: &[u8],
    quiet: bool,
    recovery: &RecoveryOptions,
    faults: &FaultOptions,
    control: &crate::api::Control,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let image = load_image(config, bundled)?;
    let layout = layout::plan(&image, config.memory_bytes())?;
    // The API socket is bound before the boot: a path that cannot be served is said at once.
    if control.any() && image.manifest().is_none() {
        return Err(RunError::Api(
            "--api-sock, --metrics-addr: a plain image has no servers to control or measure".into(),
        ));
    }
    let api_socket = match &control.api_sock {
        Some(path) => Some(
            crate::api::ApiSocket::bind(path)
                .map_err(|e| RunError::Api(format!("--api-sock {e}")))?,
        ),
        None => None,
    };
    let metrics_listener = match control.metrics_addr {
        Some(addr) => Some(
            crate::api::bind_metrics(addr, control.metrics_public)
                .map_err(|e| RunError::Api(format!("--metrics-addr {e}")))?,
        ),
        None => None,
    };
    let planned = plan_recovery(config, &layout, faults)?;
    // With the control API, faults of the VMM's kinds may also be planned while the VM runs:
    // the injector is there for them, fed through its inbox.
    let inbox = control
        .api_sock
        .is_some()
        .then(crate::faults::injector::LiveInbox::default);
    let injector = if faults.specs.is_empty() && inbox.is_none() {
        None
    } else {
        let injector = Injector::new(&faults.specs, faults.seed, &image, &layout)?;
        Some(match &inbox {
            Some(inbox) => injector.with_inbox(Arc::clone(inbox)),
            None => injector,
        })
    };
    let backend = backend::detect();
    // KVM first: the boot line says nothing until the host can run the VM.
    let kvm = open_kvm()?;
    if !quiet {
        let kind = match image.manifest() {
            Some(_) => {
                let apps = layout.servers.iter().filter(|s| s.app).count();
                let servers = layout.servers.len() - apps;
                match apps {
                    0 => format!("{servers} servers"),
                    _ => format!("{servers} servers, {apps} apps"),
                }
            }
            None => "plain ELF".to_owned(),
        };
        eprintln!(
            "vmm: booting {} ({kind}), {} MiB, KVM backend {}",
            image.label,
            config.memory_mib,
            backend.name()
        );
    }
    // Where the metrics are: said even with -q when the system picked the port
    // (`--metrics-addr 127.0.0.1:0`), since nothing else says it.
    if let Some(addr) = metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
        && (!quiet || control.metrics_addr.is_some_and(|a| a.port() == 0))
    {
        eprintln!("vmm: metrics at http://{addr}/metrics");
    }
    // Block the stop signals before any other thread exists, so that they reach only the loop.
    let signals = SignalFd::new().map_err(os("signalfd"))?;
    let built = build(kvm, config, &image, &layout, backend, recovery, planned)?;
    kick::install_kick_handler().map_err(os("the vCPU kick signal"))?;

    let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(os("COM1 irqfd"))?;
    built
        .vm
        .register_irqfd(&irq, COM1_IRQ)
        .map_err(ioctl("KVM_IRQFD"))?;
    let drained = EventFd::new(libc::EFD_NONBLOCK).map_err(os("COM1 input eventfd"))?;
    let input_waiting = Arc::new(AtomicBool::new(false));
    let drained_writer = serial::InputDrained {
        fd: drained.try_clone().map_err(os("eventfd"))?,
        waiting: Arc::clone(&input_waiting),
    };
    let counters = Arc::new(IoCounters::default());
    let serial = serial::new_serial(
        irq,
        drained_writer,
        serial::console_stdout(),
        Arc::clone(&counters.console_lost),
    );
    let bus = Bus::new(
        Arc::clone(&serial),
        image.manifest().is_some(),
        config.strict_io,
        Arc::clone(&counters),
    );

    let stop_flag = Arc::new(AtomicBool::new(false));
    let vcpu_done = EventFd::new(libc::EFD_NONBLOCK).map_err(os("vCPU eventfd"))?;
    let done_writer = vcpu_done.try_clone().map_err(os("eventfd"))?;
    let BuiltVm {
        vcpu,
        vm,
        mem,
        engine,
    } = built;
    let monitor = MonitorInfo {
        page: layout.monitor_page,
        tasks: layout.servers.iter().map(|s| s.name.clone()).collect(),
    };
    let records = Arc::new(Mutex::new(GuestRecords::default()));
    let mut vcpu = Vcpu::new(vcpu, bus, mem.clone(), Arc::clone(&stop_flag), quiet)
        .with_monitor(monitor, Arc::clone(&records))
        .publishing(control.any());
    // Only a VM with a control API can be paused.
    let pause = control
        .api_sock
        .is_some()
        .then(|| Arc::new(crate::pause::Pause::default()));
    if let Some(p) = &pause {
        vcpu = vcpu.with_pause(Arc::clone(p));
    }
    if let Some(engine) = engine {
        vcpu = vcpu.with_engine(engine);
    }
    if let Some(injector) = injector {
        vcpu = vcpu.with_injector(injector);
    }
    let handle = std::thread::Builder::new()
        .name("vcpu0".into())
        .spawn(move || {
            let stop = vcpu.run();
            let _ = done_writer.write(1);
            stop
        })
        .map_err(os("the vCPU thread"))?;
    if let Some(p) = &pause {
        p.set_vcpu(std::os::unix::thread::JoinHandleExt::as_pthread_t(&handle));
    }

    let api_stop = Arc::new(AtomicBool::new(false));
    // The API's stop request reaches the event loop through an eventfd.
    let (stop_requested, stop_writer) = if control.api_sock.is_some() {
        let e = EventFd::new(libc::EFD_NONBLOCK).map_err(os("the API's stop eventfd"))?;
        let w = e.try_clone().map_err(os("eventfd"))?;
        (Some(e), Some(w))
    } else {
        (None, None)
    };
    let mut api_threads = Vec::new();
    let mut api_state = None;
    if control.any() {
        let monitor_page = layout
            .monitor_page
            .ok_or_else(|| RunError::Api("--api-sock: the image has no monitor page".into()))?;
        let state = Arc::new(crate::api::ApiState {
            live: crate::live::LiveFaults::new(
                mem.clone(),
                monitor_page,
                layout
                    .servers
                    .iter()
                    .map(|s| (!s.app).then(|| s.name.clone()))
                    .collect(),
                inbox.unwrap_or_default(),
            ),
            backend: backend.name(),
            started,
            records: Arc::clone(&records),
            stop: Arc::clone(&api_stop),
            pause: pause.clone(),
            stop_vm: stop_writer,
            progress: published(&mem, &layout, monitor_page),
            ended: std::sync::Mutex::new(None),
        });
        api_state = Some(Arc::clone(&state));
        if let Some(socket) = api_socket {
            api_threads.push(
                socket
                    .serve(Arc::clone(&state), Arc::clone(&api_stop))
                    .map_err(os("the API thread"))?,
            );
        }
        if let Some(listener) = metrics_listener {
            api_threads.push(
                crate::api::serve_metrics(listener, state, Arc::clone(&api_stop))
                    .map_err(os("the metrics thread"))?,
            );
        }
    }
    let shutdown = event_loop::run(LoopInputs {
        vcpu_done,
        signals,
        timeout: config.timeout,
        serial,
        input_drained: drained,
        input_waiting,
        stdin: true,
        pause,
        stop_requested,
    });
    if !matches!(shutdown, Ok(Shutdown::VcpuStopped)) {
        kick::stop_thread(&handle, &stop_flag);
    }
    // The vCPU thread cannot panic into us (panic = "abort"), so join only fails if it did abort.
    let stop = handle.join().unwrap_or(Stop::Kicked);
    let elapsed = started.elapsed();
    let records = records
        .lock()
        .map_or_else(|e| e.into_inner().clone(), |r| r.clone());
    let (status, message) = match (stop, shutdown) {
        (Stop::Kicked, Ok(Shutdown::Signal(sig))) => (
            status::SIGNAL_BASE.saturating_add(sig as u8),
            Some(format!("stopped by signal {}", signal_name(sig))),
        ),
        (Stop::Kicked, Ok(Shutdown::Requested)) => (
            status::SIGNAL_BASE + libc::SIGTERM as u8,
            Some("stopped through the control API (as by SIGTERM)".to_owned()),
        ),
        (Stop::Kicked, Ok(Shutdown::Timeout)) => (
            status::TIMEOUT,
            Some(format!(
                "guest still running after the {:?} timeout; stopped it",
                config.timeout.unwrap_or_default()
            )),
        ),
        (Stop::Kicked, Err(e)) => (
            status::VMM_INTERNAL,
            Some(format!("event loop failed: {e}")),
        ),
        // A guest that stops itself with a failure status: with -q (which hides its LOG lines)
        // vmm's line says what it said last.
        (Stop::GuestExit(s), _) if s != 0 && quiet => (
            s,
            records
                .last_log
                .as_ref()
                .map(|said| format!("the guest stopped with status {s}: {said}")),
        ),
        (stop, _) => (stop.status(), stop.message()),
    };
    // The API says how the VM ended (`GET /vm`, the event stream's last record), then goes.
    if let Some(state) = api_state {
        *state.ended.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, message.clone()));
    }
    api_stop.store(true, Ordering::Relaxed);
    for t in api_threads {
        let _ = t.join();
    }
    let workload_so_far = match (&records.workload, layout.monitor_page) {
        (None, Some(page)) => Some(published(&mem, &layout, page).total().into()),
        _ => None,
    };
    memory::unregister(&vm, &layout);
    drop(vm);
    drop(mem);
    let mut injections = records.injections;
    let classification = (!injections.is_empty())
        .then(|| {
            classify_all(
                &run_facts(
                    status,
                    &records.workload.or(workload_so_far),
                    &records.recovery,
                    &records.bystanders,
                ),
                &mut injections,
            )
        })
        .flatten();
    Ok(RunReport {
        status,
        message,
        backend,
        image: image.label,
        elapsed,
        unknown_pio: counters.unknown_pio.load(Ordering::Relaxed),
        unknown_mmio: counters.unknown_mmio.load(Ordering::Relaxed),
        console_lost: counters.console_lost.load(Ordering::Relaxed),
        workload: records.workload,
        workload_so_far,
        faults: records.faults,
        recovery: records.recovery,
        injections,
        classification,
    })
}

/// What the servers of `layout` publish while they run, in the monitor page at `page`.
fn published(mem: &GuestMemory, layout: &Layout, page: u64) -> crate::progress::Progress {
    crate::progress::Progress::new(
        mem.clone(),
        page,
        layout
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.app)
            .map(|(i, s)| (s.name.clone(), i))
            .collect(),
    )
}

/// What classification needs to know of a run that ended with `status` (`workload`: its
/// figures, or what its clients had published when it did not report).
fn run_facts(
    status: u8,
    workload: &Option<WorkloadReport>,
    recovery: &Option<Summary>,
    bystanders: &[String],
) -> RunFacts {
    let unrecovered = recovery.as_ref().is_some_and(|s| {
        s.recoveries.iter().any(|r| {
            r.action == "fail-stop"
                || matches!(r.decision.outcome, policies::Outcome::Failed { .. })
        })
    });
    RunFacts {
        ending: Some(Ending::of_status(i32::from(status))),
        wrong_answers: workload.map_or(0, |w| w.mismatches.saturating_add(w.errors)),
        lost: workload.map_or(0, |w| w.lost),
        bystander_crashed: !bystanders.is_empty(),
        unrecovered,
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        n => n.to_string(),
    }
}
