//! `vmm bench recovery`: what boundary snapshots and recoveries cost, measured side by side in
//! one run on the demo guest. Reported, never asserted.
//!
//! Every sample is a fresh `vmm run` process booting the bundled guest with no workload requests
//! of its own (`ops=0`) and one independent load client per server (`namesload`, `kvload`,
//! `fsload`, `bankload`: a declared, state-changing request mix each, see the guest's `load`
//! crate), so a crashed server stalls only its own client. The figures come from the clients'
//! console lines (requests and time) and the run's `--report` (recovery latencies).
//!
//! ```text
//!  snapshot_ipc_ratio     requests/s of all clients, snapshots on / off (--no-recovery)
//!  recovery_us_p50, p99   kernel fault entry -> restarted server's first instruction, per fault
//!                         kind (kv crashed every 20 messages; hang detection not included:
//!                         its latency starts at the tick that finds the hang)
//!  peer_throughput_ratio  requests/s of the names, fs and bank clients while kv crashes once
//!                         per 1,000 of its messages / the same without crashes; also for
//!                         other crash periods (the curve)
//! ```
//!
//! Configurations are run in rounds (one sample of each per round), so that a slow spell of
//! the host hits them all alike; each figure is the median over the rounds.

use crate::bench::{Stats, write_json_atomic};
use abi::Backend;
use abi::fault::FaultKind;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The clients, and which of them drive kv's peers.
const CLIENTS: [&str; 4] = ["namesload", "kvload", "fsload", "bankload"];
const PEERS: [&str; 3] = ["namesload", "fsload", "bankload"];
/// kv crash periods of the peer-throughput curve (messages of kv per crash); 1,000 is the
/// headline figure.
pub const CRASH_PERIODS: [u64; 3] = [100, 1000, 10_000];
/// Messages of kv between crashes when measuring latency.
const LATENCY_PERIOD: u64 = 20;

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryBenchError {
    /// A sample could not be started.
    #[error("cannot start `{exe} run`: {source}")]
    Spawn {
        /// The vmm binary.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A sample did not end with status 0, or its output lacked a figure.
    #[error("sample `{config}` failed: {why} (run `vmm run {args}` to see it)")]
    Sample {
        /// The configuration's name.
        config: String,
        /// Its `vmm run` arguments.
        args: String,
        /// What was wrong.
        why: String,
    },
    /// The temporary directory or the JSON file could not be written.
    #[error(transparent)]
    Write(#[from] crate::bench::BenchError),
}

/// How long and how often.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rounds of throughput samples.
    pub rounds: usize,
    /// Ticks (10 ms) each client runs per throughput sample.
    pub ticks: u64,
    /// Ticks each client runs per latency sample.
    pub latency_ticks: u64,
}

/// One `vmm run` configuration.
#[derive(Clone, Debug)]
struct Config {
    name: String,
    flags: Vec<String>,
    ticks: u64,
}

/// What one sample measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Requests per second of each client, in [`CLIENTS`] order.
    pub requests_per_s: Vec<f64>,
    /// Recovery latencies, µs.
    pub latencies_us: Vec<f64>,
    /// Recoveries.
    pub recoveries: usize,
    /// VMM time per boundary snapshot, µs (dirty log, copy).
    pub vmm_us_per_boundary: Option<f64>,
    /// Dirty pages per boundary.
    pub dirty_pages_per_boundary: Option<f64>,
    /// Write-protect faults per boundary (pages written while re-protected).
    pub write_faults_per_boundary: Option<f64>,
    /// Snapshots per exit that carried them (batching).
    pub snapshots_per_exit: Option<f64>,
    /// Mismatches the clients saw (must be 0).
    pub mismatches: u64,
}

impl Sample {
    fn total(&self) -> f64 {
        self.requests_per_s.iter().sum()
    }

    fn peers(&self) -> f64 {
        CLIENTS
            .iter()
            .zip(&self.requests_per_s)
            .filter(|(c, _)| PEERS.contains(c))
            .map(|(_, r)| r)
            .sum()
    }
}

/// Latency figures of one fault kind.
#[derive(Clone, Debug, Serialize)]
pub struct KindLatency {
    /// The fault kind (`--fault` name).
    pub kind: &'static str,
    /// Recoveries measured.
    pub samples: usize,
    /// Median, µs.
    pub recovery_us_p50: f64,
    /// 99th percentile (nearest rank), µs.
    pub recovery_us_p99: f64,
}

