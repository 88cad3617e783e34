//! What a campaign's cases add up to: cases per class overall and per target x kind, each rate
//! with its 95% interval, coverage, the silent-corruption rate, recovery latency percentiles
//! (an HDR histogram), throughput, the bad cases deduplicated by signature with a replay
//! command each, and the verdict. Pure: records in, summary out.

use super::record::{BAD, CaseRecord};
use super::stats::Rate;
use crate::faults::classify::Class;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// The verdict of a campaign (and `vmm fleet run`'s exit status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every case ran, none bad.
    Clean,
    /// Every case ran; some are bad (silent corruption, timeout, propagation, VMM error,
    /// fail-stop).
    BadCases,
    /// Cases are missing (a stopped run, a shard not merged yet).
    Incomplete,
}

impl Verdict {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::BadCases => "bad-cases",
            Self::Incomplete => "incomplete",
        }
    }
}

/// One `target x kind` row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    /// The server or `kernel`.
    pub target: String,
    /// The fault kind.
    pub kind: String,
    /// Its cases.
    pub cases: u64,
    /// Cases per class.
    pub classes: BTreeMap<Class, u64>,
    /// Recovered (with or without loss) among detected.
    pub coverage: Rate,
}

/// Bad cases that share a signature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BadGroup {
    /// `target/kind/cause/rip`.
    pub signature: String,
    /// Their class (the first case's).
    pub class: Class,
    /// How many.
    pub cases: u64,
    /// The lowest case index.
    pub first_case: u64,
    /// A command that runs that case again.
    pub replay: String,
}

/// Recovery latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// Recoveries measured.
    pub count: u64,
    /// 50th percentile.
    pub p50: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// The slowest.
    pub max: f64,
}

/// A campaign's summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The campaign.
    pub campaign: String,
    /// Cases expected (the campaign's, or the shards' run here).
    pub expected: u64,
    /// Cases recorded.
    pub recorded: u64,
    /// Cases expected but not recorded.
    pub missing_count: u64,
    /// The first (at most 100) of them.
    pub missing: Vec<u64>,
    /// Cases per class, as rates over the recorded cases.
    pub classes: BTreeMap<Class, Rate>,
    /// Per target x kind.
    pub cells: Vec<Cell>,
    /// Recovered (with or without loss) among the cases whose fault was detected.
    pub coverage: Rate,
    /// Recovered among the detected cases whose fault was seen used (activation known).
    pub coverage_activated: Rate,
    /// Silent corruption among all cases.
    pub silent_corruption: Rate,
    /// Recovery latency.
    pub latency: Option<Latency>,
    /// Cases per hour of a runner process (cases run / the runs' wall time).
    pub cases_per_hour: Option<f64>,
    /// Bad cases by signature, most frequent first.
    pub bad: Vec<BadGroup>,
    /// The verdict.
    pub verdict: Verdict,
}

/// A histogram of recovery latencies (1 us to 1 hour, 3 significant digits).
pub fn latency_histogram(records: &[CaseRecord]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!()));
    for r in records {
        for &us in &r.latencies_us {
            let v = us.round().clamp(1.0, 3_600_000_000.0) as u64;
            let _ = h.record(v);
        }
    }
    h
}

fn detected(r: &CaseRecord) -> bool {
    r.detected_as.is_some()
}

fn recovered(r: &CaseRecord) -> bool {
    matches!(r.classification, Class::Recovered | Class::RecoveredLossy)
}

