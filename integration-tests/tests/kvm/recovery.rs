//! Recovery: a server crashed by `vmm run --fault SERVER:KIND@N` (a real CPU fault, panic, hang
//! or wild write in its own code, at its N-th message) is restored to its last boundary and
//! restarted while its peers keep their memory; the workload's model check passes, and
//! `--report` shows each crash and restore with its real cause.
//!
//! Deterministic: faults strike by message count, and nothing asserted depends on how the
//! guest's tasks interleave.

use crate::VMM;
use integration_tests::{Outcome, require_kvm, vmm_run};
use serde_json::Value;

/// Every server of the bundled guest, and a message number each surely reaches in a run of
/// `OPS` requests (names gets few messages, the crasher only the midpoint poke).
pub(crate) const SERVERS: [(&str, u64); 6] = [
    ("names", 8),
    ("kv", 60),
    ("fs", 60),
    ("bank", 60),
    ("crasher", 1),
    ("queue", 20),
];
/// Requests per run.
pub(crate) const OPS: &str = "ops=400";

/// A finished run and its `--report`.
pub(crate) struct Run {
    pub(crate) out: Outcome,
    pub(crate) report: Value,
}

/// Boots the bundled guest with `flags` (and `--report`), guest arguments `guest`.
pub(crate) fn run(flags: &[&str], guest: &[&str]) -> Run {
    require_kvm();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.json");
    let path_arg = path.to_str().expect("utf-8 path").to_owned();
    let mut args = vec!["--report", path_arg.as_str()];
    if !flags.contains(&"--timeout") {
        args.extend(["--timeout", "60"]);
    }
    args.extend_from_slice(flags);
    args.push("--");
    args.extend_from_slice(guest);
    let out = vmm_run(VMM, &args).run();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no report at {path_arg}: {e}; {out:?}"));
    let report = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad report {e}: {text}"));
    Run { out, report }
}

/// Runs with these faults.
pub(crate) fn with_faults(faults: &[String], extra: &[&str], guest: &[&str]) -> Run {
    let mut flags: Vec<&str> = Vec::new();
    for f in faults {
        flags.extend(["--fault", f]);
    }
    flags.extend_from_slice(extra);
    run(&flags, guest)
}

/// The run ended well: status 0, the workload's model check clean, and the report agrees.
pub(crate) fn assert_clean(r: &Run) {
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    let line = r
        .out
        .stdout
        .lines()
        .find(|l| l.starts_with("workload: ops="))
        .unwrap_or_else(|| panic!("no workload line: {:?}", r.out));
    assert!(
        line.ends_with(" errors=0 ") || line.contains(" errors=0 "),
        "{line}"
    );
    assert!(line.ends_with(" mismatches=0"), "{line}");
    assert_eq!(r.report["exit_status"], 0);
    assert!(matches!(
        r.report["backend"].as_str(),
        Some("pvm" | "hardware")
    ));
    assert_eq!(r.report["workload"]["mismatches"], 0, "{}", r.report);
    assert_eq!(r.report["workload"]["errors"], 0, "{}", r.report);
    assert_eq!(r.report["workload"]["lost"], 0, "{}", r.report);
}

pub(crate) fn server_entry<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|e| e["name"] == name))
        .unwrap_or_else(|| panic!("no server {name} in {report}"))
}

pub(crate) fn recoveries<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["recoveries"]
        .as_array()
        .map(|r| r.iter().filter(|e| e["server"] == name).collect())
        .unwrap_or_default()
}

/// `count` crashes of `name`, each on one stderr line as it happened, each rolled back.
pub(crate) fn assert_recovered(r: &Run, name: &str, count: u64) {
    assert_recovered_by(r, name, count, "rollback");
}

/// `count` crashes of `name`, each on one stderr line as it happened, each restored by `action`.
pub(crate) fn assert_recovered_by(r: &Run, name: &str, count: u64, action: &str) {
    let s = server_entry(&r.report, name);
    assert_eq!(s["crashes"], count, "{name}: {}", r.report);
    assert_eq!(s["restores"], count, "{name}: {}", r.report);
    assert_eq!(s["generation"], count, "{name}: {}", r.report);
    let fault_lines = r
        .out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("vmm: fault: {name} ")))
        .count();
    let restore_lines = r
        .out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("vmm: recovery: {name} gen ")))
        .filter(|l| l.contains(&format!("-> {action} ")) && l.contains(" [recovered, "))
        .count();
    assert_eq!(fault_lines as u64, count, "{name}: {:?}", r.out);
    assert_eq!(restore_lines as u64, count, "{name}: {:?}", r.out);
    for e in recoveries(&r.report, name) {
        assert_eq!(e["action"], action, "{e}");
        assert!(e["latency_us"].as_f64().is_some_and(|l| l > 0.0), "{e}");
        assert_eq!(e["decision"]["outcome"]["status"], "recovered", "{e}");
    }
}