/// A point of the peer-throughput curve.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    /// kv crashes once per this many of its messages.
    pub crash_every: u64,
    /// Peers' requests/s with those crashes / without crashes (medians).
    pub peer_throughput_ratio: f64,
    /// kv's own client, the same ratio.
    pub kv_throughput_ratio: f64,
    /// kv crashes per sample (median).
    pub crashes: f64,
}

/// The result of `vmm bench recovery`.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryBenchReport {
    /// What was measured.
    pub benchmark: &'static str,
    /// KVM backend of every sample.
    pub backend: &'static str,
    /// The command that produced it.
    pub command: String,
    /// Rounds of throughput samples.
    pub rounds: usize,
    /// All clients' requests/s with snapshots on / off.
    pub snapshot_ipc_ratio: f64,
    /// Requests/s of all clients, snapshots off (median).
    pub requests_per_s_snapshots_off: Stats,
    /// Requests/s of all clients, snapshots on (median).
    pub requests_per_s_snapshots_on: Stats,
    /// What snapshots add per request, µs: 1/on - 1/off of the medians.
    pub snapshot_us_per_request: f64,
    /// VMM time per boundary (dirty log read, copy, clear), µs.
    pub vmm_us_per_boundary: f64,
    /// Dirty pages per boundary.
    pub dirty_pages_per_boundary: f64,
    /// Write-protect faults per boundary snapshot (median over the snapshots-on samples).
    pub write_faults_per_boundary: f64,
    /// Snapshots per exit that carried them (median over the snapshots-on samples).
    pub snapshots_per_exit: f64,
    /// Recovery latency over every kind measured, µs.
    pub recovery_us_p50: f64,
    /// 99th percentile over every kind, µs.
    pub recovery_us_p99: f64,
    /// Per kind.
    pub latency_by_kind: Vec<KindLatency>,
    /// Peers' throughput with kv crashing once per 1,000 of its messages, over none.
    pub peer_throughput_ratio: f64,
    /// The same for every crash period measured.
    pub peer_curve: Vec<CurvePoint>,
    /// Every sample, by configuration.
    pub samples: Vec<(String, Vec<Sample>)>,
}

fn clients_args(ticks: u64) -> Vec<String> {
    let mut v = vec!["ops=0".to_owned()];
    v.extend(CLIENTS.iter().map(|c| format!("{c}={ticks}")));
    v
}

