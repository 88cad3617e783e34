//! `vmm fleet merge DIR... --out DIR`: the results of a campaign's shards (or of partial runs)
//! as one. Associative, cases deduplicated by index, latency histograms added exactly; cases
//! no shard recorded are reported missing, never dropped in silence. Shards of different
//! campaigns, or run by different builds, are refused.

use super::FleetError;
use super::record::CaseRecord;
use super::results::{Results, RunInfo, add_run};
use super::runner::{CAMPAIGN, CASES};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a merge did.
#[derive(Debug)]
pub struct Merged {
    /// Cases in the merged directory.
    pub cases: u64,
    /// Cases of the campaign no input recorded.
    pub missing: u64,
    /// Cases recorded by more than one input (the first input's record kept).
    pub duplicates: u64,
}

/// Merges `inputs` into the new directory `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<Merged, FleetError> {
    if inputs.is_empty() {
        return Err(FleetError::Usage(
            "fleet merge: no results directories given".into(),
        ));
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(FleetError::dir(
            out,
            "exists and is not empty: merge into a new directory".into(),
        ));
    }
    let all: Vec<Results> = inputs
        .iter()
        .map(|d| Results::load(d))
        .collect::<Result<_, _>>()?;
    let first = &all[0];
    for r in &all[1..] {
        if r.campaign.text != first.campaign.text {
            return Err(FleetError::dir(
                &r.dir,
                format!(
                    "ran another campaign than {} ({CAMPAIGN} differs): not merged",
                    first.dir.display()
                ),
            ));
        }
    }
    let build = all
        .iter()
        .flat_map(|r| r.records.first())
        .next()
        .map(|r| r.build.clone());
    if let Some(build) = &build
        && let Some(other) = all
            .iter()
            .find(|r| r.records.iter().any(|c| c.build != *build))
    {
        return Err(FleetError::dir(
            &other.dir,
            format!(
                "has cases of another build than vmm {} {} with image {}: not merged",
                build.version, build.commit, build.image_sha256
            ),
        ));
    }
    let mut cases: BTreeMap<u64, CaseRecord> = BTreeMap::new();
    let mut duplicates = 0;
    let mut histogram = first.histogram.clone();
    histogram.reset();
    let mut runs: Vec<RunInfo> = Vec::new();
    for r in &all {
        for c in &r.records {
            match cases.entry(c.case) {
                std::collections::btree_map::Entry::Occupied(_) => duplicates += 1,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(c.clone());
                }
            }
        }
        histogram
            .add(&r.histogram)
            .map_err(|e| FleetError::dir(&r.dir, format!("latency histogram: {e:?}")))?;
        runs.extend(r.runs.iter().cloned());
    }
    std::fs::create_dir_all(out).map_err(|e| FleetError::dir(out, e.to_string()))?;
    crate::files::write_atomic(&out.join(CAMPAIGN), first.campaign.text.as_bytes())
        .map_err(|e| FleetError::dir(out, e.to_string()))?;
    let mut lines = Vec::new();
    for c in cases.values() {
        let _ = writeln!(lines, "{}", serde_json::to_string(c).unwrap_or_default());
    }
    crate::files::write_atomic(&out.join(CASES), &lines)
        .map_err(|e| FleetError::dir(out, e.to_string()))?;
    // The merge stands for every case of the campaign: what no shard recorded is missing.
    runs.push(RunInfo {
        host: "merge".into(),
        shard: "0/1".into(),
        jobs: 0,
        cases: 0,
        wall_s: 0.0,
        interrupted: false,
        campaign_dir: runs
            .first()
            .map_or_else(|| out.to_owned(), |r| r.campaign_dir.clone()),
    });
    for run in &runs {
        add_run(out, run)?;
    }
    // Latencies as the shards had them, added (not rebuilt from the records).
    let mut merged = Results::load(out)?;
    merged.histogram = histogram;
    merged.write_reports()?;
    let missing = merged.summary().expected - merged.records.len() as u64;
    Ok(Merged {
        cases: merged.records.len() as u64,
        missing,
        duplicates,
    })
}
