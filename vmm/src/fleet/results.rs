//! A results directory (`--out DIR`): the campaign file it ran (`campaign.toml`), one line per
//! case (`cases.jsonl`), one line per run of `vmm fleet run` or merge (`runs.jsonl`), the
//! recovery latencies as an HDR histogram (`latency.hdr`, so that shards add up exactly), and
//! the reports built from them (`report.json`, `report.md`, `classes.svg`, `latency.svg`).

use super::FleetError;
use super::campaign::Campaign;
use super::plots;
use super::record::{CaseRecord, read_lines};
use super::runner::{CAMPAIGN, CASES};
use super::shard::Shard;
use super::summary::{Summary, latency_histogram, summarize};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The runs file.
pub const RUNS: &str = "runs.jsonl";
/// The latency histogram.
pub const LATENCY: &str = "latency.hdr";

/// One run of `vmm fleet run` into a directory (a merge keeps its shards' runs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The host.
    pub host: String,
    /// `I/N` (`0/1`: every case).
    pub shard: String,
    /// Cases at once.
    pub jobs: usize,
    /// Cases it ran.
    pub cases: u64,
    /// Its wall time, in seconds.
    pub wall_s: f64,
    /// Stopped before every case ran.
    pub interrupted: bool,
    /// The directory of the campaign file it ran (its relative paths are taken from there).
    pub campaign_dir: PathBuf,
}

impl RunInfo {
    /// Its shard.
    pub fn shard(&self) -> Option<Shard> {
        super::shard::parse(&self.shard, |_| None).ok()
    }
}

/// A results directory, read.
#[derive(Debug)]
pub struct Results {
    /// Where.
    pub dir: PathBuf,
    /// The campaign it ran.
    pub campaign: Campaign,
    /// Its cases, by index.
    pub records: Vec<CaseRecord>,
    /// Its runs.
    pub runs: Vec<RunInfo>,
    /// Its recovery latencies.
    pub histogram: Histogram<u64>,
}

impl Results {
    /// Reads `dir`.
    pub fn load(dir: &Path) -> Result<Self, FleetError> {
        let kept = dir.join(CAMPAIGN);
        let text = crate::files::read_text(&kept, 1 << 20).map_err(|e| {
            FleetError::dir(dir, format!("no campaign results here ({CAMPAIGN}: {e})"))
        })?;
        let runs_path = dir.join(RUNS);
        let runs = match crate::files::read_text(&runs_path, super::REPORT_LIMIT) {
            Ok(t) => t
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<RunInfo>, _>>()
                .map_err(|e| FleetError::dir(&runs_path, e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(FleetError::dir(&runs_path, e.to_string())),
        };
        let base = runs.first().map_or(dir, |r| r.campaign_dir.as_path());
        let campaign = Campaign::parse(&text, base).map_err(|e| FleetError::dir(&kept, e))?;
        let cases = dir.join(CASES);
        let text = match crate::files::read_text(&cases, super::CASES_LIMIT) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(FleetError::dir(&cases, e.to_string())),
        };
        let (mut records, _) = read_lines(&text).map_err(|e| FleetError::dir(&cases, e))?;
        records.sort_by_key(|r| r.case);
        records.dedup_by_key(|r| r.case);
        let histogram = match crate::files::read_regular(&dir.join(LATENCY), super::REPORT_LIMIT) {
            Ok(bytes) => Deserializer::new()
                .deserialize(&mut bytes.as_slice())
                .map_err(|e| FleetError::dir(&dir.join(LATENCY), format!("{e:?}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => latency_histogram(&records),
            Err(e) => return Err(FleetError::dir(&dir.join(LATENCY), e.to_string())),
        };
        Ok(Self {
            dir: dir.to_owned(),
            campaign,
            records,
            runs,
            histogram,
        })
    }

    /// The case indices the directory is meant to hold: the shards its runs covered (every
    /// case for a merge, whose run says `0/1`).
    pub fn expected(&self) -> Vec<u64> {
        let shards: Vec<Shard> = self.runs.iter().filter_map(RunInfo::shard).collect();
        (0..self.campaign.cases)
            .filter(|&i| shards.is_empty() || shards.iter().any(|s| s.holds(i)))
            .collect()
    }

    /// Its summary.
    pub fn summary(&self) -> Summary {
        let (cases, wall) = self
            .runs
            .iter()
            .fold((0, 0.0), |(c, w), r| (c + r.cases, w + r.wall_s));
        summarize(
            &self.campaign.name,
            &self.records,
            &self.expected(),
            &self.histogram,
            cases,
            wall,
        )
    }

    /// Writes `latency.hdr` and the reports; returns the summary.
    pub fn write_reports(&self) -> Result<Summary, FleetError> {
        let summary = self.summary();
        let mut bytes = Vec::new();
        V2Serializer::new()
            .serialize(&self.histogram, &mut bytes)
            .map_err(|e| FleetError::dir(&self.dir.join(LATENCY), format!("{e:?}")))?;
        let write = |name: &str, data: &[u8]| {
            let path = self.dir.join(name);
            crate::files::write_atomic(&path, data)
                .map_err(|e| FleetError::dir(&path, e.to_string()))
        };
        write(LATENCY, &bytes)?;
        let mut json = serde_json::to_vec_pretty(&summary).unwrap_or_default();
        json.push(b'\n');
        write("report.json", &json)?;
        write(
            "report.md",
            super::markdown::report(&summary, &self.campaign).as_bytes(),
        )?;
        write("classes.svg", plots::classes(&summary).as_bytes())?;
        write(
            "latency.svg",
            plots::latency_cdf(&self.histogram).as_bytes(),
        )?;
        Ok(summary)
    }
}

/// Appends `run` to `dir`'s runs file.
pub fn add_run(dir: &Path, run: &RunInfo) -> Result<(), FleetError> {
    use std::io::Write;
    let path = dir.join(RUNS);
    crate::files::check_replaceable(&path).map_err(|e| FleetError::dir(&path, e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| FleetError::dir(&path, e.to_string()))?;
    let line = serde_json::to_string(run).unwrap_or_default();
    writeln!(f, "{line}").map_err(|e| FleetError::dir(&path, e.to_string()))
}