/// What the report must say about a fault of `kind` in server `index`: the cause, whether a
/// `--fault` planned it, the CPU exception, and where (the rip in that server's own text; the
/// address for page faults).
fn assert_cause(e: &Value, index: usize, kind: &str, planned: bool) {
    let text = sysmap::text(index);
    let rip = e["rip"].as_u64().expect("rip");
    assert!(
        text.contains(rip),
        "rip {rip:#x} not in the server's text {text:?}: {e}"
    );
    // One name per fault: the report's cause is the kind's own name (and so is `injected`,
    // when a --fault planned it). What the CPU raised is the exception's own vocabulary.
    let exception = match kind {
        "null-deref" | "stack-overflow" => Some((14, "page-fault")),
        "illegal-insn" => Some((6, "invalid-opcode")),
        "div-zero" => Some((0, "divide-error")),
        "gp" => Some((13, "general-protection")),
        "panic" | "hang" | "corrupt-state" => None,
        other => panic!("unknown kind {other}"),
    };
    assert_eq!(e["cause"], kind, "{e}");
    let injected = if planned {
        Value::from(kind)
    } else {
        Value::Null
    };
    assert_eq!(e["injected"], injected, "{e}");
    match exception {
        Some((vector, name)) => {
            assert_eq!(e["exception"]["vector"], vector, "{e}");
            assert_eq!(e["exception"]["name"], name, "{e}");
        }
        None => assert!(e["exception"].is_null(), "{e}"),
    }
    match kind {
        "null-deref" => assert_eq!(e["addr"], 0, "{e}"),
        "stack-overflow" => {
            let addr = e["addr"].as_u64().expect("addr");
            assert!(sysmap::guard(index).contains(addr), "{addr:#x}: {e}");
        }
        "panic" => assert!(
            e["panic"]
                .as_str()
                .is_some_and(|p| p.starts_with("panicked at ")),
            "{e}"
        ),
        _ => {}
    }
}

/// Every server takes a fault of `kind` in one run: each is recovered, with its real cause,
/// and the workload's model check passes.
fn every_server_recovers_from(kind: &str) {
    let faults: Vec<String> = SERVERS
        .iter()
        .map(|(s, n)| format!("{s}:{kind}@{n}"))
        .collect();
    let r = with_faults(&faults, &[], &[OPS, "seed=11"]);
    assert_clean(&r);
    for (index, (name, n)) in SERVERS.iter().enumerate() {
        assert_recovered(&r, name, 1);
        let e = recoveries(&r.report, name)[0];
        assert_cause(e, index, kind, true);
        assert_eq!(e["messages"], *n, "struck at its {n}-th message: {e}");
        assert_eq!(e["generation"], 0, "{e}");
    }
}

#[test]
fn every_server_recovers_from_a_null_dereference() {
    every_server_recovers_from("null-deref");
}

#[test]
fn every_server_recovers_from_an_illegal_instruction() {
    every_server_recovers_from("illegal-insn");
}

#[test]
fn every_server_recovers_from_a_division_by_zero() {
    every_server_recovers_from("div-zero");
}

#[test]
fn every_server_recovers_from_a_general_protection_fault() {
    every_server_recovers_from("gp");
}

#[test]
fn every_server_recovers_from_a_stack_overflow() {
    every_server_recovers_from("stack-overflow");
}

#[test]
fn every_server_recovers_from_a_panic() {
    every_server_recovers_from("panic");
}

#[test]
fn every_server_recovers_from_a_hang() {
    every_server_recovers_from("hang");
}

#[test]
fn every_server_recovers_from_corrupted_state() {
    every_server_recovers_from("corrupt-state");
}

/// The issue's own check, at a smaller op count: kv crashes at its 500th message.
#[test]
fn kv_recovers_from_a_null_dereference_at_its_500th_message() {
    let r = with_faults(&["kv:null-deref@500".into()], &[], &["ops=1800"]);
    assert_clean(&r);
    assert_recovered(&r, "kv", 1);
    let e = recoveries(&r.report, "kv")[0];
    assert_cause(e, 1, "null-deref", true);
    assert_eq!(e["messages"], 500);
    assert_eq!(
        r.report["workload"]["retries"], 1,
        "the caller retried once"
    );
    // Snapshots were taken, batched into at most one exit each.
    let snaps = &r.report["snapshots"];
    let (boundaries, exits) = (snaps["boundaries"].as_u64(), snaps["exits"].as_u64());
    assert!(
        matches!((boundaries, exits), (Some(b), Some(x)) if b >= 500 && x >= 1 && x <= b),
        "{snaps}"
    );
}

