//! One case's result: a line of `DIR/cases.jsonl`. Built from the case's `vmm run --report`
//! (or from how the child ended when it left none), read back to resume, merge and report.

use super::cases::Case;
use crate::faults::classify::Class;
use crate::report::WorkloadFigures;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which build ran a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    /// `vmm --version`.
    pub version: String,
    /// The commit it was built from (`unknown` outside a git checkout).
    pub commit: String,
    /// SHA-256 of the guest image, hex.
    pub image_sha256: String,
    /// SHA-256 of the campaign's `config` file (its recovery policies), hex; null without one.
    pub config_sha256: Option<String>,
}

impl Build {
    /// What differs between this build and `other`, in words (empty when nothing does).
    pub fn differences(&self, other: &Build) -> Vec<String> {
        let mut out = Vec::new();
        if (&self.version, &self.commit) != (&other.version, &other.commit) {
            out.push(format!(
                "vmm {} {} vs {} {}",
                self.version, self.commit, other.version, other.commit
            ));
        }
        if self.image_sha256 != other.image_sha256 {
            out.push("another guest image (sha256)".into());
        }
        if self.config_sha256 != other.config_sha256 {
            out.push("another config file (sha256)".into());
        }
        out
    }
}

/// One case, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// The campaign's name.
    pub campaign: String,
    /// The case's index.
    pub case: u64,
    /// The fault it planned (`--fault`).
    pub fault: String,
    /// Its `--fault-seed`.
    pub fault_seed: u64,
    /// Its workload's `seed=`.
    pub guest_seed: u64,
    /// The server (or `kernel`) the fault targeted.
    pub target: String,
    /// The fault kind.
    pub kind: String,
    /// The concrete fault, as a spec that replays it (faults the VMM injects).
    pub concrete: Option<String>,
    /// The run's class (docs/fault-injection.md); `vmm-error` when the case left no report.
    pub classification: Class,
    /// Whether the corrupted code or data was used.
    pub activated: Option<bool>,
    /// How the fault was detected (the target's crash cause), if it was.
    pub detected_as: Option<String>,
    /// What deduplicates bad cases: `target/kind/cause/rip` (cause: how it was detected, or
    /// the class; rip: where the target crashed, or the injected instruction, or `-`).
    pub signature: String,
    /// `vmm run`'s exit status (-1: killed by a signal, -2: could not be started).
    pub exit_status: i32,
    /// Every recovery's latency, in microseconds.
    pub latencies_us: Vec<f64>,
    /// The workload's figures, if it reported them.
    pub workload: Option<WorkloadFigures>,
    /// Wall time of the case's process, in seconds.
    pub duration_s: f64,
    /// The build that ran it.
    pub build: Build,
    /// The host that ran it.
    pub host: String,
    /// A command that runs this case again.
    pub replay: String,
}

impl CaseRecord {
    /// True for a case a reliability engineer must look at.
    pub fn is_bad(&self) -> bool {
        BAD.contains(&self.classification)
    }
}

/// The classes of bad cases.
pub const BAD: [Class; 5] = [
    Class::VmmError,
    Class::Propagated,
    Class::SilentCorruption,
    Class::Timeout,
    Class::FailStop,
];

/// How a case's process ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Ended {
    /// Its exit status (negative: see [`CaseRecord::exit_status`]).
    pub status: i32,
    /// Its wall time.
    pub duration_s: f64,
    /// Its `--report`, if it left a readable one.
    pub report: Option<Value>,
}

/// The record of `case` of campaign `campaign` that ended as `ended`.
pub fn record(
    campaign: &str,
    case: &Case,
    ended: &Ended,
    build: &Build,
    host: &str,
    replay: String,
) -> CaseRecord {
    let target = case.fault.target.to_string();
    let mut r = CaseRecord {
        campaign: campaign.to_owned(),
        case: case.index,
        fault: case.fault.to_string(),
        fault_seed: case.fault_seed,
        guest_seed: case.guest_seed,
        target: target.clone(),
        kind: case.fault.kind.name().to_owned(),
        concrete: None,
        classification: Class::VmmError,
        activated: None,
        detected_as: None,
        signature: String::new(),
        exit_status: ended.status,
        latencies_us: Vec::new(),
        workload: None,
        duration_s: ended.duration_s,
        build: build.clone(),
        host: host.to_owned(),
        replay,
    };
    let mut rip = None;
    if let Some(report) = &ended.report {
        if let Ok(class) = serde_json::from_value(report["classification"].clone()) {
            r.classification = class;
        }
        let injection = &report["injections"][0];
        r.concrete = injection["concrete"]["spec"].as_str().map(str::to_owned);
        r.activated = injection["activated"].as_bool();
        r.detected_as = injection["detected_as"].as_str().map(str::to_owned);
        let recoveries = report["recoveries"].as_array().cloned().unwrap_or_default();
        r.latencies_us = recoveries
            .iter()
            .filter_map(|x| x["latency_us"].as_f64())
            .collect();
        rip = recoveries
            .iter()
            .find(|x| x["server"].as_str() == Some(target.as_str()))
            .and_then(|x| x["rip"].as_u64())
            // No crash: where a code fault struck (a data fault's byte is no place in code).
            .or_else(|| {
                (case.fault.kind.family() == abi::fault::Family::Code)
                    .then(|| injection["concrete"]["addr"].as_u64())
                    .flatten()
            });
        r.workload = serde_json::from_value(report["workload"].clone()).ok();
    }
    let cause = r.detected_as.as_deref().unwrap_or(r.classification.name());
    r.signature = format!(
        "{target}/{}/{cause}/{}",
        r.kind,
        rip.map_or_else(|| "-".to_owned(), |a| format!("{a:#x}"))
    );
    r
}

