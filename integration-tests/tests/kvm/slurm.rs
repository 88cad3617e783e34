//! The Slurm recipe of docs/fleet.md on a real (single-node) Slurm cluster: a campaign
//! submitted as a 4-task array with deploy/slurm/fleet-array.sbatch (`--shard auto` from the
//! array's variables), merged, equals a single-process run of the same campaign.
//!
//! `.ci/run` starts the cluster (`.ci/slurm-cluster.sh`) and sets `SLURM_CONF`; without one this
//! test fails loudly.

use crate::kvm::fleet::{campaign, fleet, identity, lines, report, verdict_status};
use integration_tests::{VmPermit, require_kvm};
use std::path::Path;
use std::process::Command;

/// The cluster's configuration, after checking that it answers.
fn cluster() -> String {
    let conf = std::env::var("SLURM_CONF").unwrap_or_else(|_| {
        panic!(
            "no Slurm cluster: .ci/run starts one (.ci/slurm-cluster.sh start DIR, then \
             export SLURM_CONF=DIR/slurm.conf)"
        )
    });
    let out = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .env("SLURM_CONF", &conf)
        .output()
        .unwrap_or_else(|e| panic!("sinfo: {e}"));
    let state = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && state.contains("idle"),
        "the Slurm cluster of {conf} is not idle: {state} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    conf
}

#[test]
fn a_campaign_as_a_slurm_array_merges_into_the_single_run() {
    require_kvm();
    let conf = cluster();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = campaign(tmp.path(), "slurm", 8);
    let single = tmp.path().join("single");
    let out = fleet(&[
        "run",
        file.to_str().expect("utf-8"),
        "--out",
        single.to_str().expect("utf-8"),
        "--jobs",
        "1",
    ]);
    assert_eq!(out.status, verdict_status(&report(&single)), "{out:?}");
    // Two array tasks at once, one VM each: two places.
    let permits = (VmPermit::acquire(), VmPermit::acquire());
    let results = tmp.path().join("results");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/slurm/fleet-array.sbatch");
    let sbatch = Command::new("sbatch")
        .env("SLURM_CONF", &conf)
        .env("VMM", crate::VMM)
        .args(["--wait", "--array=0-3", "--cpus-per-task=1", "--time=10"])
        .arg(format!("--output={}/task-%a.log", tmp.path().display()))
        .arg(&script)
        .arg(&file)
        .arg(&results)
        .output()
        .expect("sbatch");
    drop(permits);
    let logs: String = (0..4)
        .map(|i| {
            std::fs::read_to_string(tmp.path().join(format!("task-{i}.log"))).unwrap_or_default()
        })
        .collect();
    assert!(
        sbatch.status.success(),
        "sbatch: {} {}\ntask logs:\n{logs}",
        String::from_utf8_lossy(&sbatch.stdout),
        String::from_utf8_lossy(&sbatch.stderr)
    );
    let shards: Vec<String> = (0..4)
        .map(|i| results.join(format!("shard-{i}")).display().to_string())
        .collect();
    for (i, dir) in shards.iter().enumerate() {
        let cases: Vec<u64> = lines(Path::new(dir))
            .iter()
            .map(|r| r["case"].as_u64().expect("case"))
            .collect();
        let mut sorted = cases.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [i as u64, i as u64 + 4], "array task {i}: {logs}");
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shards.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().expect("utf-8")]);
    let out = fleet(&args);
    assert_eq!(out.status, verdict_status(&report(&single)), "{out:?}");
    assert_eq!(
        identity(&lines(&merged)),
        identity(&lines(&single)),
        "the array's shards merged = the single run"
    );
}