/// One server, four crashes of four kinds: each fires once (the retried message does not crash
/// again), each is recovered, its generation counts them.
#[test]
fn a_server_recovers_again_and_again() {
    let faults = [
        "bank:null-deref@20",
        "bank:panic@40",
        "bank:corrupt-state@60",
        "bank:div-zero@80",
    ]
    .map(String::from);
    let r = with_faults(&faults, &[], &[OPS, "seed=5"]);
    assert_clean(&r);
    assert_recovered(&r, "bank", 4);
    let gens: Vec<u64> = recoveries(&r.report, "bank")
        .iter()
        .map(|e| e["generation"].as_u64().expect("generation"))
        .collect();
    assert_eq!(gens, [0, 1, 2, 3]);
    for s in ["names", "kv", "fs"] {
        assert_eq!(server_entry(&r.report, s)["crashes"], 0);
    }
}

/// A restore writes only the crashed server's pages: every peer's state arena is byte for byte
/// what it was (the VMM hashes them around each restore), and the workload's reads of every
/// server's data check out.
#[test]
fn a_restore_leaves_the_peers_untouched() {
    let faults = ["kv:corrupt-state@50", "fs:stack-overflow@50"].map(String::from);
    let r = with_faults(&faults, &["--check-isolation"], &[OPS, "seed=9"]);
    assert_clean(&r);
    let all = r.report["recoveries"].as_array().expect("recoveries");
    assert_eq!(all.len(), 2, "{}", r.report);
    for e in all {
        assert_eq!(e["peers_intact"], true, "{e}");
    }
    // The corrupted canary was written back: at least that page was restored.
    let kv = recoveries(&r.report, "kv")[0];
    assert!(
        kv["pages_restored"].as_u64().is_some_and(|p| p >= 1),
        "{kv}"
    );
}

/// A server that crashes before its first boundary (while it initialises) has no snapshot to
/// roll back to: it is restored to its boot image (version 0) and started again.
#[test]
fn a_crash_before_the_first_boundary_restores_the_boot_image() {
    let r = run(&[], &[OPS, "crasher=init"]);
    assert_clean(&r);
    assert_recovered_by(&r, "crasher", 1, "restart-fresh");
    let e = recoveries(&r.report, "crasher")[0];
    assert_eq!(e["messages"], 0, "{e}");
    assert_eq!(e["decision"]["window"]["boundary"], Value::Null, "{e}");
    assert_cause(e, 4, "null-deref", false);
}

/// Without recovery nothing is snapshotted and a crashed server stays stopped (see
/// guest_os.rs); with it, the same fault is invisible to the workload but for a retry.
#[test]
fn faults_need_recovery_and_bad_specs_are_refused_in_one_line() {
    require_kvm();
    // A malformed spec or flags that do not go together: 64; a server the image lacks: 66.
    let (usage, config) = (abi::status::USAGE, abi::status::CONFIG);
    let cases: [(&[&str], u8, &str); 5] = [
        (
            &["--fault", "kvv:panic@3"],
            config,
            "unknown server \"kvv\"",
        ),
        (
            &["--fault", "kv:melt@3"],
            usage,
            "unknown fault kind \"melt\"",
        ),
        (
            &["--fault", "kv:panic@0"],
            usage,
            "message number \"0\" must be",
        ),
        (&["--fault", "kv"], usage, "expected SERVER:KIND@N"),
        (
            &["--fault", "kv:panic@3", "--no-recovery"],
            usage,
            "--fault needs recovery",
        ),
    ];
    for (flags, status, want) in cases {
        let out = vmm_run(VMM, flags).run();
        assert_eq!(out.status, i32::from(status), "{flags:?}: {out:?}");
        let lines = out.error_lines();
        assert_eq!(lines.len(), 1, "{flags:?}: {out:?}");
        assert!(lines[0].starts_with("vmm: "), "{flags:?}: {out:?}");
        assert!(
            lines[0].contains(want),
            "{flags:?}: want {want:?} in {out:?}"
        );
    }
    let plain = vmm_run(
        VMM,
        &[integration_tests::PLAINGUEST, "--fault", "kv:panic@3"],
    )
    .run();
    assert_eq!(plain.status, i32::from(abi::status::CONFIG), "{plain:?}");
    assert!(plain.stderr.contains("declares no servers"), "{plain:?}");
}

/// The console line of load client `client` (`kvload: 704 requests in 2000 ms, ...`).
fn client_line<'a>(r: &'a Run, client: &str) -> &'a str {
    r.out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{client}: ")))
        .unwrap_or_else(|| panic!("no {client} line: {:?}", r.out))
}

