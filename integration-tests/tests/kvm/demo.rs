//! `vmm demo`: the dashboard under tmux at 160x48 (a fault through `vmm ctl`, and one from the
//! `c` key, show in the event log with the server, the kind and "recovered" within 2 s; `q`
//! exits 0 with a summary and the report), and the lines it prints without a terminal.

use crate::VMM;
use integration_tests::{require_kvm, vmm_cmd, vmm_run};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// tmux on its own server socket (`-S`), so that the test touches no other session.
fn tmux(server: &Path, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(server)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tmux is needed for this test (.ci/run installs it): {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls the screen until `want` holds of it (each poll a fresh capture); the screen, and how
/// long it took.
fn screen_until(
    server: &Path,
    within: Duration,
    want: impl Fn(&str) -> bool,
) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let screen = tmux(server, &["capture-pane", "-p", "-t", "demo"]);
        if want(&screen) {
            return (screen, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "not seen within {within:?}:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tmux session "demo" at 160x48 running `line`, on its own server; killed when dropped.
struct Session<'a>(&'a Path);

impl<'a> Session<'a> {
    fn start(server: &'a Path, line: &str) -> Self {
        tmux(
            server,
            &[
                "new-session",
                "-d",
                "-s",
                "demo",
                "-x",
                "160",
                "-y",
                "48",
                line,
            ],
        );
        Self(server)
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        tmux(self.0, &["kill-server"]);
    }
}

/// The exit status the pane's shell wrote to `code` (written whole before the pane shows the
/// prompt's line).
fn written(code: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(code).unwrap_or_default();
        if text.ends_with('\n') {
            return text;
        }
        assert!(Instant::now() < deadline, "no status written");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A GET on the API socket: the body.
fn get(sock: &Path, path: &str) -> String {
    integration_tests::http::request(sock, "GET", path, "").1
}

#[test]
fn the_dashboard_shows_a_crash_and_its_recovery_and_quits_cleanly() {
    require_kvm();
    let _permit = integration_tests::VmPermit::acquire();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = tmp.path().join("tmux");
    let sock = tmp.path().join("v.sock");
    let code = tmp.path().join("code");
    let report = tmp.path().join("r.json");
    let line = format!(
        "{VMM} demo --api-sock {} --report {}; echo $? > {}; read x",
        sock.display(),
        report.display(),
        code.display()
    );
    let _session = Session::start(&server, &line);
    let (screen, _) = screen_until(&server, Duration::from_secs(60), |s| {
        s.contains("vmm demo Running") && s.contains("workload: seed")
    });
    for part in [
        " servers ",
        " workload so far ",
        " events ",
        " console ",
        "q quit",
    ] {
        assert!(screen.contains(part), "{part:?} missing:\n{screen}");
    }
    // A fault from another terminal.
    // (Not through `vmm_cmd(..).run()`, which waits for a VM permit: this test holds one.)
    let ctl = Command::new(VMM)
        .args(["ctl", sock.to_str().expect("utf-8"), "fault", "kv", "panic"])
        .output()
        .expect("vmm ctl");
    assert!(ctl.status.success(), "{ctl:?}");
    let (screen, took) = screen_until(&server, Duration::from_secs(10), |s| {
        s.contains("kv: panic recovered by rollback")
    });
    assert!(took < Duration::from_secs(2), "took {took:?}:\n{screen}");
    assert!(screen.contains("kv: panic at rip 0x"), "{screen}");
    // From the keyboard: the second row is kv; `c` crashes it with the kind shown (panic).
    tmux(&server, &["send-keys", "-t", "demo", "Down", "c"]);
    let (screen, took) = screen_until(&server, Duration::from_secs(10), |s| {
        s.matches("kv: panic recovered by rollback").count() == 2
    });
    assert!(took < Duration::from_secs(2), "took {took:?}:\n{screen}");
    assert!(
        screen.contains("kv: panic planned for its next message"),
        "{screen}"
    );
    // The servers' table (polled 4 times a second) follows: kv, selected, at generation 2.
    let kv_at_2 = |s: &str| {
        s.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.get(1..4) == Some(&["kv", "running", "2"][..]) && cells[0].ends_with('>')
        })
    };
    let (screen, _) = screen_until(&server, Duration::from_secs(2), kv_at_2);
    assert!(screen.contains("verdict    clean"), "{screen}");
    // Both restores in the metrics.
    let metrics = get(&sock, "/metrics");
    assert!(
        metrics.contains("vmm_restores_total{server=\"kv\",cause=\"panic\"} 2"),
        "{metrics}"
    );
    tmux(&server, &["send-keys", "-t", "demo", "q"]);
    let (screen, _) = screen_until(&server, Duration::from_secs(20), |s| {
        s.contains("vmm demo: ") && code.exists()
    });
    let status = written(&code);
    assert_eq!(status.trim(), "0", "{screen}");
    assert!(screen.contains("stopped by you"), "{screen}");
    assert!(screen.contains("mismatches=0 (clean)"), "{screen}");
    assert!(
        screen.contains("kv: 2 crashes, 2 restores, now generation 2"),
        "{screen}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("the report")).expect("JSON");
    assert_eq!(r["exit_status"], 143, "{r}");
    let kv = integration_tests::http::named(&r["servers"], "kv").expect("kv in the report");
    assert_eq!(kv["restores"], 2, "{r}");
    // The workload was still going: the report has what it had published, clean.
    assert!(r["workload"].is_null(), "{r}");
    assert!(r["workload_so_far"]["ops"].as_u64() > Some(0), "{r}");
    assert_eq!(r["workload_so_far"]["mismatches"], 0, "{r}");
    assert!(!sock.exists(), "the socket is gone with the VM");
}

/// A SIGTERM to the dashboard quits as `q` does: the VM stopped, the summary printed, the
/// terminal back from the alternate screen, status 0.
#[test]
fn a_sigterm_quits_the_dashboard_and_gives_the_terminal_back() {
    require_kvm();
    let _permit = integration_tests::VmPermit::acquire();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = tmp.path().join("tmux");
    let sock = tmp.path().join("v.sock");
    let code = tmp.path().join("code");
    let line = format!(
        "{VMM} demo --api-sock {}; echo $? > {}; read x",
        sock.display(),
        code.display()
    );
    let _session = Session::start(&server, &line);
    screen_until(&server, Duration::from_secs(60), |s| {
        s.contains("vmm demo Running") && s.contains("workload: seed")
    });
    assert_eq!(
        tmux(&server, &["display", "-p", "-t", "demo", "#{alternate_on}"]).trim(),
        "1",
        "the dashboard is on the alternate screen"
    );
    // The pane's shell, and its child: the demo.
    let shell = tmux(&server, &["display", "-p", "-t", "demo", "#{pane_pid}"]);
    let shell = shell.trim();
    let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
        .expect("the shell's children");
    let demo: i32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the demo's pid");
    // SAFETY: not memory: a signal to the demo this test started.
    assert_eq!(unsafe { libc::kill(demo, libc::SIGTERM) }, 0);
    let (screen, _) = screen_until(&server, Duration::from_secs(20), |s| {
        s.contains("vmm demo: ") && code.exists()
    });
    assert!(screen.contains("stopped by you"), "{screen}");
    assert!(screen.contains("mismatches=0 (clean)"), "{screen}");
    let status = written(&code);
    assert_eq!(status.trim(), "0", "{screen}");
    assert_eq!(
        tmux(&server, &["display", "-p", "-t", "demo", "#{alternate_on}"]).trim(),
        "0",
        "the terminal is back from the alternate screen:\n{screen}"
    );
    assert!(!sock.exists(), "the socket is gone with the VM");
}

/// Closing the terminal (the tmux session goes) quits the dashboard as `q` does: the demo and
/// its VM end, the socket goes (crossterm alone spun on the closed terminal for ever).
#[test]
fn closing_the_terminal_ends_the_demo_and_its_vm() {
    require_kvm();
    let _permit = integration_tests::VmPermit::acquire();
    let tmp = tempfile::tempdir().expect("tmp");
    let server = tmp.path().join("tmux");
    let sock = tmp.path().join("v.sock");
    let line = format!("exec {VMM} demo --api-sock {}", sock.display());
    let _session = Session::start(&server, &line);
    screen_until(&server, Duration::from_secs(60), |s| {
        s.contains("vmm demo Running") && s.contains("workload: seed")
    });
    // `exec`: the pane's process is the demo.
    let demo = tmux(&server, &["display", "-p", "-t", "demo", "#{pane_pid}"]);
    let demo = format!("/proc/{}", demo.trim());
    assert!(Path::new(&demo).exists());
    tmux(&server, &["kill-server"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&demo).exists() || sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the demo or its VM outlived the terminal"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Without a terminal (stdout a pipe) the demo prints lines: the run's output, each fault and
/// recovery, and at a SIGINT it stops the VM and prints its summary.
#[test]
fn without_a_terminal_the_demo_prints_lines_and_stops_at_sigint() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("v.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let running = vmm_cmd(VMM, &["demo", "--api-sock", sock_s]).start_until("workload: seed");
    let ctl = vmm_cmd(VMM, &["ctl", sock_s, "fault", "fs", "stack-overflow"]).run();
    assert_eq!(ctl.status, 0, "{ctl:?}");
    // Until fs is back (polled through the API).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&sock, "/servers").contains("\"restores\":1") {
        assert!(Instant::now() < deadline, "fs not restored");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.signal(libc::SIGINT);
    let out = running.wait();
    assert_eq!(out.status, 0, "{out:?}");
    let demo_lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("demo: "))
        .collect();
    assert!(
        demo_lines
            .iter()
            .any(|l| l.contains("fs: stack-overflow at rip 0x")),
        "{out:?}"
    );
    assert!(
        demo_lines
            .iter()
            .any(|l| l.contains("fs: stack-overflow recovered by rollback")),
        "{out:?}"
    );
    assert!(out.stdout.contains("stopped by you"), "{out:?}");
    assert!(out.stdout.contains("fs: 1 crash, 1 restore"), "{out:?}");
    assert!(
        out.stderr.contains("vmm: stopped through the control API"),
        "{out:?}"
    );
}

/// `--image` boots the image given; the lines say where the API is; a stop through the API
/// from another terminal is a stop (exit 0 with a clean workload), said with the VM's own
/// words, and `vmm ctl events` ends with it (0).
#[test]
fn a_demo_of_an_image_stopped_from_another_terminal_says_so() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("v.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let running = vmm_cmd(
        VMM,
        &[
            "demo",
            "--no-tui",
            "--api-sock",
            sock_s,
            "--image",
            integration_tests::KERNEL,
        ],
    )
    .start_until("workload: seed");
    let events = std::process::Command::new(VMM)
        .args(["ctl", sock_s, "events"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vmm ctl events");
    let stop = vmm_cmd(VMM, &["ctl", sock_s, "stop"]).run();
    assert_eq!(stop.status, 0, "{stop:?}");
    let out = running.wait();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("vmm: booting {}", integration_tests::KERNEL)),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "demo: control API at {sock_s} (vmm ctl {sock_s} status"
        )),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("stopped: stopped through the control API (as by SIGTERM)"),
        "{out:?}"
    );
    let streamed = events.wait_with_output().expect("events");
    assert_eq!(streamed.status.code(), Some(0), "{streamed:?}");
    assert!(
        String::from_utf8_lossy(&streamed.stdout).ends_with(
            "the VM stopped with status 143: stopped through the control API (as by SIGTERM)\n"
        ),
        "{streamed:?}"
    );
}

/// A run that ends by itself says why: a fail-stop policy's line, the crashed server in the
/// summary, the run's own status; `vmm ctl events` of a VM killed outright fails (88).
#[test]
fn a_demo_that_ends_by_itself_says_why_and_a_killed_vm_is_no_clean_end() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let sock = tmp.path().join("v.sock");
    let sock_s = sock.to_str().expect("utf-8");
    let config = tmp.path().join("failstop.toml");
    std::fs::write(&config, "[recovery.servers.kv]\npolicy = \"fail-stop\"\n").expect("config");
    let running = vmm_cmd(
        VMM,
        &[
            "demo",
            "--no-tui",
            "--api-sock",
            sock_s,
            "--config",
            config.to_str().expect("utf-8"),
        ],
    )
    .start_until("workload: seed");
    let ctl = vmm_cmd(VMM, &["ctl", sock_s, "fault", "kv", "panic"]).run();
    assert_eq!(ctl.status, 0, "{ctl:?}");
    let out = running.wait();
    assert_eq!(out.status, i32::from(abi::status::FAIL_STOP), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "ended by itself with status {}: recovery policy stopped the VM after a crash of kv",
            abi::status::FAIL_STOP
        )),
        "{out:?}"
    );
    assert!(out.stdout.contains("kv: 1 crash, 0 restores"), "{out:?}");
    // A guest that refuses its command line: its reason on the summary's first line.
    let out = vmm_cmd(VMM, &["demo", "--no-tui", "--", "bogus=1"]).run();
    assert_eq!(out.status, 2, "{out:?}");
    assert!(
        out.stdout
            .contains(", ended by itself with status 2: guest log: bad command line: bogus=1"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("KVM backend ?"), "{out:?}");

    let running =
        vmm_run(VMM, &["--api-sock", sock_s, "--", "ops=forever"]).start_until("workload: seed");
    // A demo asked to serve on that VM's live socket is refused before it starts (it showed
    // the other VM's events as its own).
    let refused = vmm_cmd(VMM, &["demo", "--no-tui", "--api-sock", sock_s]).run();
    assert_eq!(refused.status, i32::from(abi::status::USAGE), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    assert!(
        refused.stderr.contains("a socket someone is serving on"),
        "{refused:?}"
    );
    let mut events = std::process::Command::new(VMM)
        .args(["ctl", sock_s, "events"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("vmm ctl events");
    // The stream is open once it carries a crash.
    let ctl = vmm_cmd(VMM, &["ctl", sock_s, "fault", "kv", "panic"]).run();
    assert_eq!(ctl.status, 0, "{ctl:?}");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(events.stdout.as_mut().expect("stdout")),
        &mut first,
    )
    .expect("a record");
    assert!(first.starts_with("kv: panic at rip"), "{first}");
    running.signal(libc::SIGKILL);
    let _ = running.wait();
    let streamed = events.wait_with_output().expect("events");
    assert_eq!(
        streamed.status.code(),
        Some(i32::from(abi::status::CTL_UNREACHABLE)),
        "{streamed:?}"
    );
    assert!(
        String::from_utf8_lossy(&streamed.stderr)
            .contains("ended before the VM said how it stopped"),
        "{streamed:?}"
    );
}
