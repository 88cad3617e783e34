//! `vmm bench fleet`: how fast campaigns go on this machine. A real campaign (the runner, child
//! `vmm run`s, `--jobs` at once) gives cases/hour, faults/hour and the runner's overhead (the
//! campaign's wall x jobs, less the sum of the cases' walls, over the former); a few cases run
//! one at a time, their console lines timestamped as they arrive, give the breakdown of a case
//! (VMM set-up to the kernel's first line, guest boot to the first request, the workload,
//! teardown to the process's exit). Measured, never asserted.

use super::FleetError;
use super::campaign::Campaign;
use super::cases::case;
use super::record::Build;
use super::runner::{self, RunOptions};
use super::shard::Shard;
use crate::faults::classify::Class;
use abi::Backend;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Cases in the campaign.
    pub cases: u64,
    /// Cases at once.
    pub jobs: usize,
    /// The workload's requests per case.
    pub ops: u64,
    /// Cases timed one at a time for the breakdown.
    pub samples: u64,
}

/// The median phases of a case, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Breakdown {
    /// Process start to the kernel's first console line (the VMM's set-up).
    pub vmm_setup_ms: f64,
    /// The kernel's first line to the workload's first request (guest boot).
    pub guest_boot_ms: f64,
    /// The workload, to its last line.
    pub workload_ms: f64,
    /// The workload's last line to the process's exit (report, teardown).
    pub teardown_ms: f64,
    /// The whole case.
    pub case_ms: f64,
}

/// The figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The command that made them.
    pub command: String,
    /// The KVM backend.
    pub backend: &'static str,
    /// Cases, jobs, ops.
    pub cases: u64,
    /// Cases at once.
    pub jobs: usize,
    /// Requests per case.
    pub ops: u64,
    /// The campaign's wall time, in seconds.
    pub wall_s: f64,
    /// The sum of the cases' wall times, in seconds.
    pub case_walls_s: f64,
    /// Cases per hour.
    pub cases_per_hour: f64,
    /// Faults that fired (not `not-triggered`) per hour.
    pub faults_per_hour: f64,
    /// (wall x jobs - the cases' walls) / (wall x jobs).
    pub runner_overhead: f64,
    /// A case's phases (medians of the samples).
    pub breakdown: Breakdown,
}

/// The benchmark's campaign: kv and fs, a kind they execute and two the VMM injects, over the
/// messages an `ops` workload gives them.
fn campaign(plan: &Plan) -> Campaign {
    let text = format!(
        r#"[campaign]
name = "bench"
seed = 1
cases = {}
timeout_secs = 60
guest_args = ["ops={}"]
[[faults]]
servers = ["kv", "fs"]
kinds = ["panic", "state-flip", "text-flip"]
messages = [1, {}]
"#,
        plan.cases,
        plan.ops,
        (plan.ops / 5).max(1)
    );
    Campaign::parse(&text, Path::new(".")).unwrap_or_else(|e| unreachable!("{e}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Times one case's phases from its console lines.
fn sample(exe: &Path, campaign: &Campaign, index: u64) -> Result<[f64; 5], FleetError> {
    let c = case(campaign, index);
    let report = tempfile::NamedTempFile::new().map_err(|e| FleetError::Usage(e.to_string()))?;
    let mut cmd = runner::case_command(exe, campaign, &c, report.path());
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| FleetError::Usage(format!("cannot start {}: {e}", exe.display())))?;
    let ms = |t: Instant| t.duration_since(started).as_secs_f64() * 1e3;
    let (mut kernel, mut first, mut last) = (None, None, None);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let now = Instant::now();
            if line.starts_with("kernel:") && kernel.is_none() {
                kernel = Some(ms(now));
            } else if line.starts_with("workload: seed") {
                first = Some(ms(now));
            } else if line.starts_with("workload: ops=") {
                last = Some(ms(now));
            }
        }
    }
    let _ = child.wait();
    let end = ms(Instant::now());
    match (kernel, first, last) {
        (Some(k), Some(f), Some(l)) => Ok([k, f - k, l - f, end - l, end]),
        _ => Err(FleetError::Usage(format!(
            "case {index} printed no kernel or workload lines (is KVM usable?)"
        ))),
    }
}

/// Runs the benchmark with the `vmm` at `exe`.
pub fn run(
    exe: &Path,
    plan: Plan,
    backend: Backend,
    build: &Build,
    command: String,
) -> Result<Report, FleetError> {
    let campaign = campaign(&plan);
    let mut phases: [Vec<f64>; 5] = Default::default();
    for i in 0..plan.samples {
        let s = sample(exe, &campaign, i)?;
        for (v, x) in phases.iter_mut().zip(s) {
            v.push(x);
        }
    }
    let dir = tempfile::tempdir().map_err(|e| FleetError::Usage(e.to_string()))?;
    let opts = RunOptions {
        out: dir.path().join("results"),
        jobs: plan.jobs,
        shard: Shard::ALL,
        resume: false,
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let earlier = runner::prepare(&campaign, &opts)?;
    let outcome = runner::run(&campaign, &opts, earlier, exe, build, &stop)?;
    let wall = outcome.wall.as_secs_f64();
    let case_walls: f64 = outcome.records.iter().map(|r| r.duration_s).sum();
    let fired = outcome
        .records
        .iter()
        .filter(|r| r.classification != Class::NotTriggered)
        .count() as f64;
    let capacity = wall * plan.jobs as f64;
    let [setup, boot, workload, teardown, whole] = phases.map(median);
    Ok(Report {
        command,
        backend: backend.name(),
        cases: plan.cases,
        jobs: plan.jobs,
        ops: plan.ops,
        wall_s: wall,
        case_walls_s: case_walls,
        cases_per_hour: outcome.records.len() as f64 * 3600.0 / wall,
        faults_per_hour: fired * 3600.0 / wall,
        runner_overhead: (capacity - case_walls) / capacity,
        breakdown: Breakdown {
            vmm_setup_ms: setup,
            guest_boot_ms: boot,
            workload_ms: workload,
            teardown_ms: teardown,
            case_ms: whole,
        },
    })
}

/// The report for people.
pub fn summary(r: &Report) -> String {
    let b = &r.breakdown;
    format!(
        "{}\nKVM backend: {}\n{} cases (ops={}), {} at once: {:.1} s wall\n\
         cases/hour:     {:.0}\nfaults/hour:    {:.0} (faults that fired)\n\
         runner overhead: {:.1}% (wall x jobs {:.1} s, cases {:.1} s)\n\
         a case (median of samples run alone): {:.1} ms = VMM set-up {:.1} + guest boot {:.1} + workload {:.1} + teardown {:.1}\n",
        r.command,
        r.backend,
        r.cases,
        r.ops,
        r.jobs,
        r.wall_s,
        r.cases_per_hour,
        r.faults_per_hour,
        r.runner_overhead * 100.0,
        r.wall_s * r.jobs as f64,
        r.case_walls_s,
        b.case_ms,
        b.vmm_setup_ms,
        b.guest_boot_ms,
        b.workload_ms,
        b.teardown_ms
    )
}
