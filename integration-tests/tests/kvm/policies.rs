//! Recovery policies, one test per action, each chosen by a documented config file under
//! docs/examples/ (or by the no-configuration default) and shown by what the client observes:
//!
//! | action | config | observed |
//! |---|---|---|
//! | replay | recovery-replay.toml | the request is delivered again: no error, retries=0 |
//! | restart-fresh | recovery-restart.toml | "state lost": the workload resets its model, lost>0 |
//! | rollback-peers | default (recovery-default.toml) | the peer goes back too: the audit holds |
//! | (tracking off) | recovery-no-tracking.toml | the peer keeps the effect: audit mismatch |
//! | escalation | recovery-escalation.toml | rollback, rollback, restart-fresh, fail-stop |
//! | unsafe dependency | default / recovery-unsafe-restart.toml | fail-stop / restart-fresh |
//!
//! The dependency scenario: the bank audits every balance change in kv's counters and journals
//! it in a queue of the queue server; `bank:panic@N:after-send` crashes the bank after its
//! handler called kv's ADD and queue's PUSH and before it replied: two peers hold its effects.
//! Rolled back alone, the bank forgets the change, kv keeps the ADD and queue the PUSH, and the
//! client's retry adds both again: the final sweep finds kv's counter off from the balance and
//! the journal one entry too long.

use crate::kvm::recovery::{
    Run, assert_clean, assert_recovered_by, recoveries, server_entry, with_faults,
};
use serde_json::Value;

