//! Pausing and resuming through the control API (`PATCH /vm`): the guest's clock stops, for
//! `--timeout` and for a recovery's latency.

use crate::VMM;
use integration_tests::http::{json_request as request, named};
use integration_tests::{require_kvm, vmm_run};
use std::path::Path;

/// `PATCH /vm` pauses and resumes the guest, and the time it spends paused does not count
/// toward `--timeout`: paused for longer than its whole timeout, the run still ends as the
/// guest does (status 0), its wall time past the timeout.
#[test]
fn a_paused_vm_stops_its_clock_for_the_timeout() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("p.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let running = vmm_run(
        VMM,
        &[
            "-q",
            "--timeout",
            "5",
            "--api-sock",
            sock_s,
            "--",
            "ops=2500",
        ],
    )
    .start_until("workload: seed");
    let (status, paused) = request(&sock, "PATCH", "/vm", "{\"state\": \"Paused\"}");
    assert_eq!(
        (status, &paused["state"]),
        (200, &serde_json::json!("Paused"))
    );
    assert_eq!(request(&sock, "GET", "/vm", "").1["state"], "Paused");
    // A paused kernel plans nothing: a fault is refused at once, not after a wait.
    let asked = std::time::Instant::now();
    let (status, e) = request(&sock, "PUT", "/servers/kv/fault", "{\"kind\": \"panic\"}");
    assert_eq!(status, 409, "{e}");
    assert!(
        e["error"].as_str().is_some_and(|e| e.contains("paused")),
        "{e}"
    );
    assert!(asked.elapsed() < std::time::Duration::from_secs(1));
    let up = |v: &serde_json::Value| v["uptime_ms"].as_u64().expect("uptime_ms");
    let before = up(&request(&sock, "GET", "/vm", "").1);
    // Held paused past the whole timeout: the stimulus, not a wait for something.
    std::thread::sleep(std::time::Duration::from_secs(6));
    // The guest's uptime stood still meanwhile (a millisecond of rounding).
    let after = up(&request(&sock, "GET", "/vm", "").1);
    assert!(
        after <= before + 1,
        "uptime {before} -> {after} ms while paused"
    );
    // Resumed with the client.
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "resume"]).run();
    assert_eq!(
        (ctl.status, ctl.stdout.as_str()),
        (0, "Running\n"),
        "{ctl:?}"
    );
    let (status, bad) = request(&sock, "PATCH", "/vm", "{\"state\": \"Asleep\"}");
    assert_eq!(status, 400, "{bad}");
    let out = running.wait();
    assert_eq!(out.status, 0, "the paused time did not count: {out:?}");
    assert!(
        out.wall > std::time::Duration::from_secs(6),
        "{:?}",
        out.wall
    );
    let result = out
        .stdout
        .lines()
        .rfind(|l| l.starts_with("workload: ops="))
        .expect("result line");
    assert!(result.ends_with(" mismatches=0"), "{result}");
}

/// A pause while a server waits out its restart backoff stops the guest's clock: the backoff
/// (guest ticks) resumes where it was, and the recovery's latency does not count the pause.
#[test]
fn a_pause_during_a_recovery_is_not_in_its_latency() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("p.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let config = tmp.path().join("backoff.toml");
    std::fs::write(&config, "[recovery.servers.kv]\nbackoff_ms = 1000\n").expect("config");
    let running = vmm_run(
        VMM,
        &[
            "--api-sock",
            sock_s,
            "--config",
            config.to_str().expect("utf-8"),
            "--",
            "ops=forever",
        ],
    )
    .start_until("workload: seed");
    let kv = |sock: &Path| {
        let (_, servers) = request(sock, "GET", "/servers", "");
        named(&servers, "kv").cloned().expect("kv")
    };
    let (status, planned) = request(&sock, "PUT", "/servers/kv/fault", "{\"kind\": \"panic\"}");
    assert_eq!(status, 200, "{planned}");
    // Crashed, restored, and waiting out its second of backoff: pause now, for 1.5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while kv(&sock)["crashes"] != 1 {
        assert!(std::time::Instant::now() < deadline, "kv did not crash");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let (status, _) = request(&sock, "PATCH", "/vm", "{\"state\": \"Paused\"}");
    assert_eq!(status, 200);
    let back = kv(&sock);
    assert!(
        back["last_recovery"]["latency_us"].is_null(),
        "still backing off: {back}"
    );
    // Held paused: the stimulus, not a wait for something.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (status, _) = request(&sock, "PATCH", "/vm", "{\"state\": \"Resumed\"}");
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let latency = loop {
        if let Some(l) = kv(&sock)["last_recovery"]["latency_us"].as_f64() {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "kv did not come back");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    // The backoff (1 s of guest time, counted in 10 ms ticks, so a tick may fall short) and the
    // recovery itself; not the 1.5 s paused.
    assert!(
        (0.9e6..1.4e6).contains(&latency),
        "latency {latency} us: the pause counted, or the backoff did not"
    );
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "stop"]).run();
    assert_eq!(ctl.status, 0, "{ctl:?}");
    assert_eq!(running.wait().status, 143);
}