/// Five clients drive every server at once while the kernel batches their snapshots: no client
/// loses anything by it.
#[test]
fn five_clients_with_batched_snapshots_lose_nothing() {
    let r = run(
        &[],
        &[
            "ops=0",
            "namesload=100",
            "kvload=100",
            "fsload=100",
            "bankload=100",
            "queueload=100",
        ],
    );
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    for client in ["namesload", "kvload", "fsload", "bankload", "queueload"] {
        let line = client_line(&r, client);
        assert!(line.ends_with(", mismatches 0"), "{line}");
    }
    assert!(
        r.report["snapshots"]["boundaries"].as_u64() > Some(0),
        "{}",
        r.report
    );
}

/// The bank's audit trail makes three servers wait at a boundary at once, whatever the timing:
/// a deposit or withdrawal leaves kv at its boundary (it answered the bank's ADD), then queue (it
/// answered the journal PUSH), then the bank at its own (it answered the client), and none runs
/// again before the client's next request to the bank; so their snapshots are taken in the one
/// SNAPSHOTS exit before the bank runs. Only these three take snapshots here, so an exit carries
/// one to three.
#[test]
fn snapshots_of_waiting_servers_share_an_exit() {
    let r = run(&[], &["ops=0", "bankload=100"]);
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    let line = client_line(&r, "bankload");
    assert!(line.ends_with(", mismatches 0"), "{line}");
    let snaps = &r.report["snapshots"];
    let (boundaries, exits) = (
        snaps["boundaries"].as_u64().unwrap_or(0),
        snaps["exits"].as_u64().unwrap_or(0),
    );
    assert!(exits > 0, "{snaps}");
    assert!(
        exits < boundaries,
        "the audited requests shared exits: {snaps}"
    );
    assert!(
        3 * exits >= boundaries,
        "at most three snapshots per exit: {snaps}"
    );
}

/// One server crashes while another is being recovered: kv's policy waits 1 s before it
/// restarts kv (a backoff, from a config file), and fs, driven by its own client, crashes in
/// that second. Both are recovered, fs first although it crashed second; nothing is lost.
///
/// The order is set by message counts, not by timing: kv crashes at its 10th message and fs at
/// its 100th, and the kernel's round-robin runs kvload and fsload in turn, so kv's crash comes
/// first; fs's 90 further round trips take a few tens of milliseconds against kv's 1 s. The
/// report's own clock says whether fs crashed inside kv's recovery, and `during_recovery_of`
/// must agree with it.
#[test]
fn a_crash_while_another_server_is_being_restored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("backoff.toml");
    std::fs::write(&config, "[recovery.servers.kv]\nbackoff_ms = 1000\n").expect("config");
    let config = config.to_str().expect("utf-8 path");
    let faults = ["kv:null-deref@10", "fs:null-deref@100"].map(String::from);
    let r = with_faults(
        &faults,
        &["--config", config],
        &["ops=0", "kvload=150", "fsload=150"],
    );
    assert_clean(&r);
    assert_recovered(&r, "kv", 1);
    assert_recovered(&r, "fs", 1);
    let kv = recoveries(&r.report, "kv")[0];
    let fs = recoveries(&r.report, "fs")[0];
    assert_eq!(kv["decision"]["delay_us"], 1_000_000, "{kv}");
    // When each crash reached the VMM, and when each server ran again (µs on the engine's clock).
    let at = |e: &serde_json::Value| e["decision"]["at_us"].as_f64().expect("at_us");
    let back = |e: &serde_json::Value| at(e) + e["latency_us"].as_f64().expect("latency_us");
    assert!(
        back(kv) - at(kv) >= 900_000.0,
        "kv waited out its backoff: {kv}"
    );
    let inside = at(kv) < at(fs) && at(fs) < back(kv);
    assert_eq!(
        fs["during_recovery_of"] == serde_json::json!(["kv"]),
        inside,
        "during_recovery_of against the clock: {fs}"
    );
    assert!(
        inside,
        "kv crashed first by message count, fs within its backoff: {kv} {fs}"
    );
    assert!(back(fs) < back(kv), "fs did not wait for kv: {fs} {kv}");
}

/// A documented config file chooses the policy: a kv crash stops the VM with the fail-stop
/// status, and the report says why.
#[test]
fn a_fail_stop_policy_stops_the_vm_with_a_report() {
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/recovery-failstop.toml"
    );
    let r = with_faults(&["kv:panic@20".into()], &["--config", config], &[OPS]);
    assert_eq!(
        r.out.status,
        i32::from(abi::status::FAIL_STOP),
        "{:?}",
        r.out
    );
    assert_eq!(r.report["exit_status"], i32::from(abi::status::FAIL_STOP));
    let e = recoveries(&r.report, "kv")[0];
    assert_eq!(e["action"], "fail-stop", "{e}");
    assert!(
        r.report["message"]
            .as_str()
            .is_some_and(|m| m.contains("recovery policy stopped the VM after a crash of kv")),
        "{}",
        r.report
    );
}
