//! The `vmm` command line. Errors end here: each becomes one line on stderr and an exit status
//! from [`abi::status`]; stdout carries only the guest's console.

use crate::config::{ConfigFile, Overrides, VmConfig};
use crate::faults::classify::Class;
use crate::faults::{self, FaultOptions, FaultSpec};
use crate::recovery::{self, RecoveryOptions};
use crate::report::{self, WorkloadFigures};
use crate::{bench, vm};
use abi::status;
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;
use usage::{commands_of, exit_status_help, help_for, usage_error_line};

mod usage;

/// The demo guest built from guest-os/ and bundled into this binary.
pub static BUNDLED_GUEST: &[u8] = include_bytes!(env!("VMM_BUNDLED_GUEST"));

/// A KVM virtual machine monitor that runs a multiserver microkernel guest and restores crashed
/// servers from per-server snapshots.
#[derive(Debug, Parser)]
#[command(name = "vmm", version, after_help = exit_status_help())]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a guest image with its serial console on this terminal.
    ///
    /// Without IMAGE, boots the demo guest bundled into vmm. IMAGE may be one of our images (an
    /// x86_64 ELF carrying a region manifest: per-server memory regions, boot-info, the monitor
    /// interface) or any plain x86_64 ELF, which is entered the way Firecracker enters one (64-bit
    /// mode, first 4 GiB identity-mapped, zero page pointer in RSI; an i8042 reset stops it).
    /// The guest's console is on stdout and stdin; vmm's own messages go to stderr.
    #[command(after_help = exit_status_help())]
    Run(RunArgs),
    /// Measure vmm; results are printed (and optionally written as JSON), never asserted.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// List where a fault kind can strike a target of an image: its code sites (instructions a
    /// code kind can rewrite, with their bytes and text), or the bytes and registers a data
    /// kind can flip. Read from the image; no VM runs. docs/fault-injection.md.
    FaultSites(FaultSitesArgs),
    /// Seeded fault-injection campaigns over many VMs: run (sharded on Slurm arrays or
    /// Kubernetes Indexed Jobs), merge, report with confidence intervals, replay a case.
    /// docs/fleet.md.
    #[command(subcommand)]
    Fleet(crate::fleet::command::FleetCommand),
    /// Control a running VM through its API socket (`vmm run --api-sock PATH`): its status and
    /// servers, crash a server at its next message or cancel that, follow its events, pause,
    /// resume, stop. Exit status 0 done, 66 the VM refused the request, 88 no VM answers.
    /// docs/api.md.
    Ctl(crate::ctl::CtlArgs),
    /// Show recovery live: boot the bundled guest with a workload that runs until you quit, on
    /// a terminal dashboard (servers, requests/s, crashes, restores, events, console). Keys: ↑/↓
    /// select a server, c crash it, k next fault kind, s fault storm, p pause/resume, q quit.
    /// Without a terminal (or with --no-tui) it prints the events as lines. docs/demo.md.
    Demo(crate::demo::DemoArgs),
}

/// `vmm fault-sites` arguments.
#[derive(Debug, Args)]
pub struct FaultSitesArgs {
    /// A server of the image, or `kernel`.
    pub target: String,
    /// A fault kind the VMM injects (text-flip, nop, flip-branch, drop-branch, corrupt-src,
    /// corrupt-dst, corrupt-ptr, no-store, state-flip, stack-flip, reg-flip, msg-corrupt).
    pub kind: String,
    /// Guest ELF image (default: the bundled demo guest).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// Sites listed after the count (0: the count only).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub limit: usize,
}

/// `vmm bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Boot-to-exit wall time, CPU time and peak RSS of fresh `vmm run` processes booting a
    /// trivial plain ELF (one console line, then an i8042 reset), as the Firecracker anchor in
    /// docs/benchmarks.md was measured.
    Boot(BenchBootArgs),
    /// Boundary snapshots and recoveries on the demo guest, one load client per server:
    /// snapshot_ipc_ratio, recovery_us_p50/p99 per fault kind, peer_throughput_ratio (and its
    /// curve over crash rates), with the KVM backend. Results go in docs/benchmarks.md.
    Recovery(BenchRecoveryArgs),
    /// Campaign speed on this machine: cases/hour and faults/hour of a real `vmm fleet`
    /// campaign, the runner's overhead, and where a case's time goes (VMM set-up, guest boot,
    /// workload, teardown), with the KVM backend. Results go in docs/benchmarks.md.
    Fleet(crate::fleet::command::FleetBenchArgs),
}

