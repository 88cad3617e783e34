//! `vmm fleet ...` on the command line: the flags, the checks made before a campaign starts
//! (the campaign against its image, the output directory, the shard), the build identity every
//! record carries, Ctrl-C, and the exit status by verdict. One line on stderr per error.

use super::FleetError;
use super::campaign::Campaign;
use super::record::Build;
use super::results::{Results, RunInfo, add_run};
use super::runner::{self, RunOptions};
use super::shard::{self, Shard};
use super::summary::{Summary, Verdict};
use crate::config::{ConfigFile, Overrides, VmConfig};
use crate::faults::spec::KERNEL;
use abi::status;
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// `vmm fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Run a campaign: each case a fresh VM (a child `vmm run`) with one fault drawn from the
    /// campaign file, at most --jobs at once, recorded as a line of DIR/cases.jsonl when it
    /// ends; then DIR/report.md, report.json and plots. Ctrl-C stops cleanly and keeps what
    /// finished (--resume goes on). Exit status by verdict: 0 clean, 85 bad cases found, 86
    /// incomplete. docs/fleet.md.
    Run(FleetRunArgs),
    /// Rebuild DIR's report.json, report.md, classes.svg and latency.svg from its cases (exit
    /// status by verdict, as `fleet run`).
    Report(FleetReportArgs),
    /// Merge the results directories of a campaign's shards (or partial runs) into a new one:
    /// cases deduplicated by index, latency histograms added exactly, cases no input recorded
    /// reported missing; different campaigns or builds are refused.
    Merge(FleetMergeArgs),
    /// Run one recorded case again and say whether it reproduced (same concrete fault,
    /// classification and signature): exit 0 if it did, 87 if not.
    Replay(FleetReplayArgs),
}