/// Reads the records of `text` (a `cases.jsonl`): every whole line; a last line cut short (a
/// run stopped while writing it) is dropped, and the length of the good part returned with the
/// records. `Err` names the first bad line that is not the last.
pub fn read_lines(text: &str) -> Result<(Vec<CaseRecord>, usize), String> {
    let mut records = Vec::new();
    let mut good = 0;
    let mut rest = text;
    let mut line_no = 0;
    while !rest.is_empty() {
        line_no += 1;
        let (line, next, whole) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..], true),
            None => (rest, "", false),
        };
        match serde_json::from_str::<CaseRecord>(line) {
            Ok(r) if whole => {
                records.push(r);
                good += line.len() + 1;
            }
            // The last line, cut short: what a stopped run leaves.
            _ if next.is_empty() => break,
            Ok(_) => unreachable!("a line without a newline is the last"),
            Err(e) => return Err(format!("line {line_no}: {e}")),
        }
        rest = next;
    }
    Ok((records, good))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::spec::FaultSpec;

    fn case() -> Case {
        Case {
            index: 4,
            fault: FaultSpec::parse("kv:text-flip@20").expect("valid"),
            fault_seed: 11,
            guest_seed: 12,
        }
    }

    fn build() -> Build {
        Build {
            version: "0.1.0".into(),
            commit: "abc".into(),
            image_sha256: "00".into(),
            config_sha256: None,
        }
    }

    #[test]
    fn a_record_takes_what_the_report_says() {
        let report = serde_json::json!({
            "classification": "recovered",
            "injections": [{
                "concrete": {"spec": "kv:text-flip@20:at=0x4401ea:bit=25", "addr": 0x4401ea},
                "activated": true,
                "detected_as": "null-deref"
            }],
            "recoveries": [
                {"server": "kv", "rip": 0x4401f0, "latency_us": 310.5},
                {"server": "fs", "rip": 0x480000, "latency_us": null}
            ],
            "workload": {"ops": 300, "errors": 0, "retries": 1, "lost": 0, "mismatches": 0}
        });
        let ended = Ended {
            status: 0,
            duration_s: 0.5,
            report: Some(report),
        };
        let r = record("c", &case(), &ended, &build(), "h", "vmm run ...".into());
        assert_eq!(r.classification, Class::Recovered);
        assert_eq!(
            r.concrete.as_deref(),
            Some("kv:text-flip@20:at=0x4401ea:bit=25")
        );
        assert_eq!(r.signature, "kv/text-flip/null-deref/0x4401f0");
        assert_eq!(r.latencies_us, [310.5]);
        assert_eq!(r.workload.map(|w| w.retries), Some(1));
        assert!(!r.is_bad());
        // No report: the VMM failed.
        let gone = Ended {
            status: -1,
            duration_s: 1.0,
            report: None,
        };
        let r = record("c", &case(), &gone, &build(), "h", String::new());
        assert_eq!(r.classification, Class::VmmError);
        assert_eq!(r.signature, "kv/text-flip/vmm-error/-");
        assert!(r.is_bad());
    }

    #[test]
    fn lines_read_back_and_a_cut_last_line_is_dropped() {
        let ended = Ended {
            status: 0,
            duration_s: 0.5,
            report: None,
        };
        let r = record("c", &case(), &ended, &build(), "h", String::new());
        let line = serde_json::to_string(&r).expect("json");
        let two = format!("{line}\n{line}\n");
        let (records, good) = read_lines(&two).expect("two");
        assert_eq!((records.len(), good), (2, two.len()));
        assert_eq!(records[0], r);
        let cut = format!("{line}\n{}", &line[..line.len() / 2]);
        let (records, good) = read_lines(&cut).expect("one and a cut");
        assert_eq!((records.len(), good), (1, line.len() + 1));
        let whole_but_unterminated = line.clone();
        let (records, good) = read_lines(&whole_but_unterminated).expect("unterminated");
        assert_eq!(
            (records.len(), good),
            (0, 0),
            "a line without its newline may be cut"
        );
        let bad = format!("{line}\nnot json\n{line}\n");
        assert!(
            read_lines(&bad)
                .expect_err("bad line")
                .starts_with("line 2: ")
        );
    }
}
