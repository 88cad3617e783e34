//! The control API (`vmm run --api-sock`): a fault planned over the socket while the workload
//! runs crashes that server at its next message, the VMM restores it and the workload ends
//! clean; bad requests get 4xx with a JSON error; a client that connects and sends nothing
//! stalls nothing; the socket is owner-only, removed at exit, and a path holding something else
//! is refused before boot.

use crate::VMM;
use integration_tests::documented::{assert_documented, openapi, openmetrics_families};
use integration_tests::http::{self, json_answer as raw_answer, json_request as request};
use integration_tests::{require_kvm, vmm_run};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;

#[test]
fn a_fault_planned_over_the_api_is_recovered_while_the_workload_runs() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("v.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let running =
        vmm_run(VMM, &["--api-sock", sock_s, "--", "ops=4000"]).start_until("workload: seed");
    let mode = std::fs::metadata(&sock)
        .expect("the socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "owner-only");
    // The event stream, from before the faults to the VM's end.
    let events = std::process::Command::new(VMM)
        .args(["ctl", sock_s, "--json", "events"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vmm ctl events");
    // A client that connects and never sends: the API cuts it off, nothing else waits on it.
    let idle = UnixStream::connect(&sock).expect("connect");
    let (status, vm) = request(&sock, "GET", "/vm", "");
    assert_eq!(
        (status, &vm["state"]),
        (200, &serde_json::json!("Running")),
        "{vm}"
    );
    let (status, servers) = request(&sock, "GET", "/servers", "");
    assert_eq!(status, 200);
    assert!(
        servers
            .as_array()
            .expect("servers")
            .iter()
            .any(|s| s["name"] == "kv")
    );
    // Bad requests: 4xx, JSON errors, nothing planned.
    for (method, path, body, want) in [
        ("PUT", "/servers/kvv/fault", "{\"kind\": \"panic\"}", 404),
        ("PUT", "/servers/kv/fault", "{\"kind\": \"melt\"}", 400),
        ("PUT", "/servers/kv/fault", "{\"kind\": \"Panic\"}", 400),
        ("PUT", "/servers/kv/fault", "not json", 400),
        (
            "PUT",
            "/servers/kv/fault",
            "{\"kind\": \"panic\", \"when\": 1}",
            400,
        ),
        ("PATCH", "/vm", "{\"state\": \"Paused\", \"x\": 1}", 400),
        ("DELETE", "/servers/fs/fault", "", 404),
        ("POST", "/vm", "", 405),
        ("GET", "/nothing", "", 404),
    ] {
        let (status, e) = request(&sock, method, path, body);
        assert_eq!(status, want, "{method} {path} {body}: {e}");
        assert!(e["error"].is_string(), "{e}");
    }
    // A fault aimed at a server that gets no message (the crasher, with this workload) stays
    // pending, and can be cancelled, once.
    let (status, planned) = request(
        &sock,
        "PUT",
        "/servers/crasher/fault",
        "{\"kind\": \"panic\"}",
    );
    assert_eq!(status, 200, "{planned}");
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "cancel", "crasher"]).run();
    assert_eq!(
        (ctl.status, ctl.stdout.as_str()),
        (0, "crasher: cancelled\n"),
        "{ctl:?}"
    );
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "cancel", "crasher"]).run();
    assert_eq!(ctl.status, i32::from(abi::status::CONFIG), "{ctl:?}");
    assert!(
        ctl.stderr.contains("no fault pending for crasher"),
        "{ctl:?}"
    );
    // Every path docs/openapi.json lists is served with the methods it lists, and no others
    // (the listed ones, asked without a body, say what is missing; none of them acts).
    let doc = openapi();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path.replace("{name}", "kv");
        for method in ["GET", "PUT", "PATCH", "DELETE", "POST"] {
            let listed = item.get(method.to_lowercase().as_str()).is_some();
            if listed && method == "GET" {
                continue; // read below, or streamed
            }
            let (status, e) = request(&sock, method, &concrete, "");
            if listed {
                assert!(
                    status != 405 && !e["error"].as_str().unwrap_or("").starts_with("no resource"),
                    "{method} {path} is in docs/openapi.json but not served: {status} {e}"
                );
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path}: not in docs/openapi.json: {e}"
                );
            }
        }
    }
    let mut big = UnixStream::connect(&sock).expect("connect");
    write!(
        big,
        "PUT /servers/kv/fault HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"
    )
    .expect("send");
    assert_eq!(raw_answer(big).0, 413);
    let (status, planned) = request(&sock, "PUT", "/servers/kv/fault", "{\"kind\": \"panic\"}");
    assert_eq!(status, 200, "{planned}");
    // kv back at work before fs crashes: the two recoveries happen one after the other.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !http::named(&request(&sock, "GET", "/servers", "").1, "kv")
        .is_some_and(|s| s["last_recovery"]["latency_us"].is_number())
    {
        assert!(std::time::Instant::now() < deadline, "kv never came back");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The client: fs, with the kind its stack overflows by.
    let ctl =
        integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "fault", "fs", "stack-overflow"]).run();
    assert_eq!(ctl.status, 0, "{ctl:?}");
    assert_eq!(
        ctl.stdout,
        "fs: stack-overflow planned for its next message\n"
    );
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "fault", "fss", "panic"]).run();
    assert_eq!(ctl.status, i32::from(abi::status::CONFIG), "{ctl:?}");
    assert!(ctl.stderr.contains("no server \"fss\""), "{ctl:?}");
    // Requests the VM refuses for their size reach ctl as refusals (66), their error short,
    // not as a reset ("no VM answers").
    let (long_name, long_kind) = ("k".repeat(20_000), "x".repeat(70_000));
    for (server, kind, why) in [
        (long_name.as_str(), "panic", "request head over"),
        ("kv", long_kind.as_str(), "at most"),
        (&long_name[..100], "panic", "no server"),
    ] {
        let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "fault", server, kind]).run();
        assert_eq!(ctl.status, i32::from(abi::status::CONFIG), "{ctl:?}");
        assert!(ctl.stderr.contains(why), "{ctl:?}");
        assert!(ctl.stderr.len() < 400, "{ctl:?}");
    }
    // While the VM runs, GET /servers shows both restores (polled: they come at the servers'
    // next messages).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let servers = loop {
        let (status, servers) = request(&sock, "GET", "/servers", "");
        assert_eq!(status, 200);
        // Restored, and back at work (the latency is known once the server runs again).
        let back = |name: &str| {
            http::named(&servers, name).is_some_and(|s| {
                s["restores"].as_u64().unwrap_or(0) >= 1
                    && s["last_recovery"]["latency_us"].is_number()
            })
        };
        if back("kv") && back("fs") {
            break servers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no restores seen: {servers}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_documented(&doc, "get", "/servers", &servers);
    // A stream opened now gets the records from before it came, in the order they happened
    // (read to its end, with the VM's).
    let late = {
        let s = UnixStream::connect(&sock).expect("connect");
        let mut w = s.try_clone().expect("clone");
        write!(w, "GET /events HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
        std::thread::spawn(move || http::answer(s))
    };
    let (_, vm) = request(&sock, "GET", "/vm", "");
    assert_documented(&doc, "get", "/vm", &vm);
    let kv = http::named(&servers, "kv").expect("kv");
    assert_eq!(kv["generation"], 1, "{kv}");
    assert_eq!(kv["last_recovery"]["cause"], "panic", "{kv}");
    assert_eq!(kv["last_recovery"]["action"], "rollback", "{kv}");
    // The metrics show both restores, as OpenMetrics text.
    let mut m = UnixStream::connect(&sock).expect("connect");
    write!(m, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
    let mut text = String::new();
    m.read_to_string(&mut text).expect("metrics");
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.contains("Content-Type: application/openmetrics-text"),
        "{text}"
    );
    let body = text.split("\r\n\r\n").nth(1).expect("a body");
    assert!(
        body.contains("vmm_restores_total{server=\"kv\",cause=\"panic\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("vmm_restores_total{server=\"fs\",cause=\"stack-overflow\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("vmm_crashes_total{server=\"kv\",cause=\"panic\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("vmm_recovery_latency_seconds_count 2"),
        "{body}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    let families = openmetrics_families(body);
    for family in [
        "vmm_crashes",
        "vmm_restores",
        "vmm_recovery_latency_seconds",
        "vmm_requests",
        "vmm_messages",
        "vmm_generation",
        "vmm_pages_restored",
        "vmm_boundary_snapshots",
    ] {
        assert!(
            families.iter().any(|f| f == family),
            "{family} not parsed: {families:?}"
        );
    }
    drop(idle);
    let out = running.wait();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("vmm: recovery: kv gen 0 panic")),
        "kv crashed and was restored: {out:?}"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("vmm: recovery: fs gen 0 stack-overflow")),
        "fs crashed and was restored: {out:?}"
    );
    let result = out
        .stdout
        .lines()
        .rfind(|l| l.starts_with("workload: ops="))
        .expect("result line");
    assert!(result.ends_with(" mismatches=0"), "{result}");
    assert!(!sock.exists(), "the socket is removed at exit");
    // The stream ended with the VM and carried both recoveries, in order of happening.
    let streamed = events.wait_with_output().expect("events");
    assert_eq!(streamed.status.code(), Some(0), "{streamed:?}");
    let mut lines: Vec<serde_json::Value> = String::from_utf8_lossy(&streamed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    // Its last record says how the VM ended: as `vmm run` did.
    let last = lines.pop().expect("records");
    assert_eq!(
        (&last["event"], last["exit_status"].as_i64()),
        (&serde_json::json!("stopped"), Some(i64::from(out.status))),
        "{last}"
    );
    let seen: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|e| {
            (
                e["event"].as_str().expect("event"),
                e["server"].as_str().expect("server"),
                e["cause"].as_str().expect("cause"),
            )
        })
        .collect();
    // Each crash: its fault first, then its recovery, which carries the latency.
    for (server, cause) in [("kv", "panic"), ("fs", "stack-overflow")] {
        let at = |event| seen.iter().position(|s| *s == (event, server, cause));
        let (fault, back) = (at("fault"), at("recovery"));
        assert!(fault.is_some() && fault < back, "{server}: {seen:?}");
        let r = &lines[back.expect("a recovery")];
        assert!(r["latency_us"].as_f64() > Some(0.0), "{r}");
        assert_eq!(r["action"], "rollback", "{r}");
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    // The late stream: the same records in the same order (kv's fault and recovery, then
    // fs's), and the same end.
    let (status, body) = late.join().expect("the late stream");
    assert_eq!(status, 200);
    let late: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let order = |records: &[serde_json::Value]| -> Vec<(String, String)> {
        records
            .iter()
            .map(|e| (e["event"].to_string(), e["server"].to_string()))
            .collect()
    };
    let happened: Vec<(String, String)> = [
        ("fault", "kv"),
        ("recovery", "kv"),
        ("fault", "fs"),
        ("recovery", "fs"),
    ]
    .iter()
    .map(|(e, s)| (format!("{e:?}"), format!("{s:?}")))
    .collect();
    assert_eq!(order(&lines), happened, "{lines:?}");
    assert_eq!(order(&late[..late.len() - 1]), happened, "{late:?}");
    assert_eq!(
        late.last().map(|l| &l["event"]),
        Some(&serde_json::json!("stopped"))
    );
    // It carries the final figures: those of the workload's own last line.
    let stopped = late.last().expect("stopped");
    assert!(stopped["workload"]["ops"].as_u64() > Some(0), "{stopped}");
    assert!(
        stopped["servers"].as_array().is_some_and(|s| s.len() == 6),
        "{stopped}"
    );
}

#[test]
fn a_path_that_is_not_a_stale_socket_is_refused_before_boot() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("file");
    std::fs::write(&file, "keep").expect("write");
    let out = vmm_run(
        VMM,
        &["--api-sock", file.to_str().expect("utf-8"), "--", "ops=10"],
    )
    .run();
    assert_eq!(out.status, i32::from(abi::status::USAGE), "{out:?}");
    assert!(out.stderr.contains("exists and is not a socket"), "{out:?}");
    assert!(out.stdout.is_empty(), "no boot: {out:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep");
    // A stale socket (nobody serving) is taken over.
    let stale = tmp.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    assert!(
        std::fs::symlink_metadata(&stale)
            .expect("meta")
            .file_type()
            .is_socket()
    );
    let out = vmm_run(
        VMM,
        &[
            "-q",
            "--api-sock",
            stale.to_str().expect("utf-8"),
            "--",
            "ops=10",
        ],
    )
    .run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(!stale.exists(), "removed at exit");
}

/// `--metrics-addr` serves the same OpenMetrics text over TCP on loopback (and nothing else
/// there); an address beyond loopback needs `--metrics-public`, else the run is refused.
#[test]
fn metrics_are_served_over_tcp_on_loopback_only_unless_asked() {
    require_kvm();
    let refused = vmm_run(VMM, &["--metrics-addr", "0.0.0.0:9464", "--", "ops=10"]).run();
    assert_eq!(refused.status, i32::from(abi::status::USAGE), "{refused:?}");
    assert!(refused.stderr.contains("--metrics-public"), "{refused:?}");
    // A free port (taken, then let go), for the VM to serve on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let running =
        vmm_run(VMM, &["--metrics-addr", &addr, "--", "ops=3000"]).start_until("workload: seed");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("answer");
        text
    };
    // Clients that connect and send nothing hold up no scrape (each would hold a lone
    // server for its 2 s).
    let idle: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    let asked = std::time::Instant::now();
    let metrics = get("/metrics");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(2),
        "a scrape waited {:?} behind idle clients",
        asked.elapsed()
    );
    drop(idle);
    assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
    assert!(
        metrics.contains("vmm_generation{server=\"kv\"} 0"),
        "{metrics}"
    );
    assert!(metrics.ends_with("# EOF\n"), "{metrics}");
    assert!(
        get("/vm").starts_with("HTTP/1.1 404"),
        "only /metrics over TCP"
    );
    let out = running.wait();
    assert_eq!(out.status, 0, "{out:?}");
    // Where it served them, said at boot (the port, for one the system picks with :0).
    assert!(
        out.stderr
            .contains(&format!("vmm: metrics at http://{addr}/metrics\n")),
        "{out:?}"
    );
}