/// The summary of `records` (one per case, any order) of campaign `campaign`, whose expected
/// cases are `expected`; `histogram` holds their recovery latencies (merged shards' add up);
/// `run_cases` and `run_wall_s` are what the runs that made them did.
pub fn summarize(
    campaign: &str,
    records: &[CaseRecord],
    expected: &[u64],
    histogram: &Histogram<u64>,
    run_cases: u64,
    run_wall_s: f64,
) -> Summary {
    let n = records.len() as u64;
    let mut count: BTreeMap<Class, u64> = BTreeMap::new();
    for r in records {
        *count.entry(r.classification).or_default() += 1;
    }
    let classes = count.iter().map(|(&c, &k)| (c, Rate::of(k, n))).collect();
    let coverage_of = |rs: &mut dyn Iterator<Item = &CaseRecord>| {
        let (mut det, mut rec) = (0, 0);
        for r in rs.filter(|r| detected(r)) {
            det += 1;
            rec += u64::from(recovered(r));
        }
        Rate::of(rec, det)
    };
    let mut cells: BTreeMap<(String, String), Vec<&CaseRecord>> = BTreeMap::new();
    for r in records {
        cells
            .entry((r.target.clone(), r.kind.clone()))
            .or_default()
            .push(r);
    }
    let cells = cells
        .into_iter()
        .map(|((target, kind), rs)| {
            let mut classes = BTreeMap::new();
            for r in &rs {
                *classes.entry(r.classification).or_default() += 1;
            }
            Cell {
                target,
                kind,
                cases: rs.len() as u64,
                classes,
                coverage: coverage_of(&mut rs.iter().copied()),
            }
        })
        .collect();
    let mut groups: BTreeMap<String, BadGroup> = BTreeMap::new();
    let mut sorted: Vec<&CaseRecord> = records.iter().filter(|r| r.is_bad()).collect();
    sorted.sort_by_key(|r| r.case);
    for r in sorted {
        groups
            .entry(r.signature.clone())
            .and_modify(|g| g.cases += 1)
            .or_insert_with(|| BadGroup {
                signature: r.signature.clone(),
                class: r.classification,
                cases: 1,
                first_case: r.case,
                replay: r.replay.clone(),
            });
    }
    let mut bad: Vec<BadGroup> = groups.into_values().collect();
    bad.sort_by(|a, b| b.cases.cmp(&a.cases).then(a.first_case.cmp(&b.first_case)));
    let have: std::collections::HashSet<u64> = records.iter().map(|r| r.case).collect();
    let missing_all: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|i| !have.contains(i))
        .collect();
    let verdict = if !missing_all.is_empty() {
        Verdict::Incomplete
    } else if records.iter().any(|r| BAD.contains(&r.classification)) {
        Verdict::BadCases
    } else {
        Verdict::Clean
    };
    let latency = (!histogram.is_empty()).then(|| Latency {
        count: histogram.len(),
        p50: histogram.value_at_quantile(0.5) as f64,
        p99: histogram.value_at_quantile(0.99) as f64,
        p999: histogram.value_at_quantile(0.999) as f64,
        max: histogram.max() as f64,
    });
    Summary {
        campaign: campaign.to_owned(),
        expected: expected.len() as u64,
        recorded: n,
        missing_count: missing_all.len() as u64,
        missing: missing_all.iter().take(100).copied().collect(),
        classes,
        cells,
        coverage: coverage_of(&mut records.iter()),
        coverage_activated: coverage_of(&mut records.iter().filter(|r| r.activated == Some(true))),
        silent_corruption: Rate::of(*count.get(&Class::SilentCorruption).unwrap_or(&0), n),
        latency,
        cases_per_hour: (run_wall_s > 0.0).then(|| run_cases as f64 * 3600.0 / run_wall_s),
        bad,
        verdict,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fleet::record::Build;

    pub(crate) fn rec(case: u64, target: &str, class: &str, detected: Option<&str>) -> CaseRecord {
        CaseRecord {
            campaign: "c".into(),
            case,
            fault: format!("{target}:panic@1"),
            fault_seed: 1,
            guest_seed: 2,
            target: target.into(),
            kind: "panic".into(),
            concrete: None,
            classification: serde_json::from_value(serde_json::Value::from(class))
                .unwrap_or_else(|_| panic!("a class: {class}")),
            activated: Some(true),
            detected_as: detected.map(str::to_owned),
            signature: format!("{target}/panic/{}/-", detected.unwrap_or(class)),
            exit_status: 0,
            latencies_us: if detected.is_some() {
                vec![300.0 + case as f64]
            } else {
                vec![]
            },
            workload: None,
            duration_s: 0.5,
            build: Build {
                version: "v".into(),
                commit: "c".into(),
                image_sha256: "i".into(),
                config_sha256: None,
            },
            host: "h".into(),
            replay: format!("vmm run # case {case}"),
        }
    }

    #[test]
    fn a_summary_counts_rates_coverage_and_bad_cases() {
        let records = vec![
            rec(0, "kv", "recovered", Some("panic")),
            rec(1, "kv", "recovered", Some("panic")),
            rec(2, "kv", "silent-corruption", None),
            rec(3, "fs", "fail-stop", Some("panic")),
            rec(4, "fs", "masked", None),
            rec(5, "kv", "silent-corruption", None),
        ];
        let h = latency_histogram(&records);
        let s = summarize("c", &records, &(0..6).collect::<Vec<_>>(), &h, 6, 3.0);
        assert_eq!((s.expected, s.recorded), (6, 6));
        assert_eq!(s.classes[&Class::Recovered].k, 2);
        assert_eq!(s.classes[&Class::Recovered].n, 6);
        assert_eq!((s.coverage.k, s.coverage.n), (2, 3), "detected: 0, 1, 3");
        assert_eq!((s.silent_corruption.k, s.silent_corruption.n), (2, 6));
        assert_eq!(s.verdict, Verdict::BadCases);
        assert_eq!(s.bad.len(), 2);
        assert_eq!(
            (
                s.bad[0].signature.as_str(),
                s.bad[0].cases,
                s.bad[0].first_case
            ),
            ("kv/panic/silent-corruption/-", 2, 2)
        );
        assert_eq!(s.bad[0].replay, "vmm run # case 2");
        assert_eq!(s.cells.len(), 2);
        assert_eq!(s.cells[1].target, "kv");
        assert_eq!(s.cells[1].classes[&Class::SilentCorruption], 2);
        let l = s.latency.expect("three recoveries");
        assert_eq!((l.count, l.max), (3, 303.0));
        assert_eq!(s.cases_per_hour, Some(7200.0));
        let missing = summarize("c", &records[..4], &(0..6).collect::<Vec<_>>(), &h, 4, 1.0);
        assert_eq!(
            (missing.verdict, missing.missing.clone()),
            (Verdict::Incomplete, vec![4, 5])
        );
        let clean = summarize("c", &records[..2], &[0, 1], &h, 2, 1.0);
        assert_eq!(clean.verdict, Verdict::Clean);
    }
}