/// `vmm bench recovery` flags.
#[derive(Debug, Args)]
pub struct BenchRecoveryArgs {
    /// Rounds of throughput samples (each round runs every configuration once), 1 to 100.
    #[arg(long, default_value_t = 3)]
    pub rounds: u64,
    /// Seconds each client runs per throughput sample, 1 to 600.
    #[arg(long, value_name = "SECS", default_value_t = 4)]
    pub seconds: u64,
    /// Also write the report (every sample and the figures) to FILE as JSON, atomically.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `vmm bench boot` flags.
#[derive(Debug, Args)]
pub struct BenchBootArgs {
    /// Number of measured boots (one extra warm-up boot is not counted), 1 to 10000.
    #[arg(long, default_value_t = 30)]
    pub runs: u64,
    /// Guest RAM per boot, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    pub memory: u64,
    /// Also write the report (every sample and the statistics) to FILE as JSON, atomically.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `vmm run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest ELF image (default: the bundled demo guest).
    pub image: Option<PathBuf>,
    /// Guest RAM in MiB, 1 to 3072 [default: 128].
    #[arg(long, value_name = "MIB", allow_negative_numbers = true)]
    pub memory: Option<u64>,
    /// TOML config file; its [vm] table may set image, memory_mib, timeout_secs, cmdline and
    /// strict_io (flags on the command line win over it), its [recovery] table the servers'
    /// recovery policies (docs/policies.md; examples in docs/examples/).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Stop the guest after this many seconds (decimals allowed; above 0, at most 10000000);
    /// exit status 83.
    #[arg(long, value_name = "SECS", allow_negative_numbers = true, value_parser = crate::bounds::seconds)]
    pub timeout: Option<f64>,
    /// Plain images: stop the VM on an access to an unknown I/O port or unmapped address, instead
    /// of ignoring it (reads return all ones) and counting it. Our images are always strict.
    #[arg(long)]
    pub strict_io: bool,
    /// Print nothing of vmm's own on stderr except errors (no boot line, no line per crash and
    /// recovery, no final line).
    #[arg(short, long)]
    pub quiet: bool,
    /// Inject fault KIND into SERVER while it handles its N-th message (repeatable; `@N+P`:
    /// again every P messages). SERVER: a server of the image (the bundled guest's: names, kv,
    /// fs, bank, crasher, queue), or `kernel` (text-flip, state-flip; N counts every task's
    /// messages). KIND: null-deref, illegal-insn, div-zero, panic, hang, stack-overflow,
    /// corrupt-state, gp, text-flip, nop, flip-branch, drop-branch, corrupt-src, corrupt-dst,
    /// corrupt-ptr, no-store, state-flip, stack-flip, reg-flip, msg-corrupt. The first eight
    /// the server executes itself (a crash its policy recovers: default, roll back to its last
    /// boundary); the others the VMM injects from outside (an instruction rewritten, a bit of
    /// its state, stack or registers flipped) and the run is classified by what followed.
    /// Modifiers, in any order: :after-send (a crash after the handler, on the first message
    /// from the N-th that sent to a peer), :transient (default) or :permanent (a code fault
    /// undone after its message, or not; the kernel's stay), :at=ADDR, :bit=B (text-flip 0-119,
    /// state-flip and stack-flip 0-7, reg-flip and msg-corrupt 0-63, corrupt-ptr 0-31), :reg=R
    /// (rax ... r15): pin what --fault-seed would pick. One fault per server per message; not
    /// with --no-recovery. Each run is classified (vmm-error, propagated, silent-corruption,
    /// timeout, fail-stop, recovered-lossy, recovered, masked, no-effect, not-activated,
    /// not-triggered, worst first); a fault that tests nothing gets a warning.
    /// docs/fault-injection.md has the model and the grammar.
    #[arg(long = "fault", value_name = "SERVER:KIND@N[+P][:MODIFIER]...")]
    pub faults: Vec<String>,
    /// Seed for what the --fault specs leave open (which instruction, bit, register); the same
    /// image, specs and seed give the same concrete faults [default: 1].
    #[arg(long, value_name = "S")]
    pub fault_seed: Option<u64>,
    /// Write a JSON report of the run to FILE (atomically): exit status, backend, workload
    /// figures, per-server crashes/restores/generation, every recovery; with --fault, each
    /// injection (the concrete fault and its replay spec, activation, detection, class) and the
    /// run's classification. Every field: docs/recovery.md.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Serve the control API on a Unix socket at PATH while the VM runs (HTTP/1.1, JSON;
    /// owner-only; refused if PATH holds anything but a stale socket; removed at exit): `GET
    /// /vm`, `PATCH /vm` with `{"state": "Paused"|"Resumed"}`, `PUT /actions` with
    /// `{"action_type": "Stop"}`, `GET /servers`, `PUT /servers/NAME/fault` with `{"kind":
    /// "panic"}` (crash it at its next message), `DELETE /servers/NAME/fault` (cancel it), `GET
    /// /events` (a JSON line per fault, injection and recovery), `GET /metrics` (OpenMetrics).
    /// `vmm ctl PATH ...` is its client. docs/api.md, docs/openapi.json.
    #[arg(long, value_name = "PATH")]
    pub api_sock: Option<PathBuf>,
    /// Serve the recovery metrics as OpenMetrics text at http://ADDR/metrics while the VM runs
    /// (e.g. 127.0.0.1:9464, or port 0 for one the system picks: the boot lines say which; a
    /// loopback address unless --metrics-public). docs/api.md.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Allow --metrics-addr to be an address other machines can reach.
    #[arg(long, requires = "metrics_addr")]
    pub metrics_public: bool,
    /// Neither snapshot nor recover servers: a crashed server stays stopped.
    #[arg(long)]
    pub no_recovery: bool,
    /// Snapshot versions kept per server, 2 to 1024.
    #[arg(long, value_name = "N", default_value_t = recovery::DEFAULT_VERSIONS)]
    pub snapshot_versions: usize,
    /// Hash every other server's state arena around each restore and record in the report
    /// whether any byte changed outside the servers the recovery restored (`peers_intact`);
    /// costs two passes over the other servers' arenas per recovery (not counted in its
    /// `latency_us`).
    #[arg(long)]
    pub check_isolation: bool,
    /// The guest's command line (written into boot-info / the zero page), after `--`.
    #[arg(last = true, value_name = "GUEST_ARGS")]
    pub guest_args: Vec<String>,
}

/// Runs `vmm` with the process arguments; returns the exit status.
pub fn main() -> i32 {
    main_with(std::env::args_os())
}

/// Runs `vmm` with these arguments; returns the exit status.
pub fn main_with(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> i32 {
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: not errors.
            let _ = e.print();
            return 0;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // Plain `vmm` (or `vmm bench`): one line of what there is to do, not the whole help.
            eprintln!(
                "vmm: a command is needed: {} (see {})",
                commands_of(<Cli as clap::CommandFactory>::command(), &args).join(", "),
                help_for(<Cli as clap::CommandFactory>::command(), &args)
            );
            return i32::from(status::USAGE);
        }
        Err(e) => {
            eprintln!(
                "vmm: {} (see {})",
                usage_error_line(&e),
                help_for(<Cli as clap::CommandFactory>::command(), &args)
            );
            return i32::from(status::USAGE);
        }
    };
    // Files written at the end of a long run are checked before it starts.
    let outputs = match &cli.command {
        Command::Run(args) => (args.report.as_deref(), "--report"),
        Command::Bench(BenchCommand::Boot(args)) => (args.json.as_deref(), "--json"),
        Command::Bench(BenchCommand::Recovery(args)) => (args.json.as_deref(), "--json"),
        Command::Bench(BenchCommand::Fleet(args)) => (args.json.as_deref(), "--json"),
        Command::FaultSites(_) => (None, ""),
        Command::Ctl(_) => (None, ""),
        Command::Demo(args) => (args.report.as_deref(), "--report"),
        Command::Fleet(cmd) => match crate::fleet::command::outputs(cmd) {
            Some((path, flag)) => (Some(path), flag),
            None => (None, ""),
        },
    };
    if let (Some(path), flag) = outputs
        && let Err(e) = crate::files::check_output(path)
    {
        eprintln!("vmm: {flag} {e}");
        return i32::from(status::USAGE);
    }
    match cli.command {
        Command::Run(args) => run(args),
        Command::Bench(BenchCommand::Boot(args)) => bench_boot(args),
        Command::Bench(BenchCommand::Recovery(args)) => bench_recovery(args),
        Command::Bench(BenchCommand::Fleet(args)) => {
            crate::fleet::command::bench(&args, BUNDLED_GUEST)
        }
        Command::FaultSites(args) => fault_sites(args),
        Command::Fleet(cmd) => crate::fleet::command::main(cmd, BUNDLED_GUEST),
        Command::Ctl(args) => crate::ctl::main(&args),
        Command::Demo(args) => crate::demo::main(args),
    }
}

