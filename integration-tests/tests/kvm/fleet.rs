//! `vmm fleet`: a small campaign runs, is recorded case by case, reports its rates with
//! intervals and plots, gives the same cases split into shards (by hand and from the engines'
//! variables) and merged, replays a case, stops cleanly on SIGINT keeping what finished, resumes
//! past a cut last line, and refuses bad campaigns, shards and directories with one line.
//!
//! Campaigns run with `--jobs 1` so that the test harness's limit on VMs at once holds.

use integration_tests::{VmPermit, require_kvm, vmm_cmd};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A small campaign over kv and fs, kinds they execute and kinds the VMM injects.
pub(crate) fn campaign(dir: &Path, name: &str, cases: u64) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
[campaign]
name = "{name}"
seed = 11
cases = {cases}
timeout_secs = 20
guest_args = ["ops=60"]
[[faults]]
servers = ["kv", "fs"]
kinds = ["panic", "null-deref"]
messages = [1, 20]
[[faults]]
servers = ["kv", "fs"]
kinds = ["text-flip", "state-flip", "reg-flip"]
messages = [1, 20]
weight = 2
"#
        ),
    )
    .expect("write the campaign");
    path
}

/// `vmm fleet ARGS...` to its end (one VM at a time).
pub(crate) fn fleet(args: &[&str]) -> integration_tests::Outcome {
    let permit = VmPermit::acquire();
    let mut all = vec!["fleet"];
    all.extend_from_slice(args);
    vmm_cmd(crate::VMM, &all).run_with(&permit)
}

pub(crate) fn lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("cases.jsonl"))
        .expect("cases.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// What must match between runs of a case: index, planned and concrete fault, class, signature.
pub(crate) fn identity(records: &[Value]) -> BTreeMap<u64, (Value, Value, Value, Value)> {
    records
        .iter()
        .map(|r| {
            (
                r["case"].as_u64().expect("case"),
                (
                    r["fault"].clone(),
                    r["concrete"].clone(),
                    r["classification"].clone(),
                    r["signature"].clone(),
                ),
            )
        })
        .collect()
}

pub(crate) fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).expect("report.json"))
        .expect("JSON")
}

/// The exit status the verdict in `report` stands for.
pub(crate) fn verdict_status(report: &Value) -> i32 {
    match report["verdict"].as_str().expect("verdict") {
        "clean" => 0,
        "bad-cases" => i32::from(abi::status::FLEET_BAD),
        "incomplete" => i32::from(abi::status::FLEET_INCOMPLETE),
        v => panic!("unknown verdict {v}"),
    }
}

