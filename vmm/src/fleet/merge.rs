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
                "has cases of another build than the first input's: {}; not merged",
                other
                    .records
                    .iter()
                    .find(|c| c.build != *build)
                    .map(|c| build.differences(&c.build).join(", "))
                    .unwrap_or_default()
            ),
        ));
    }
    // Each case, and the input its record came from (its bad-case files are copied from there).
    let mut cases: BTreeMap<u64, CaseRecord> = BTreeMap::new();
    let mut from: BTreeMap<u64, &Path> = BTreeMap::new();
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
                    from.insert(c.case, &r.dir);
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
    for (case, dir) in &from {
        copy_case_files(
            &dir.join("cases").join(case.to_string()),
            &out.join("cases").join(case.to_string()),
        )?;
    }
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

/// Copies a bad case's kept files (`report.json`, `stdout.txt`, `stderr.txt`), if it has them.
fn copy_case_files(from: &Path, to: &Path) -> Result<(), FleetError> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to).map_err(|e| FleetError::dir(to, e.to_string()))?;
    for name in ["report.json", "stdout.txt", "stderr.txt"] {
        match crate::files::read_regular(&from.join(name), super::REPORT_LIMIT) {
            Ok(bytes) => crate::files::write_atomic(&to.join(name), &bytes)
                .map_err(|e| FleetError::dir(&to.join(name), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FleetError::dir(&from.join(name), e.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::summary::tests::rec;
    use std::path::Path;

    const CAMPAIGN_TEXT: &str = r#"[campaign]
name = "c"
seed = 1
cases = 6
[[faults]]
servers = ["kv"]
kinds = ["panic"]
messages = [1, 9]
"#;

    /// A results directory holding `cases` of a campaign run as shard `shard`.
    fn shard(root: &Path, name: &str, text: &str, shard: &str, cases: &[u64]) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join(CAMPAIGN), text).expect("campaign");
        let mut lines = String::new();
        for &i in cases {
            let class = if i % 2 == 0 {
                "recovered"
            } else {
                "silent-corruption"
            };
            let detected = (i % 2 == 0).then_some("panic");
            lines += &serde_json::to_string(&rec(i, "kv", class, detected)).expect("json");
            lines.push('\n');
        }
        std::fs::write(dir.join(CASES), lines).expect("cases");
        add_run(
            &dir,
            &RunInfo {
                host: "h".into(),
                shard: shard.into(),
                jobs: 1,
                cases: cases.len() as u64,
                wall_s: 1.0,
                interrupted: false,
                campaign_dir: root.to_owned(),
            },
        )
        .expect("run");
        dir
    }

    fn cases_of(dir: &Path) -> Vec<CaseRecord> {
        Results::load(dir).expect("load").records
    }

    #[test]
    fn shards_merge_whole_in_any_grouping_and_say_what_is_missing_or_twice() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        let a = shard(root, "a", CAMPAIGN_TEXT, "0/3", &[0, 3]);
        let b = shard(root, "b", CAMPAIGN_TEXT, "1/3", &[1, 4]);
        let c = shard(root, "c", CAMPAIGN_TEXT, "2/3", &[2, 5]);
        // A bad case's kept files travel with it.
        std::fs::create_dir_all(b.join("cases/1")).expect("dir");
        std::fs::write(b.join("cases/1/stderr.txt"), "why").expect("write");
        let all = merge(&[a.clone(), b.clone(), c.clone()], &root.join("abc")).expect("merge");
        assert_eq!(
            std::fs::read_to_string(root.join("abc/cases/1/stderr.txt")).expect("copied"),
            "why"
        );
        assert_eq!((all.cases, all.missing, all.duplicates), (6, 0, 0));
        let ab = merge(&[a.clone(), b.clone()], &root.join("ab")).expect("ab");
        assert_eq!(
            (ab.cases, ab.missing),
            (4, 2),
            "shard 2's cases are missing"
        );
        let left = merge(&[root.join("ab"), c.clone()], &root.join("ab_c")).expect("(ab)c");
        let bc = merge(&[b.clone(), c.clone()], &root.join("bc")).expect("bc");
        assert_eq!(bc.missing, 2);
        let right = merge(&[a.clone(), root.join("bc")], &root.join("a_bc")).expect("a(bc)");
        assert_eq!((left.missing, right.missing), (0, 0));
        let whole = cases_of(&root.join("abc"));
        assert_eq!(
            whole.iter().map(|r| r.case).collect::<Vec<_>>(),
            (0..6).collect::<Vec<_>>()
        );
        assert_eq!(cases_of(&root.join("ab_c")), whole, "(a b) c = a b c");
        assert_eq!(cases_of(&root.join("a_bc")), whole, "a (b c) = a b c");
        let summary = Results::load(&root.join("ab")).expect("ab").summary();
        assert_eq!(summary.missing, [2, 5]);
        assert_eq!(summary.verdict, super::super::summary::Verdict::Incomplete);
        let twice = merge(&[a.clone(), a.clone()], &root.join("aa")).expect("aa");
        assert_eq!((twice.cases, twice.duplicates), (2, 2));
        assert_eq!(cases_of(&root.join("aa")), cases_of(&a));
    }

    #[test]
    fn other_campaigns_builds_and_full_directories_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let root = tmp.path();
        let a = shard(root, "a", CAMPAIGN_TEXT, "0/2", &[0, 2, 4]);
        let other = shard(
            root,
            "o",
            &CAMPAIGN_TEXT.replace("seed = 1", "seed = 2"),
            "1/2",
            &[1],
        );
        let e = merge(&[a.clone(), other], &root.join("m1")).expect_err("another campaign");
        assert!(e.to_string().contains("ran another campaign"), "{e}");
        assert!(!root.join("m1").exists(), "nothing written");
        let b = shard(root, "b", CAMPAIGN_TEXT, "1/2", &[1, 3]);
        let mut text = std::fs::read_to_string(b.join(CASES)).expect("cases");
        text = text.replacen("\"commit\":\"c\"", "\"commit\":\"d\"", 1);
        std::fs::write(b.join(CASES), text).expect("write");
        let e = merge(&[a.clone(), b], &root.join("m2")).expect_err("another build");
        assert!(e.to_string().contains("another build"), "{e}");
        let full = root.join("full");
        std::fs::create_dir(&full).expect("dir");
        std::fs::write(full.join("x"), "keep").expect("write");
        let e = merge(&[a], &full).expect_err("not empty");
        assert!(e.to_string().contains("not empty"), "{e}");
        assert_eq!(
            std::fs::read_to_string(full.join("x")).expect("read"),
            "keep"
        );
        assert!(matches!(
            merge(&[], &root.join("m3")),
            Err(FleetError::Usage(_))
        ));
    }
}