fn example(name: &str) -> String {
    format!("{}/../docs/examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The actions of `name`'s recoveries, in order.
fn actions<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    recoveries(report, name)
        .into_iter()
        .map(|e| &e["action"])
        .collect()
}

/// The workload's result line.
fn result_line(r: &Run) -> &str {
    r.out
        .stdout
        .lines()
        .find(|l| l.starts_with("workload: ops="))
        .unwrap_or_else(|| panic!("no workload line: {:?}", r.out))
}

/// The crash the dependency scenario makes: the bank, after it called kv at its 10th message
/// or the first one after that which does.
const BANK_AFTER_AUDIT: &str = "bank:panic@10:after-send";
const OPS: &str = "ops=400";

/// With the default policy (tracking on), the bank's crash after its audit and journal calls
/// rolls both peers back, kv and queue, each to its snapshot from before the bank's call: a
/// consistent cut over three servers. The client retries; the audit matches every balance and
/// the journal holds one entry per change (the workload's sweep checks both), so both peers'
/// pages were put back.
#[test]
fn a_crash_after_a_state_changing_send_rolls_the_peer_back_too() {
    for config in [None, Some(example("recovery-default.toml"))] {
        let extra: Vec<&str> = config.iter().flat_map(|c| ["--config", c]).collect();
        let r = with_faults(&[BANK_AFTER_AUDIT.into()], &extra, &[OPS, "seed=3"]);
        assert_clean(&r);
        let e = recoveries(&r.report, "bank");
        assert_eq!(e.len(), 1, "{}", r.report);
        let e = e[0];
        assert_eq!(e["action"], "rollback-peers", "{e}");
        assert_eq!(e["decision"]["action"]["own"], "rollback", "{e}");
        let peers = e["peers_rolled_back"].as_array().expect("peers");
        let names: Vec<&Value> = peers.iter().map(|p| &p["server"]).collect();
        assert_eq!(names, ["kv", "queue"], "{e}");
        for p in peers {
            assert!(
                p["pages"].as_u64() >= Some(1),
                "the ADD and the PUSH each changed a page that went back: {e}"
            );
        }
        // kv answered the audit call and waits at its boundary, its snapshot batched: the
        // FAULT hands that snapshot over and the VMM takes it before it decides, so that kv
        // goes back to just before the call, not to an older boundary. (Other servers waiting
        // at theirs are taken too.) Not a matter of timing: between kv's reply and the bank's
        // crash nothing else is ready at the servers' priority, so no switch (which would take
        // every pending snapshot) comes between.
        let first = e["snapshots_taken_first"].as_array().expect("a list");
        assert!(first.contains(&Value::from("kv")), "{e}");
        assert!(first.contains(&Value::from("queue")), "{e}");
        assert!(
            e["decision"]["window"]["state_changing"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            "the window holds the audit call: {e}"
        );
        for peer in ["kv", "queue"] {
            assert_eq!(server_entry(&r.report, peer)["peer_rollbacks"], 1, "{peer}");
            assert_eq!(server_entry(&r.report, peer)["crashes"], 0, "{peer}");
        }
        assert!(
            r.report["workload"]["retries"]
                .as_u64()
                .is_some_and(|n| n >= 1),
            "the client resent the request the bank forgot: {}",
            r.report
        );
        assert!(
            r.out
                .stderr
                .lines()
                .any(|l| l.starts_with("vmm: recovery: bank gen 0")
                    && l.contains("-> rollback-peers(rollback, kv@")
                    && l.contains(", queue@")),
            "{:?}",
            r.out
        );
    }
}

/// The bank crashes after its audit call, and again on the client's retry (whose audit reached
/// kv, already rolled back once): each crash is a consistent cut of its own, the second finds
/// kv's snapshot under the number the kernel goes on counting.
#[test]
fn a_crash_on_the_retry_is_cut_again() {
    let faults = ["bank:panic@10:after-send", "bank:panic@11:after-send"].map(String::from);
    let r = with_faults(&faults, &[], &[OPS, "seed=3"]);
    assert_clean(&r);
    let cuts: Vec<&Value> = actions(&r.report, "bank");
    assert_eq!(cuts, ["rollback-peers", "rollback-peers"], "{}", r.report);
    assert_eq!(server_entry(&r.report, "kv")["peer_rollbacks"], 2);
    assert_eq!(server_entry(&r.report, "queue")["peer_rollbacks"], 2);
    assert_eq!(r.report["workload"]["retries"], 2, "{}", r.report);
}

/// The same crash with tracking turned off by a config file: the bank is rolled back alone, kv
/// keeps the effect of the audit call the bank forgot, and the client's retry is audited twice.
/// The workload's audit check catches it: this is what dependency tracking prevents.
#[test]
fn without_dependency_tracking_the_same_crash_breaks_consistency() {
    let config = example("recovery-no-tracking.toml");
    let r = with_faults(
        &[BANK_AFTER_AUDIT.into()],
        &["--config", &config],
        &[OPS, "seed=3"],
    );
    let e = recoveries(&r.report, "bank");
    assert_eq!(e.len(), 1, "{}", r.report);
    assert_eq!(e[0]["action"], "rollback", "{}", e[0]);
    assert!(
        e[0]["peers_rolled_back"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert!(
        r.report["workload"]["mismatches"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{}",
        r.report
    );
    for check in ["sweep bank audit", "sweep bank journal"] {
        assert!(
            r.out.stdout.contains(check),
            "the sweep names the inconsistency ({check}): {:?}",
            r.out
        );
    }
    assert_ne!(r.out.status, 0, "{:?}", r.out);
}

/// A cut that cannot be made: with two snapshot versions per server, the bank's transfer (two
/// audit calls to kv, two journal entries in queue) outruns kv's kept snapshots, so kv cannot go
/// back to before the first call. The default stops the VM and says why; recovery-unsafe-restart.toml restarts the bank
/// fresh instead, and the workload is told (state lost, model reset, audit not checked).
#[test]
fn an_unrecoverable_dependency_escalates_to_fail_stop_or_a_fresh_restart() {
    let fault = ["bank:panic@120:after-send".to_owned()];
    let guest = ["ops=2000", "seed=3"];
    let r = with_faults(&fault, &["--snapshot-versions", "2"], &guest);
    assert_eq!(
        r.out.status,
        i32::from(abi::status::FAIL_STOP),
        "{:?}",
        r.out
    );
    let e = recoveries(&r.report, "bank")[0];
    assert_eq!(e["action"], "fail-stop", "{e}");
    assert_eq!(
        e["decision"]["window"]["state_changing"], 4,
        "the transfer's two audits and two journal entries: {e}"
    );
    assert!(
        e["decision"]["reason"]
            .as_str()
            .is_some_and(|m| m.contains("kv") && m.contains("cannot be rolled back")),
        "{e}"
    );
    let config = example("recovery-unsafe-restart.toml");
    let r = with_faults(
        &fault,
        &["--snapshot-versions", "2", "--config", &config],
        &guest,
    );
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    let e = recoveries(&r.report, "bank")[0];
    assert_eq!(e["action"], "restart-fresh", "{e}");
    let w = &r.report["workload"];
    assert_eq!(w["mismatches"], 0, "{}", r.report);
    assert!(w["lost"].as_u64().is_some_and(|n| n >= 1), "{}", r.report);
    for line in [
        "workload: bank state lost: model reset",
        "workload: audit not checked: bank lost its state",
    ] {
        assert!(
            r.out.stdout.lines().any(|l| l == line),
            "{line}: {:?}",
            r.out
        );
    }
}

/// Replay: the server's policy delivers the request it crashed on again (every request here is
/// declared idempotent), so its client never sees an error and never retries.
#[test]
fn replay_answers_the_client_without_an_error_or_a_retry() {
    let config = example("recovery-replay.toml");
    let r = with_faults(
        &["kv:null-deref@35".into()],
        &["--config", &config],
        &[OPS, "seed=3"],
    );
    assert_clean(&r);
    assert_recovered_by(&r, "kv", 1, "replay");
    let e = recoveries(&r.report, "kv")[0];
    assert_eq!(e["decision"]["in_flight"]["idempotent"], true, "{e}");
    assert_eq!(r.report["workload"]["retries"], 0, "{}", r.report);
}

/// A replayed request that crashes the server again is not replayed a second time: the policy's
/// `on_replay_crash` (rollback) answers it "peer restarted", and the client retries once.
#[test]
fn a_request_is_replayed_at_most_once() {
    let config = example("recovery-replay.toml");
    let r = with_faults(
        &["kv:null-deref@35".into(), "kv:panic@36".into()],
        &["--config", &config],
        &[OPS, "seed=3"],
    );
    assert_clean(&r);
    let kv: Vec<&Value> = actions(&r.report, "kv");
    assert_eq!(kv, ["replay", "rollback"], "{}", r.report);
    let second = recoveries(&r.report, "kv")[1];
    assert_eq!(second["decision"]["in_flight"]["replays"], 1, "{second}");
    assert_eq!(r.report["workload"]["retries"], 1, "{}", r.report);
}

/// Restart from the initial image: the server comes back empty, its clients are told ("state
/// lost"), the workload resets its model of it and counts the loss; nothing is lost silently.
#[test]
fn a_fresh_restart_declares_the_state_lost_and_the_workload_is_told() {
    let config = example("recovery-restart.toml");
    let r = with_faults(
        &["kv:panic@100".into()],
        &["--config", &config],
        &[OPS, "seed=3"],
    );
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    assert_recovered_by(&r, "kv", 1, "restart-fresh");
    let w = &r.report["workload"];
    assert_eq!(w["mismatches"], 0, "{}", r.report);
    assert_eq!(w["errors"], 0, "{}", r.report);
    assert!(w["lost"].as_u64().is_some_and(|n| n >= 1), "{}", r.report);
    assert!(
        r.out
            .stdout
            .lines()
            .any(|l| l == "workload: kv state lost: model reset"),
        "{:?}",
        r.out
    );
    assert!(result_line(&r).ends_with(" mismatches=0"), "{:?}", r.out);
}

/// A tight crash budget (recovery-escalation.toml: two rollbacks per 10 s, then one fresh
/// restart, then fail-stop): four crashes of kv walk the whole chain.
#[test]
fn repeated_crashes_escalate_to_a_fresh_restart_then_a_fail_stop() {
    let config = example("recovery-escalation.toml");
    let faults = ["kv:panic@30", "kv:panic@60", "kv:panic@90", "kv:panic@120"].map(String::from);
    let r = with_faults(&faults, &["--config", &config], &[OPS, "seed=3"]);
    assert_eq!(
        r.out.status,
        i32::from(abi::status::FAIL_STOP),
        "{:?}",
        r.out
    );
    let kv: Vec<&Value> = actions(&r.report, "kv");
    assert_eq!(
        kv,
        ["rollback", "rollback", "restart-fresh", "fail-stop"],
        "{}",
        r.report
    );
    assert!(
        r.report["message"]
            .as_str()
            .is_some_and(|m| m.contains("kv")),
        "{}",
        r.report
    );
}

/// Invalid recovery sections are refused before the guest boots, in one line naming the file,
/// the key and the bad value, with the config status (66). Apps are not servers.
#[test]
fn invalid_recovery_configs_get_one_line_errors() {
    integration_tests::require_kvm();
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "[recovery.servers.kvv]\npolicy = \"rollback\"\n",
            "recovery.servers.kvv: unknown server",
        ),
        (
            "[recovery.servers.workload]\npolicy = \"rollback\"\n",
            "recovery.servers.workload: unknown server",
        ),
        (
            "[recovery.default]\npolicy = \"rolback\"\n",
            "unknown policy",
        ),
        (
            "[recovery.servers.fs]\nmax_crashes = 0\n",
            "must be between 1 and 100000",
        ),
        (
            "[recovery.default]\nescalate = [\"restart\"]\n",
            "must end with \"fail-stop\"",
        ),
        ("[recovery]\ndependency_tracking = \"no\"\n", "line 2"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).expect("config");
        let path = path.to_str().expect("utf-8 path");
        let out = integration_tests::vmm_run(crate::VMM, &["--config", path]).run();
        assert_eq!(
            out.status,
            i32::from(abi::status::CONFIG),
            "{text}: {out:?}"
        );
        let lines = out.error_lines();
        assert_eq!(lines.len(), 1, "{text}: {out:?}");
        assert!(lines[0].contains(path), "names the file: {out:?}");
        assert!(lines[0].contains(want), "{text}: want {want:?} in {out:?}");
        assert!(
            !out.stdout.contains("workload:"),
            "refused before the guest ran: {out:?}"
        );
    }
}