/// Runs one sample of `config`.
fn sample(exe: &Path, dir: &Path, config: &Config) -> Result<Sample, RecoveryBenchError> {
    let report = dir.join(format!("{}.json", config.name));
    let mut args: Vec<String> = vec!["run".into(), "-q".into(), "--timeout".into(), "120".into()];
    args.extend(["--report".into(), report.display().to_string()]);
    args.extend(config.flags.iter().cloned());
    args.push("--".into());
    args.extend(clients_args(config.ticks));
    let fail = |why: String| RecoveryBenchError::Sample {
        config: config.name.clone(),
        args: args[1..].join(" "),
        why,
    };
    let out = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|source| RecoveryBenchError::Spawn {
            exe: exe.to_owned(),
            source,
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").to_owned();
        return Err(fail(format!("exit {:?}: {last}", out.status.code())));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut s = Sample::default();
    for client in CLIENTS {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{client}: ")))
            .ok_or_else(|| fail(format!("no `{client}:` line")))?;
        let (requests, ms, mismatches) =
            parse_client_line(line).ok_or_else(|| fail(format!("cannot read {line:?}")))?;
        s.requests_per_s
            .push(requests as f64 * 1000.0 / ms.max(1) as f64);
        s.mismatches += mismatches;
    }
    let text = std::fs::read_to_string(&report).map_err(|e| fail(format!("no report: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("bad report: {e}")))?;
    if let Some(recoveries) = json["recoveries"].as_array() {
        s.recoveries = recoveries.len();
        s.latencies_us = recoveries
            .iter()
            .filter_map(|r| r["latency_us"].as_f64())
            .collect();
    }
    let snaps = &json["snapshots"];
    if let (Some(n), Some(us), Some(dirty)) = (
        snaps["boundaries"].as_u64().filter(|&n| n > 0),
        snaps["time_us"].as_f64(),
        snaps["dirty_pages"].as_u64(),
    ) {
        s.vmm_us_per_boundary = Some(us / n as f64);
        s.dirty_pages_per_boundary = Some(dirty as f64 / n as f64);
        s.write_faults_per_boundary = snaps["write_faults"].as_u64().map(|f| f as f64 / n as f64);
        s.snapshots_per_exit = snaps["exits"]
            .as_u64()
            .filter(|&x| x > 0)
            .map(|x| n as f64 / x as f64);
    }
    Ok(s)
}

/// `kvload: 704 requests in 2000 ms, retries 0, lost 0, errors 0, mismatches 0` ->
/// (704, 2000, 0).
fn parse_client_line(line: &str) -> Option<(u64, u64, u64)> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let requests = words.get(1)?.parse().ok()?;
    let ms = words.get(4)?.parse().ok()?;
    let mismatches = words.last()?.parse().ok()?;
    Some((requests, ms, mismatches))
}

/// The `p`-th percentile (0-100, nearest rank) of `v`; 0 for none.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        Stats::of(v).median
    }
}

/// Runs the benchmark with `exe` (this vmm binary).
pub fn run(
    exe: &Path,
    plan: Plan,
    backend: Backend,
    command: String,
) -> Result<RecoveryBenchReport, RecoveryBenchError> {
    let dir = tempfile::tempdir().map_err(|source| {
        RecoveryBenchError::Write(crate::bench::BenchError::Write {
            path: std::env::temp_dir(),
            source,
        })
    })?;
    let config = |name: &str, flags: Vec<String>, ticks| Config {
        name: name.to_owned(),
        flags,
        ticks,
    };
    let mut throughput = vec![
        config("snapshots-off", vec!["--no-recovery".into()], plan.ticks),
        config("snapshots-on", Vec::new(), plan.ticks),
    ];
    for p in CRASH_PERIODS {
        let fault = format!("kv:null-deref@{p}+{p}");
        throughput.push(config(
            &format!("kv-crash-every-{p}"),
            vec!["--fault".into(), fault],
            plan.ticks,
        ));
    }
    let mut samples: Vec<(String, Vec<Sample>)> = throughput
        .iter()
        .map(|c| (c.name.clone(), Vec::new()))
        .collect();
    for _ in 0..plan.rounds {
        for (c, (_, got)) in throughput.iter().zip(samples.iter_mut()) {
            got.push(sample(exe, dir.path(), c)?);
        }
    }
    let mut kinds = Vec::new();
    for kind in FaultKind::CRASHES {
        // A hang costs its 2 s budget each time: fewer of them.
        let period = if kind == FaultKind::Hang {
            LATENCY_PERIOD * 5
        } else {
            LATENCY_PERIOD
        };
        let fault = format!("kv:{}@{period}+{period}", kind.name());
        let ticks = if kind == FaultKind::Hang {
            plan.latency_ticks.max(700)
        } else {
            plan.latency_ticks
        };
        let c = config(
            &format!("latency-{}", kind.name()),
            vec!["--fault".into(), fault],
            ticks,
        );
        let s = sample(exe, dir.path(), &c)?;
        kinds.push(KindLatency {
            kind: kind.name(),
            samples: s.latencies_us.len(),
            recovery_us_p50: percentile(&s.latencies_us, 50.0),
            recovery_us_p99: percentile(&s.latencies_us, 99.0),
        });
        samples.push((c.name, vec![s]));
    }
    let by = |name: &str| -> &[Sample] {
        samples
            .iter()
            .find(|(n, _)| n == name)
            .map_or(&[], |(_, s)| s.as_slice())
    };
    let totals = |name: &str| by(name).iter().map(Sample::total).collect::<Vec<_>>();
    let off = totals("snapshots-off");
    let on = totals("snapshots-on");
    let (off_m, on_m) = (median(&off), median(&on));
    let peers_base = median(
        &by("snapshots-on")
            .iter()
            .map(Sample::peers)
            .collect::<Vec<_>>(),
    );
    let kv_of = |s: &Sample| s.requests_per_s.get(1).copied().unwrap_or(0.0);
    let kv_base = median(&by("snapshots-on").iter().map(kv_of).collect::<Vec<_>>());
    let peer_curve: Vec<CurvePoint> = CRASH_PERIODS
        .iter()
        .map(|p| {
            let s = by(&format!("kv-crash-every-{p}"));
            let peers = median(&s.iter().map(Sample::peers).collect::<Vec<_>>());
            let kv = median(&s.iter().map(kv_of).collect::<Vec<_>>());
            let crashes = median(&s.iter().map(|x| x.recoveries as f64).collect::<Vec<_>>());
            CurvePoint {
                crash_every: *p,
                peer_throughput_ratio: peers / peers_base.max(f64::MIN_POSITIVE),
                kv_throughput_ratio: kv / kv_base.max(f64::MIN_POSITIVE),
                crashes,
            }
        })
        .collect();
    let all_latencies: Vec<f64> = samples
        .iter()
        .filter(|(n, _)| n.starts_with("latency-"))
        .flat_map(|(_, s)| s.iter().flat_map(|x| x.latencies_us.iter().copied()))
        .collect();
    let on_samples = by("snapshots-on");
    let median_on = |figure: fn(&Sample) -> Option<f64>| {
        median(&on_samples.iter().filter_map(figure).collect::<Vec<_>>())
    };
    let vmm_us = median_on(|s| s.vmm_us_per_boundary);
    let dirty = median_on(|s| s.dirty_pages_per_boundary);
    let faults = median_on(|s| s.write_faults_per_boundary);
    let per_exit = median_on(|s| s.snapshots_per_exit);
    Ok(RecoveryBenchReport {
        benchmark: "vmm bench recovery",
        backend: backend.name(),
        command,
        rounds: plan.rounds,
        snapshot_ipc_ratio: on_m / off_m.max(f64::MIN_POSITIVE),
        requests_per_s_snapshots_off: Stats::of(&off),
        requests_per_s_snapshots_on: Stats::of(&on),
        snapshot_us_per_request: 1e6 / on_m.max(f64::MIN_POSITIVE)
            - 1e6 / off_m.max(f64::MIN_POSITIVE),
        vmm_us_per_boundary: vmm_us,
        dirty_pages_per_boundary: dirty,
        write_faults_per_boundary: faults,
        snapshots_per_exit: per_exit,
        recovery_us_p50: percentile(&all_latencies, 50.0),
        recovery_us_p99: percentile(&all_latencies, 99.0),
        latency_by_kind: kinds,
        peer_throughput_ratio: peer_curve
            .iter()
            .find(|c| c.crash_every == 1000)
            .map_or(0.0, |c| c.peer_throughput_ratio),
        peer_curve,
        samples,
    })
}

/// The report as text.
pub fn summary(r: &RecoveryBenchReport) -> String {
    let mut out = format!(
        "vmm bench recovery: {} round{}, KVM backend {}\n",
        r.rounds,
        if r.rounds == 1 { "" } else { "s" },
        r.backend
    );
    out += &format!(
        "snapshot_ipc_ratio     {:.3}  ({:.0} requests/s with snapshots, {:.0} without; +{:.1} us per request; per snapshot: VMM {:.1} us, {:.2} dirty pages, {:.2} write-protect faults; {:.2} snapshots per exit)\n",
        r.snapshot_ipc_ratio,
        r.requests_per_s_snapshots_on.median,
        r.requests_per_s_snapshots_off.median,
        r.snapshot_us_per_request,
        r.vmm_us_per_boundary,
        r.dirty_pages_per_boundary,
        r.write_faults_per_boundary,
        r.snapshots_per_exit
    );
    out += &format!(
        "recovery_us_p50        {:.1}\nrecovery_us_p99        {:.1}  (all kinds)\n",
        r.recovery_us_p50, r.recovery_us_p99
    );
    for k in &r.latency_by_kind {
        out += &format!(
            "  {:<15} p50 {:>8.1} us  p99 {:>8.1} us  ({} recoveries)\n",
            k.kind, k.recovery_us_p50, k.recovery_us_p99, k.samples
        );
    }
    out += &format!(
        "peer_throughput_ratio  {:.3}  (kv crashing once per 1000 of its messages)\n",
        r.peer_throughput_ratio
    );
    for c in &r.peer_curve {
        out += &format!(
            "  kv crash every {:>6} messages: peers {:.3}, kv's own client {:.3} ({} crashes per sample)\n",
            c.crash_every, c.peer_throughput_ratio, c.kv_throughput_ratio, c.crashes
        );
    }
    out
}

/// Writes the report as JSON, atomically.
pub fn write_json(path: &Path, r: &RecoveryBenchReport) -> Result<(), RecoveryBenchError> {
    Ok(write_json_atomic(path, r)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_lines_parse() {
        let line = "kvload: 704 requests in 2000 ms, retries 3, lost 0, errors 0, mismatches 2";
        assert_eq!(parse_client_line(line), Some((704, 2000, 2)));
        assert_eq!(parse_client_line("kvload: garbage"), None);
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