/// Why a not-triggered fault tested nothing, as a warning.
fn untested(i: &faults::record::Injection) -> String {
    match &i.note {
        Some(note) => format!(
            "--fault {} corrupted nothing at message {} ({note}), so that firing tested nothing",
            i.spec, i.message
        ),
        None if i.target == faults::spec::KERNEL => format!(
            "--fault {} never fired: the guest's message {} never came, so it tested nothing",
            i.spec, i.message
        ),
        None => format!(
            "--fault {} never fired: {}'s message {} never came, so it tested nothing",
            i.spec, i.target, i.message
        ),
    }
}

/// The faults to inject, checked for form: a malformed spec, or flags that do not go together,
/// are usage errors (64); whether the specs fit the image is checked later (66).
fn fault_options(args: &RunArgs) -> Result<FaultOptions, String> {
    let specs = args
        .faults
        .iter()
        .map(|f| FaultSpec::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if args.no_recovery && !specs.is_empty() {
        return Err(
            "--fault needs recovery (a fault is classified by how it was detected and recovered): drop --no-recovery"
                .to_owned(),
        );
    }
    if args.fault_seed.is_some() && specs.is_empty() {
        return Err(
            "--fault-seed without --fault: the seed picks what a --fault spec leaves open"
                .to_owned(),
        );
    }
    Ok(FaultOptions {
        specs,
        seed: args.fault_seed.unwrap_or(faults::DEFAULT_SEED),
    })
}

/// The recovery engine's options from the command line.
fn recovery_options(args: &RunArgs) -> Result<RecoveryOptions, String> {
    if !(recovery::MIN_VERSIONS..=recovery::MAX_VERSIONS).contains(&args.snapshot_versions) {
        return Err(recovery::RecoveryError::Versions(args.snapshot_versions).to_string());
    }
    Ok(RecoveryOptions {
        enabled: !args.no_recovery,
        versions: args.snapshot_versions,
        check_isolation: args.check_isolation,
        log_events: !args.quiet,
    })
}

fn run(args: RunArgs) -> i32 {
    let report_path = args.report.clone();
    let (status, result) = run_vm(args);
    if let Some(path) = report_path {
        let report = run_report(status, result.as_ref());
        if let Err(e) = bench::write_json_atomic(&path, &report) {
            eprintln!("vmm: report: {e}");
            if status == 0 {
                return i32::from(status::VMM_INTERNAL);
            }
        }
    }
    status
}

/// The `--report` contents of a run that ended with `status` (`result`: how far it got).
fn run_report(status: i32, result: Result<&vm::RunReport, &String>) -> report::RunReport {
    let mut r = report::RunReport {
        exit_status: status,
        backend: None,
        message: None,
        elapsed_ms: None,
        workload: None,
        workload_so_far: None,
        servers: Vec::new(),
        recoveries: Vec::new(),
        snapshots: crate::recovery::report::SnapshotSummary::default(),
        misdeclared_requests: Vec::new(),
        faults: 0,
        injections: Vec::new(),
        classification: None,
    };
    match result {
        Ok(run) => {
            r.backend = Some(run.backend.name());
            r.message = run.message.clone();
            r.elapsed_ms = Some(run.elapsed.as_secs_f64() * 1e3);
            r.workload = run.workload.map(WorkloadFigures::from);
            r.workload_so_far = run.workload_so_far.map(WorkloadFigures::from);
            r.faults = run.faults;
            r.injections = run.injections.clone();
            r.classification = run.classification;
            if let Some(summary) = run.recovery.clone() {
                r.servers = summary.servers;
                r.recoveries = summary.recoveries;
                r.snapshots = summary.snapshots;
                r.misdeclared_requests = summary.misdeclared_requests;
            }
        }
        Err(message) => r.message = Some(message.clone()),
    }
    r
}

/// Runs the VM of `args`; its exit status, and its report or the error line.
fn run_vm(args: RunArgs) -> (i32, Result<vm::RunReport, String>) {
    let quiet = args.quiet;
    let config_path = args.config.clone();
    let config_error = |e: String| {
        eprintln!("vmm: {e}");
        (i32::from(status::CONFIG), Err(e))
    };
    let faults = match fault_options(&args) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("vmm: {e}");
            return (i32::from(status::USAGE), Err(e));
        }
    };
    let recovery = match recovery_options(&args) {
        Ok(r) => r,
        Err(e) => return config_error(e),
    };
    let control = crate::api::Control {
        api_sock: args.api_sock.clone(),
        metrics_addr: args.metrics_addr,
        metrics_public: args.metrics_public,
    };
    let mut config = match resolve(args) {
        Ok(c) => c,
        Err(e) => return config_error(e.to_string()),
    };
    // A corrupted kernel may never stop the VM: runs that fault it get a timeout.
    if config.timeout.is_none()
        && faults
            .specs
            .iter()
            .any(|s| s.target == faults::Target::Kernel)
    {
        config.timeout = Some(faults::KERNEL_FAULT_TIMEOUT);
    }
    match vm::run(&config, BUNDLED_GUEST, quiet, &recovery, &faults, &control) {
        Ok(report) => {
            if let Some(m) = &report.message {
                eprintln!("vmm: {m}");
            }
            if report.console_lost > 0 {
                // Even with -q: the guest's output is gone, and nothing else says so.
                eprintln!(
                    "vmm: warning: {} bytes of the guest's console output were lost: stdout did not take them (full or closed)",
                    report.console_lost
                );
            }
            if report.unknown_pio + report.unknown_mmio > 0 {
                eprintln!(
                    "vmm: ignored {} accesses to unknown I/O ports and {} to unmapped addresses",
                    report.unknown_pio, report.unknown_mmio
                );
            }
            // Even with -q: a fault that tested nothing, and nothing else says so.
            for i in report
                .injections
                .iter()
                .filter(|i| i.class == Class::NotTriggered)
            {
                eprintln!("vmm: warning: {}", untested(i));
            }
            if !quiet {
                eprintln!(
                    "vmm: exit status {} after {:.1} ms (KVM backend {}){}",
                    report.status,
                    report.elapsed.as_secs_f64() * 1e3,
                    report.backend.name(),
                    guest_figures(&report)
                );
            }
            (i32::from(report.status), Ok(report))
        }
        Err(e) => {
            let line = match (&e, &config_path) {
                // A [recovery] table that does not fit the image: name the file.
                (vm::RunError::Policy(_), Some(path)) => format!("{}: {e}", path.display()),
                _ => e.to_string(),
            };
            eprintln!("vmm: {line}");
            (i32::from(e.status()), Err(line))
        }
    }
}