#[test]
fn a_campaign_runs_shards_merge_into_the_same_cases_and_a_case_replays() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = campaign(tmp.path(), "smoke", 8);
    let whole = tmp.path().join("whole");
    let out = fleet(&[
        "run",
        file.to_str().expect("utf-8"),
        "--out",
        whole.to_str().expect("utf-8"),
        "--jobs",
        "1",
    ]);
    let r = report(&whole);
    assert_eq!(out.status, verdict_status(&r), "{out:?}");
    let records = lines(&whole);
    assert_eq!(
        records
            .iter()
            .map(|r| r["case"].as_u64())
            .collect::<Vec<_>>(),
        (0..8).map(Some).collect::<Vec<_>>(),
        "one line per case, in order with one job"
    );
    for rec in &records {
        assert_eq!(rec["campaign"], "smoke");
        assert!(
            rec["build"]["image_sha256"]
                .as_str()
                .is_some_and(|h| h.len() == 64),
            "{rec}"
        );
        assert!(
            rec["replay"]
                .as_str()
                .is_some_and(|l| l.starts_with("vmm run --timeout ")),
            "{rec}"
        );
        assert!(rec["classification"].is_string(), "{rec}");
        let kind = rec["kind"].as_str().expect("kind");
        if ["text-flip", "state-flip", "reg-flip"].contains(&kind)
            && rec["classification"] != "not-triggered"
        {
            assert!(
                rec["concrete"].is_string(),
                "a VMM kind that fired is concrete: {rec}"
            );
        }
    }
    // The report: every class counted once, each rate with an interval around it.
    assert_eq!(r["recorded"], 8);
    let total: u64 = r["classes"]
        .as_object()
        .expect("classes")
        .values()
        .map(|c| {
            let (rate, low, high) = (
                c["rate"].as_f64().expect("rate"),
                c["low"].as_f64().expect("low"),
                c["high"].as_f64().expect("high"),
            );
            assert!(low <= rate && rate <= high, "{c}");
            c["k"].as_u64().expect("k")
        })
        .sum();
    assert_eq!(total, 8);
    let md = std::fs::read_to_string(whole.join("report.md")).expect("report.md");
    assert!(md.contains("rate [95% interval]"), "{md}");
    for svg in ["classes.svg", "latency.svg"] {
        let text = std::fs::read_to_string(whole.join(svg)).expect(svg);
        assert!(text.starts_with("<svg"), "{svg}");
    }
    // Four shards: two by hand, one as a Slurm array task, one as a Kubernetes index.
    let shard_dirs: Vec<PathBuf> = (0..4)
        .map(|i| tmp.path().join(format!("shard{i}")))
        .collect();
    for (i, dir) in shard_dirs.iter().enumerate() {
        let dir_s = dir.to_str().expect("utf-8");
        let file_s = file.to_str().expect("utf-8");
        let hand = format!("{i}/4");
        let mut args = vec![
            "fleet", "run", file_s, "--out", dir_s, "--jobs", "1", "--shard",
        ];
        let permit = VmPermit::acquire();
        let out = match i {
            0 | 1 => {
                args.push(&hand);
                vmm_cmd(crate::VMM, &args).run_with(&permit)
            }
            2 => {
                args.push("auto");
                vmm_cmd(crate::VMM, &args)
                    .env("SLURM_ARRAY_TASK_ID", "12")
                    .env("SLURM_ARRAY_TASK_MIN", "10")
                    .env("SLURM_ARRAY_TASK_STEP", "1")
                    .env("SLURM_ARRAY_TASK_COUNT", "4")
                    .run_with(&permit)
            }
            _ => {
                args.push("auto");
                vmm_cmd(crate::VMM, &args)
                    .env("JOB_COMPLETION_INDEX", "3")
                    .env("JOB_COMPLETIONS", "4")
                    .run_with(&permit)
            }
        };
        assert_eq!(out.status, verdict_status(&report(dir)), "{out:?}");
        let cases: Vec<u64> = lines(dir)
            .iter()
            .map(|r| r["case"].as_u64().expect("case"))
            .collect();
        assert_eq!(cases, [i as u64, i as u64 + 4], "shard {i}: {out:?}");
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge"];
    args.extend(shard_dirs.iter().map(|d| d.to_str().expect("utf-8")));
    args.extend(["--out", merged.to_str().expect("utf-8")]);
    let out = fleet(&args);
    assert!(
        out.stderr.contains("merged 8 cases from 4 directories"),
        "{out:?}"
    );
    assert_eq!(
        identity(&lines(&merged)),
        identity(&records),
        "merged shards = one run"
    );
    let m = report(&merged);
    assert_eq!(m["classes"], r["classes"]);
    assert_eq!(m["latency"]["count"], r["latency"]["count"]);
    assert_eq!(out.status, verdict_status(&r), "{out:?}");
    // Merging only half the shards: the rest is missing, and said so.
    let half = tmp.path().join("half");
    let out = fleet(&[
        "merge",
        shard_dirs[0].to_str().expect("utf-8"),
        shard_dirs[2].to_str().expect("utf-8"),
        "--out",
        half.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        out.status,
        i32::from(abi::status::FLEET_INCOMPLETE),
        "{out:?}"
    );
    assert_eq!(report(&half)["missing"], serde_json::json!([1, 3, 5, 7]));
    // A case replays: the one the report names first if any went bad, else case 0.
    let case = r["bad"][0]["first_case"].as_u64().unwrap_or(0).to_string();
    let out = fleet(&["replay", whole.to_str().expect("utf-8"), &case]);
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!("case {case} reproduced")),
        "{out:?}"
    );
}

#[test]
fn a_stopped_campaign_keeps_what_finished_and_resumes_past_a_cut_line() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = campaign(tmp.path(), "stop", 40);
    let dir = tmp.path().join("out");
    let permit = VmPermit::acquire();
    let child = std::process::Command::new(crate::VMM)
        .args(["fleet", "run", "--jobs", "1", "--out"])
        .arg(&dir)
        .arg(&file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start vmm fleet run");
    // Stop it once two cases are recorded (watching the file it appends to).
    let cases = dir.join("cases.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&cases).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no cases recorded in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait");
    drop(permit);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(i32::from(abi::status::FLEET_INCOMPLETE)),
        "{stderr}"
    );
    assert!(stderr.contains("stopped;"), "{stderr}");
    let kept = lines(&dir);
    assert!((2..40).contains(&kept.len()), "{} kept", kept.len());
    assert!(
        !dir.join("running").exists(),
        "no scratch files left behind"
    );
    // A run killed while writing leaves half a line: --resume drops it and goes on.
    let text = std::fs::read_to_string(&cases).expect("cases");
    let first = text.lines().next().expect("a line");
    std::fs::write(&cases, format!("{text}{}", &first[..first.len() / 2])).expect("cut");
    let out = fleet(&[
        "run",
        file.to_str().expect("utf-8"),
        "--out",
        dir.to_str().expect("utf-8"),
        "--jobs",
        "1",
        "--resume",
    ]);
    let all = lines(&dir);
    let indices: Vec<u64> = all
        .iter()
        .map(|r| r["case"].as_u64().expect("case"))
        .collect();
    let mut sorted = indices.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (0..40).collect::<Vec<_>>(), "every case once");
    assert_eq!(indices.len(), 40, "none run twice");
    assert_eq!(
        identity(&all[..kept.len()]),
        identity(&kept),
        "what finished was kept as it was"
    );
    assert_eq!(out.status, verdict_status(&report(&dir)), "{out:?}");
}