/// `vmm fleet run` flags.
#[derive(Debug, Args)]
pub struct FleetRunArgs {
    /// The campaign file (TOML; docs/fleet.md, examples in docs/examples/).
    pub campaign: PathBuf,
    /// Results directory [default: fleet-NAME, or fleet-NAME-shard-I-of-N for a shard].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Cases run at once, 1 to 1024 [default: the machine's cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<u64>,
    /// Run only the cases whose index mod N is I; `auto` takes I and N from a Kubernetes
    /// Indexed Job (JOB_COMPLETION_INDEX, JOB_COMPLETIONS) or a Slurm array
    /// (SLURM_ARRAY_TASK_ID, _MIN, _STEP, _COUNT).
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Go on with the results already in DIR (the same campaign file and build): skip the
    /// recorded cases (a cut last line is dropped).
    #[arg(long)]
    pub resume: bool,
    /// No progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

/// `vmm fleet report` arguments.
#[derive(Debug, Args)]
pub struct FleetReportArgs {
    /// A results directory.
    pub dir: PathBuf,
}

/// `vmm fleet merge` arguments.
#[derive(Debug, Args)]
pub struct FleetMergeArgs {
    /// The results directories to merge.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// The new directory to merge into (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `vmm fleet replay` arguments.
#[derive(Debug, Args)]
pub struct FleetReplayArgs {
    /// A results directory.
    pub dir: PathBuf,
    /// The case's index.
    pub case: u64,
}

/// `vmm bench fleet` flags.
#[derive(Debug, Args)]
pub struct FleetBenchArgs {
    /// Cases in the benchmark's campaign (kv and fs; panic, state-flip, text-flip), 1 to
    /// 100000.
    #[arg(long, default_value_t = 200)]
    pub cases: u64,
    /// Cases at once, 1 to 1024 [default: the machine's cores].
    #[arg(long, value_name = "N")]
    pub jobs: Option<u64>,
    /// The workload's requests per case, 1 to 1000000.
    #[arg(long, default_value_t = 200)]
    pub ops: u64,
    /// Cases run alone, their console timestamped, for the breakdown of a case, 1 to 1000.
    #[arg(long, default_value_t = 10)]
    pub samples: u64,
    /// Also write the figures to FILE as JSON, atomically.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `vmm bench fleet`: returns the exit status.
pub fn bench(args: &FleetBenchArgs, bundled: &[u8]) -> i32 {
    use crate::bounds::within;
    let checked = within("--cases", args.cases, 1..=100_000)
        .and_then(|_| within("--ops", args.ops, 1..=1_000_000))
        .and_then(|_| within("--samples", args.samples, 1..=1000))
        .and_then(|_| args.jobs.map_or(Ok(0), |j| within("--jobs", j, 1..=1024)));
    if let Err(e) = checked {
        eprintln!("vmm: bench fleet: {e}");
        return i32::from(status::CONFIG);
    }
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        |j| j as usize,
    );
    let mut command = format!(
        "vmm bench fleet --cases {} --jobs {jobs} --ops {} --samples {}",
        args.cases, args.ops, args.samples
    );
    if let Some(p) = &args.json {
        command += &format!(" --json {}", p.display());
    }
    let result = (|| {
        check_host()?;
        let exe = std::env::current_exe()
            .map_err(|e| FleetError::Usage(format!("cannot find the vmm executable: {e}")))?;
        let build = bundled_build(bundled);
        let plan = super::bench::Plan {
            cases: args.cases,
            jobs,
            ops: args.ops,
            samples: args.samples,
        };
        let report = super::bench::run(&exe, plan, crate::backend::detect(), &build, command)?;
        print!("{}", super::bench::summary(&report));
        if let Some(path) = &args.json {
            let mut json = serde_json::to_vec_pretty(&report).unwrap_or_default();
            json.push(b'\n');
            crate::files::write_output(path, &json)
                .map_err(|e| FleetError::dir(path, e.to_string()))?;
        }
        Ok::<(), FleetError>(())
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vmm: bench fleet: {e}");
            i32::from(e.status())
        }
    }
}

/// The build identity of cases that boot the bundled guest.
fn bundled_build(bundled: &[u8]) -> Build {
    Build {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: env!("VMM_GIT_COMMIT").to_owned(),
        image_sha256: sha256_hex(bundled),
        config_sha256: None,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The output paths a subcommand writes at the end, checked before it starts.
pub fn outputs(cmd: &FleetCommand) -> Option<(&Path, &'static str)> {
    match cmd {
        FleetCommand::Merge(a) => Some((a.out.as_path(), "--out")),
        _ => None,
    }
}

/// Runs `cmd`; `bundled` is the guest built into this binary. Returns the exit status.
pub fn main(cmd: FleetCommand, bundled: &[u8]) -> i32 {
    let result = match cmd {
        FleetCommand::Run(args) => run(args, bundled),
        FleetCommand::Report(args) => report(&args.dir),
        FleetCommand::Merge(args) => merge(&args),
        FleetCommand::Replay(args) => replay(&args, bundled),
    };
    match result {
        Ok(status) => i32::from(status),
        Err(e) => {
            eprintln!("vmm: fleet: {e}");
            i32::from(e.status())
        }
    }
}

/// The exit status of a verdict.
pub fn verdict_status(v: Verdict) -> u8 {
    match v {
        Verdict::Clean => 0,
        Verdict::BadCases => status::FLEET_BAD,
        Verdict::Incomplete => status::FLEET_INCOMPLETE,
    }
}

/// The image a campaign's cases boot, checked: it loads, and every server the campaign names
/// is one of its servers. Returns the build identity of the cases.
fn check_against_image(
    campaign: &Campaign,
    path: &Path,
    bundled: &[u8],
) -> Result<Build, FleetError> {
    let config_error =
        |e: String| FleetError::Config(format!("{}: [campaign] config: {e}", path.display()));
    let (file, config_sha256) = match &campaign.config {
        Some(p) => {
            let bytes = crate::files::read_regular(p, 1 << 20)
                .map_err(|e| config_error(format!("{}: {e}", p.display())))?;
            let loaded = ConfigFile::load(p).map_err(|e| config_error(e.to_string()))?;
            (
                Some((loaded, p.parent().map(PathBuf::from).unwrap_or_default())),
                Some(sha256_hex(&bytes)),
            )
        }
        None => (None, None),
    };
    let overrides = Overrides {
        image: campaign.image.clone(),
        memory_mib: campaign.memory_mib,
        ..Overrides::default()
    };
    let config = VmConfig::resolve(overrides, file.as_ref().map(|(f, d)| (f, d.as_path())))
        .map_err(|e| config_error(e.to_string()))?;
    let image = crate::vm::load_image(&config, bundled)
        .map_err(|e| FleetError::Image(format!("{}: [campaign] image: {e}", path.display())))?;
    let layout = crate::layout::plan(&image, config.memory_bytes())
        .map_err(|e| FleetError::Image(format!("{}: [campaign] image: {e}", path.display())))?;
    let servers: Vec<&str> = layout
        .servers
        .iter()
        .filter(|s| !s.app)
        .map(|s| s.name.as_str())
        .collect();
    for (i, set) in campaign.faults.iter().enumerate() {
        for s in &set.servers {
            if s != KERNEL && !servers.contains(&s.as_str()) {
                return Err(FleetError::Image(format!(
                    "{}: [[faults]] {}: servers: {s:?} is not a server of {} (it has {})",
                    path.display(),
                    i + 1,
                    image.label,
                    servers.join(", ")
                )));
            }
        }
    }
    Ok(Build {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: env!("VMM_GIT_COMMIT").to_owned(),
        image_sha256: sha256_hex(&image.bytes),
        config_sha256,
    })
}

/// Runs the golden run (the campaign's VM without a fault): the campaign goes on only if it
/// exits 0. Returns its wall time.
fn golden(exe: &Path, campaign: &Campaign, path: &Path) -> Result<f64, FleetError> {
    let seed = super::cases::case(campaign, 0).guest_seed;
    let started = std::time::Instant::now();
    let out = runner::golden_command(exe, campaign, seed)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| FleetError::Usage(format!("cannot run {}: {e}", exe.display())))?;
    let wall = started.elapsed().as_secs_f64();
    if out.status.code() == Some(0) {
        return Ok(wall);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Why: the guest's own complaint if it made one, else vmm's last line.
    let why = stdout
        .lines()
        .find(|l| l.contains("bad command line"))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output");
    Err(FleetError::Config(format!(
        "{}: the golden run (the campaign's VM without a fault) {}: {}; no case run",
        path.display(),
        match out.status.code() {
            Some(s) => format!("exited {s}"),
            None => "was killed".to_owned(),
        },
        crate::devices::monitor::sanitize(why.trim().as_bytes())
    )))
}

fn shard_of(text: Option<&str>) -> Result<Shard, FleetError> {
    match text {
        None => Ok(Shard::ALL),
        Some(t) => shard::parse(t, |name| std::env::var(name).ok()).map_err(FleetError::Usage),
    }
}

/// A host that cannot run VMs is said at once (67), before any case.
fn check_host() -> Result<(), FleetError> {
    crate::vm::open_kvm()
        .map(drop)
        .map_err(|e| FleetError::Host(e.to_string()))
}

fn run(args: FleetRunArgs, bundled: &[u8]) -> Result<u8, FleetError> {
    let campaign = Campaign::load(&args.campaign)?;
    check_host()?;
    let shard = shard_of(args.shard.as_deref())?;
    let build = check_against_image(&campaign, &args.campaign, bundled)?;
    let jobs = match args.jobs {
        Some(j) => {
            crate::bounds::within("--jobs", j, 1..=1024).map_err(FleetError::Config)? as usize
        }
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(if shard == Shard::ALL {
            format!("fleet-{}", campaign.name)
        } else {
            format!(
                "fleet-{}-shard-{}-of-{}",
                campaign.name, shard.index, shard.count
            )
        })
    });
    let exe = std::env::current_exe()
        .map_err(|e| FleetError::Usage(format!("cannot find the vmm executable: {e}")))?;
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| FleetError::Usage(format!("cannot catch signals: {e}")))?;
    }
    let opts = RunOptions {
        out: out.clone(),
        jobs,
        shard,
        resume: args.resume,
        progress: !args.no_progress && std::io::stderr().is_terminal(),
    };
    let golden_s = golden(&exe, &campaign, &args.campaign)?;
    let earlier = runner::prepare(&campaign, &opts)?;
    eprintln!(
        "vmm: fleet: campaign {} ({} cases{}), {jobs} at once, into {}; golden run (no fault) exit 0 in {:.2} s",
        campaign.name,
        campaign.cases,
        if shard == Shard::ALL {
            String::new()
        } else {
            format!(", shard {shard}")
        },
        out.display(),
        golden_s
    );
    let outcome = runner::run(&campaign, &opts, earlier, &exe, &build, &stop)?;
    let campaign_dir = args
        .campaign
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."))
        .canonicalize()
        .unwrap_or_default();
    add_run(
        &out,
        &RunInfo {
            host: runner::hostname(),
            shard: shard.to_string(),
            jobs,
            cases: outcome.ran,
            wall_s: outcome.wall.as_secs_f64(),
            interrupted: outcome.interrupted,
            campaign_dir,
        },
    )?;
    if outcome.interrupted {
        eprintln!(
            "vmm: fleet: stopped; {} of {} cases recorded (--resume goes on)",
            outcome.records.len(),
            outcome.expected
        );
    }
    report(&out)
}

/// Prints a summary's lines on stderr.
fn print_summary(s: &Summary, dir: &Path) {
    let classes: Vec<String> = s
        .classes
        .iter()
        .map(|(c, r)| format!("{} {}", c.name(), r.k))
        .collect();
    eprintln!(
        "vmm: fleet: {} of {} cases: {}",
        s.recorded,
        s.expected,
        if classes.is_empty() {
            "none".to_owned()
        } else {
            classes.join(", ")
        }
    );
    eprintln!(
        "vmm: fleet: coverage {} of {} detected recovered, {}; silent corruption {}",
        s.coverage.k,
        s.coverage.n,
        s.coverage.percent(),
        s.silent_corruption.percent()
    );
    if !s.bad.is_empty() {
        eprintln!(
            "vmm: fleet: {} bad case signature(s); first: {} (case {}): {}",
            s.bad.len(),
            s.bad[0].signature,
            s.bad[0].first_case,
            s.bad[0].replay
        );
    }
    eprintln!(
        "vmm: fleet: verdict {}; report {}",
        s.verdict.name(),
        dir.join("report.md").display()
    );
}

fn report(dir: &Path) -> Result<u8, FleetError> {
    let results = Results::load(dir)?;
    let summary = results.write_reports()?;
    print_summary(&summary, dir);
    Ok(verdict_status(summary.verdict))
}

fn merge(args: &FleetMergeArgs) -> Result<u8, FleetError> {
    let merged = super::merge::merge(&args.dirs, &args.out)?;
    eprintln!(
        "vmm: fleet: merged {} cases from {} directories into {} ({} recorded twice, {} missing)",
        merged.cases,
        args.dirs.len(),
        args.out.display(),
        merged.duplicates,
        merged.missing
    );
    report(&args.out)
}

fn replay(args: &FleetReplayArgs, bundled: &[u8]) -> Result<u8, FleetError> {
    let results = Results::load(&args.dir)?;
    check_host()?;
    let campaign_file = args.dir.join(runner::CAMPAIGN);
    let build = check_against_image(&results.campaign, &campaign_file, bundled)?;
    let exe = std::env::current_exe()
        .map_err(|e| FleetError::Usage(format!("cannot find the vmm executable: {e}")))?;
    let r = super::replay::replay(&args.dir, args.case, &exe, &build)?;
    if r.reproduced {
        eprintln!(
            "vmm: fleet: case {} reproduced: {}",
            args.case,
            r.classification.name()
        );
        Ok(0)
    } else {
        eprintln!(
            "vmm: fleet: case {} did not reproduce: {}",
            args.case,
            r.differences.join("; ")
        );
        Ok(status::FLEET_NOT_REPRODUCED)
    }
}