fn fault_sites(args: FaultSitesArgs) -> i32 {
    let fail = |status: u8, line: String| {
        eprintln!("vmm: fault-sites: {line}");
        i32::from(status)
    };
    let Some(kind) = abi::fault::FaultKind::from_name(&args.kind) else {
        return fail(
            status::USAGE,
            format!(
                "unknown fault kind {:?}, expected one the VMM injects: {}",
                args.kind,
                abi::fault::FaultKind::ALL
                    .iter()
                    .filter(|k| k.executor() == abi::fault::Executor::Vmm)
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    };
    let target = if args.target == faults::spec::KERNEL {
        faults::Target::Kernel
    } else {
        faults::Target::Server(args.target.clone())
    };
    let overrides = Overrides {
        image: args.image,
        ..Overrides::default()
    };
    let config = match VmConfig::resolve(overrides, None) {
        Ok(c) => c,
        Err(e) => return fail(status::CONFIG, e.to_string()),
    };
    let image = match vm::load_image(&config, BUNDLED_GUEST) {
        Ok(i) => i,
        Err(e) => return fail(status::IMAGE, e.to_string()),
    };
    let layout = match crate::layout::plan(&image, config.memory_bytes()) {
        Ok(l) => l,
        Err(e) => return fail(status::IMAGE, e.to_string()),
    };
    if layout.servers.is_empty() {
        return fail(
            status::USAGE,
            format!(
                "{}: the image declares no servers (a plain ELF)",
                image.label
            ),
        );
    }
    match faults::sites::listing(&image, &layout, &target, kind, args.limit) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => fail(status::USAGE, e),
    }
}

fn bench_boot(args: BenchBootArgs) -> i32 {
    // A host that cannot run VMs is said at once (67), not after the first child fails.
    if let Err(e) = vm::open_kvm() {
        eprintln!("vmm: {e}");
        return i32::from(status::HOST);
    }
    if let Err(e) = crate::bounds::within("--runs", args.runs, 1..=10_000) {
        eprintln!("vmm: {e}");
        return i32::from(status::CONFIG);
    }
    if !(abi::layout::MIN_MEMORY_MIB..=abi::layout::MAX_MEMORY_MIB).contains(&args.memory) {
        eprintln!("vmm: {}", crate::config::ConfigError::Memory(args.memory));
        return i32::from(status::CONFIG);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("vmm: cannot find the vmm binary to benchmark: {e}");
            return i32::from(status::VMM_INTERNAL);
        }
    };
    let backend = crate::backend::detect();
    let result = bench::boot(&exe, args.runs as usize, args.memory, backend).and_then(|report| {
        print!("{}", bench::summary(&report));
        match &args.json {
            Some(path) => bench::write_json_atomic(path, &report),
            None => Ok(()),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vmm: bench boot: {e}");
            i32::from(status::VMM_INTERNAL)
        }
    }
}

fn bench_recovery(args: BenchRecoveryArgs) -> i32 {
    // A host that cannot run VMs is said at once (67), not after the first child fails.
    if let Err(e) = vm::open_kvm() {
        eprintln!("vmm: {e}");
        return i32::from(status::HOST);
    }
    for (flag, value, range) in [
        ("--rounds", args.rounds, 1..=100),
        ("--seconds", args.seconds, 1..=600),
    ] {
        if let Err(e) = crate::bounds::within(flag, value, range) {
            eprintln!("vmm: {e}");
            return i32::from(status::CONFIG);
        }
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("vmm: cannot find the vmm binary to benchmark: {e}");
            return i32::from(status::VMM_INTERNAL);
        }
    };
    let plan = recovery::bench::Plan {
        rounds: args.rounds as usize,
        ticks: args.seconds * 100,
        latency_ticks: 300,
    };
    let mut command = format!(
        "vmm bench recovery --rounds {} --seconds {}",
        args.rounds, args.seconds
    );
    if let Some(path) = &args.json {
        command += &format!(" --json {}", path.display());
    }
    let backend = crate::backend::detect();
    let result = recovery::bench::run(&exe, plan, backend, command).and_then(|report| {
        print!("{}", recovery::bench::summary(&report));
        match &args.json {
            Some(path) => recovery::bench::write_json(path, &report),
            None => Ok(()),
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vmm: bench recovery: {e}");
            i32::from(status::VMM_INTERNAL)
        }
    }
}

/// `; workload ops=N errors=E retries=R lost=L mismatches=M; 1 fault` for the final line.
fn guest_figures(report: &vm::RunReport) -> String {
    let mut s = String::new();
    let figures = |label: &str, w: &abi::monitor::WorkloadReport| {
        format!(
            "; {label} ops={} errors={} retries={} lost={} mismatches={}",
            w.ops, w.errors, w.retries, w.lost, w.mismatches
        )
    };
    if let Some(w) = &report.workload {
        s.push_str(&figures("workload", w));
    } else if let Some(w) = report.workload_so_far.as_ref().filter(|w| w.ops > 0) {
        s.push_str(&figures("workload so far", w));
    }
    if report.faults > 0 {
        let plural = if report.faults == 1 { "" } else { "s" };
        s.push_str(&format!("; {} task fault{plural}", report.faults));
        if let Some(r) = &report.recovery {
            let recovered = r
                .recoveries
                .iter()
                .filter(|e| e.latency_us.is_some())
                .count();
            s.push_str(&format!(", {recovered} recovered"));
        }
    }
    if let Some(class) = report.classification {
        s.push_str(&format!("; classification {}", class.name()));
    }
    s
}

fn resolve(args: RunArgs) -> Result<VmConfig, crate::config::ConfigError> {
    let file = match &args.config {
        Some(path) => Some((
            ConfigFile::load(path)?,
            path.parent().map(PathBuf::from).unwrap_or_default(),
        )),
        None => None,
    };
    let overrides = Overrides {
        image: args.image,
        memory_mib: args.memory,
        timeout_secs: args.timeout,
        guest_args: args.guest_args,
        strict_io: args.strict_io,
    };
    VmConfig::resolve(overrides, file.as_ref().map(|(f, dir)| (f, dir.as_path())))
}

#[cfg(test)]
mod tests;
