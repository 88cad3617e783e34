//! `vmm fleet replay DIR CASE`: runs one recorded case again and says whether it reproduced:
//! the same concrete fault, classification and signature.

use super::FleetError;
use super::cases::case;
use super::record::{Build, Ended, record};
use super::results::Results;
use super::runner::{case_command, replay_line};
use std::path::Path;
use std::time::Instant;

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    /// It reproduced.
    pub reproduced: bool,
    /// What differed (empty when it reproduced).
    pub differences: Vec<String>,
    /// The new run's class.
    pub classification: crate::faults::classify::Class,
}

/// Replays case `index` of the results in `dir` with the `vmm` at `exe` (built as `build`).
pub fn replay(dir: &Path, index: u64, exe: &Path, build: &Build) -> Result<Replayed, FleetError> {
    let results = Results::load(dir)?;
    let recorded = results
        .records
        .iter()
        .find(|r| r.case == index)
        .ok_or_else(|| FleetError::Usage(format!("{}: no case {index} recorded", dir.display())))?;
    let c = case(&results.campaign, index);
    if c.fault.to_string() != recorded.fault
        || c.fault_seed != recorded.fault_seed
        || c.guest_seed != recorded.guest_seed
    {
        return Err(FleetError::dir(
            dir,
            format!(
                "case {index} as recorded is not what the campaign draws: the results were edited"
            ),
        ));
    }
    let tmp = tempfile::tempdir().map_err(|e| FleetError::dir(dir, e.to_string()))?;
    let report = tmp.path().join("report.json");
    let mut cmd = case_command(exe, &results.campaign, &c, &report);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let started = Instant::now();
    let status = cmd.status().map_or(-2, |s| s.code().unwrap_or(-1));
    let ended = Ended {
        status,
        duration_s: started.elapsed().as_secs_f64(),
        report: crate::files::read_text(&report, super::REPORT_LIMIT)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok()),
    };
    let now = record(
        &results.campaign.name,
        &c,
        &ended,
        build,
        &recorded.host,
        replay_line(&results.campaign, &c),
    );
    let mut differences = Vec::new();
    if now.concrete != recorded.concrete {
        differences.push(format!(
            "concrete fault {:?}, recorded {:?}",
            now.concrete, recorded.concrete
        ));
    }
    if now.classification != recorded.classification {
        differences.push(format!(
            "classification {}, recorded {}",
            now.classification.name(),
            recorded.classification.name()
        ));
    }
    if now.signature != recorded.signature {
        differences.push(format!(
            "signature {}, recorded {}",
            now.signature, recorded.signature
        ));
    }
    if now.build != recorded.build {
        differences.push("another build than the one that recorded it".into());
    }
    Ok(Replayed {
        reproduced: differences.is_empty(),
        differences,
        classification: now.classification,
    })
}