/// `PUT /actions` with `{"action_type": "Stop"}` (`vmm ctl stop`) stops the VM as SIGTERM
/// would: status 143, a line saying so, the report written, the socket removed.
/// An unbounded load (`ops=forever kvload=forever`) publishes its figures while it runs, and
/// stopping through the API ends the run as SIGTERM would.
#[test]
fn a_stop_through_the_api_ends_the_run_as_sigterm_would() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("s.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let report = tmp.path().join("r.json");
    let running = vmm_run(
        VMM,
        &[
            "--api-sock",
            sock_s,
            "--report",
            report.to_str().expect("utf-8"),
            "--",
            "ops=forever",
            "kvload=forever",
        ],
    )
    .start_until("workload: seed");
    // An unbounded load publishes its figures as it goes: per server (the workload's share
    // and kvload's, summed for kv), and in total.
    let kv =
        |servers: &serde_json::Value| http::named(servers, "kv").cloned().expect("kv in /servers");
    let ops = |v: &serde_json::Value| v["requests"]["ops"].as_u64().expect("requests.ops");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let first = loop {
        let (status, servers) = request(&sock, "GET", "/servers", "");
        assert_eq!(status, 200, "{servers}");
        if ops(&kv(&servers)) > 0 {
            break kv(&servers);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no progress: {servers}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(first["messages"].as_u64() >= Some(ops(&first)), "{first}");
    assert_eq!(first["requests"]["mismatches"], 0, "{first}");
    let (_, vm) = request(&sock, "GET", "/vm", "");
    let total = vm["workload"]["ops"].as_u64().expect("workload.ops");
    assert!(total >= ops(&first), "{vm}");
    let later = loop {
        let (_, servers) = request(&sock, "GET", "/servers", "");
        if ops(&kv(&servers)) > ops(&first) {
            break kv(&servers);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no more progress: {servers}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        later["messages"].as_u64() > first["messages"].as_u64(),
        "{later}"
    );
    let (status, bad) = request(&sock, "PUT", "/actions", "{\"action_type\": \"Reboot\"}");
    assert_eq!(status, 400, "{bad}");
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "stop"]).run();
    assert_eq!(
        (ctl.status, ctl.stdout.as_str()),
        (0, "stopping\n"),
        "{ctl:?}"
    );
    let out = running.wait();
    assert_eq!(out.status, 143, "{out:?}");
    assert!(
        out.stderr.contains("vmm: stopped through the control API"),
        "{out:?}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(r["exit_status"], 143);
    // The workload never reported (it runs until the VM stops): the report carries what its
    // clients had published, at least what /servers showed before the stop, and says so on
    // vmm's last line.
    assert!(r["workload"].is_null(), "{r}");
    let so_far = &r["workload_so_far"];
    assert!(so_far["ops"].as_u64() >= Some(ops(&later)), "{r}");
    assert_eq!(so_far["mismatches"], 0, "{r}");
    assert!(out.stderr.contains("; workload so far ops="), "{out:?}");
    assert!(!sock.exists());
}

/// A kind the VMM injects, planned over the API: the injector carries it out at the server's
/// next message, the event stream and the report carry its record, and the spec it prints
/// replays the same corruption in a fresh run.
#[test]
fn a_vmm_kind_planned_live_is_injected_reported_and_replayable() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("v.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let report = tmp.path().join("r.json");
    let running = vmm_run(
        VMM,
        &[
            "--api-sock",
            sock_s,
            "--report",
            report.to_str().expect("utf-8"),
            "--",
            "ops=forever",
        ],
    )
    .start_until("workload: seed");
    let events = std::process::Command::new(VMM)
        .args(["ctl", sock_s, "--json", "events"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vmm ctl events");
    let (status, planned) = request(
        &sock,
        "PUT",
        "/servers/kv/fault",
        "{\"kind\": \"flip-branch\"}",
    );
    assert_eq!(status, 200, "{planned}");
    // Carried out at kv's next message: the report of it arrives on the stream.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, servers) = request(&sock, "GET", "/servers", "");
        let kv = http::named(&servers, "kv").cloned().expect("kv");
        // Messages are published every tick: well past the one the fault was planned for.
        if kv["messages"].as_u64() > Some(50) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "kv got no messages");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ctl = integration_tests::vmm_cmd(VMM, &["ctl", sock_s, "stop"]).run();
    assert_eq!(ctl.status, 0, "{ctl:?}");
    let out = running.wait();
    assert_eq!(out.status, 143, "{out:?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("vmm: inject: kv flip-branch at message "))
        .unwrap_or_else(|| panic!("no injection: {out:?}"))
        .to_owned();
    let replay = line
        .rsplit_once("; replay: ")
        .map(|(_, spec)| spec.to_owned())
        .expect("a replay spec");
    // The stream carried it.
    let streamed = events.wait_with_output().expect("events");
    let injection = String::from_utf8_lossy(&streamed.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
        .find(|e| e["event"] == "injection")
        .unwrap_or_else(|| panic!("no injection event: {streamed:?}"));
    assert_eq!(
        (&injection["target"], &injection["kind"]),
        (&serde_json::json!("kv"), &serde_json::json!("flip-branch")),
        "{injection}"
    );
    assert_eq!(
        injection["concrete"]["spec"],
        replay.as_str(),
        "{injection}"
    );
    // The report has it, with its message.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let recorded = r["injections"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["kind"] == "flip-branch"))
        .unwrap_or_else(|| panic!("not in the report: {r}"));
    assert!(recorded["message"].as_u64() > Some(0), "{recorded}");
    // A fresh run with the printed spec makes the same corruption at the same message.
    let again = vmm_run(VMM, &["--fault", &replay, "--", "ops=20000"]).run();
    assert!(
        again.stderr.lines().any(|l| l == line),
        "{line:?} not replayed: {again:?}"
    );
}