#[test]
fn bad_campaigns_shards_and_directories_get_one_line_and_their_status() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let good = campaign(tmp.path(), "good", 4);
    let good_s = good.to_str().expect("utf-8");
    let text = std::fs::read_to_string(&good).expect("read");
    let variant = |name: &str, from: &str, to: &str| {
        let p = tmp.path().join(name);
        assert!(text.contains(from), "{from}");
        std::fs::write(&p, text.replacen(from, to, 1)).expect("write");
        p.to_str().expect("utf-8").to_owned()
    };
    let unknown_server = variant("u.toml", "[\"kv\", \"fs\"]", "[\"kv\", \"kvv\"]");
    let bad_guest = variant("g.toml", "ops=60", "bogus=1");
    let missing_config = variant(
        "c.toml",
        "guest_args",
        "config = \"missing.toml\"\nguest_args",
    );
    let bad_kind = variant("k.toml", "\"panic\"", "\"melt\"");
    let a_file = tmp.path().join("plain-file");
    std::fs::write(&a_file, "x").expect("write");
    let a_file = a_file.to_str().expect("utf-8");
    /// Arguments, environment, status, the error line's gist.
    type Case<'a> = (&'a [&'a str], Vec<(&'a str, &'a str)>, u8, &'a str);
    let cases: [Case; 9] = [
        (
            &["run", &bad_guest],
            vec![],
            abi::status::CONFIG,
            "the golden run (the campaign's VM without a fault) exited 2: kernel: bad command line: bogus=1",
        ),
        (
            &["run", &missing_config],
            vec![],
            abi::status::CONFIG,
            "[campaign] config:",
        ),
        (
            &["run", &unknown_server],
            vec![],
            abi::status::IMAGE,
            "[[faults]] 1: servers: \"kvv\" is not a server of",
        ),
        (
            &["run", &bad_kind],
            vec![],
            abi::status::CONFIG,
            "[[faults]] 1: kinds: unknown fault kind \"melt\"",
        ),
        (
            &["run", good_s, "--shard", "4/4"],
            vec![],
            abi::status::USAGE,
            "--shard \"4/4\": expected I/N with 0 <= I < N",
        ),
        (
            &["run", good_s, "--shard", "auto"],
            vec![],
            abi::status::USAGE,
            "--shard auto:",
        ),
        (
            &["run", good_s, "--shard", "auto"],
            vec![("JOB_COMPLETION_INDEX", "1")],
            abi::status::USAGE,
            "JOB_COMPLETIONS is not",
        ),
        (
            &["run", good_s, "--out", a_file],
            vec![],
            abi::status::USAGE,
            "not a directory",
        ),
        (
            &["report", a_file],
            vec![],
            abi::status::USAGE,
            "no campaign results here",
        ),
    ];
    for (args, env, status, want) in cases {
        let mut all = vec!["fleet"];
        all.extend_from_slice(args);
        let mut cmd = vmm_cmd(crate::VMM, &all);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        let out = cmd.run();
        assert_eq!(out.status, i32::from(status), "{args:?}: {out:?}");
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| !l.contains("campaign good ("))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: {out:?}");
        assert!(errors[0].contains(want), "{args:?}: {}", errors[0]);
    }
    assert_eq!(
        std::fs::read_to_string(a_file).expect("read"),
        "x",
        "left as it was"
    );
}

/// The recovery policies are part of what a campaign ran: resuming after the campaign's
/// `config` file changed is refused, naming the change.
#[test]
fn a_changed_policy_file_is_not_mixed_into_the_results() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let policies = tmp.path().join("policies.toml");
    std::fs::copy(examples.join("recovery-default.toml"), &policies).expect("copy");
    let file = campaign(tmp.path(), "pol", 2);
    let text = std::fs::read_to_string(&file).expect("read");
    std::fs::write(
        &file,
        text.replacen("guest_args", "config = \"policies.toml\"\nguest_args", 1),
    )
    .expect("write");
    let dir = tmp.path().join("out");
    let args = [
        "run",
        file.to_str().expect("utf-8"),
        "--out",
        dir.to_str().expect("utf-8"),
        "--jobs",
        "1",
        "--resume",
    ];
    let out = fleet(&args);
    assert!(dir.join("report.json").exists(), "{out:?}");
    assert_eq!(out.status, verdict_status(&report(&dir)), "{out:?}");
    std::fs::copy(examples.join("recovery-failstop.toml"), &policies).expect("copy");
    let out = fleet(&args);
    assert_eq!(out.status, i32::from(abi::status::USAGE), "{out:?}");
    assert!(
        out.stderr
            .contains("its cases were run by another build: another config file"),
        "{out:?}"
    );
}
