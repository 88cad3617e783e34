//! Every row of the exit-status contract (`abi::status::TABLE`, docs/exit-status.md, `vmm
//! --help`) is observed: a command that ends with it, run for real. Rows that need a special
//! environment get it through a documented switch (`VMM_KVM_DEVICE` for a host without usable
//! KVM) or a real condition (a report written to /dev/full for an internal failure).

use crate::VMM;
use abi::status;
use integration_tests::{TESTGUEST, VmPermit, observed_backend, require_kvm, vmm_cmd, vmm_run};
use std::collections::BTreeMap;
use std::path::Path;

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples")
}

/// A small campaign whose every case is stopped by the fail-stop policy (a bad case).
fn fail_stop_campaign(dir: &Path) -> String {
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[campaign]\nname = \"s\"\nseed = 1\ncases = 2\ntimeout_secs = 20\nconfig = \"{}\"\nguest_args = [\"ops=40\"]\n[[faults]]\nservers = [\"kv\"]\nkinds = [\"panic\"]\nmessages = [2, 8]\n",
            examples().join("recovery-failstop.toml").display()
        ),
    )
    .expect("campaign");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn every_row_of_the_exit_status_table_is_observed() {
    require_kvm();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut seen: BTreeMap<&'static str, i32> = BTreeMap::new();
    let mut expect = |name: &'static str, out: integration_tests::Outcome| {
        let row = status::TABLE
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no row {name}"));
        assert!(
            (i32::from(row.first)..=i32::from(row.last)).contains(&out.status),
            "{name}: status {} not in {}-{}: {out:?}",
            out.status,
            row.first,
            row.last
        );
        seen.insert(name, out.status);
    };
    expect("guest", vmm_run(VMM, &["-q", "--", "ops=10"]).run());
    expect("usage", vmm_run(VMM, &["--memroy", "5"]).run());
    expect("image", vmm_run(VMM, &["/nonexistent/guest.elf"]).run());
    expect("config", vmm_run(VMM, &["--memory", "0"]).run());
    expect(
        "host",
        vmm_run(VMM, &["-q", "--", "ops=10"])
            .env("VMM_KVM_DEVICE", "/dev/null")
            .run(),
    );
    expect(
        "internal",
        vmm_run(VMM, &["-q", "--report", "/dev/full", "--", "ops=10"]).run(),
    );
    expect(
        "triple-fault",
        vmm_run(VMM, &[TESTGUEST, "--", "mode=triple-fault"]).run(),
    );
    // KVM's internal error: on KVM-PVM, SSE in ring 0; hardware KVM runs it (no such row there).
    if observed_backend(VMM) == "pvm" {
        expect(
            "guest-internal-error",
            vmm_run(VMM, &[TESTGUEST, "--", "mode=sse"]).run(),
        );
    }
    expect(
        "protocol",
        vmm_run(
            VMM,
            &[
                integration_tests::PLAINGUEST,
                "--strict-io",
                "--",
                "storm=10",
            ],
        )
        .run(),
    );
    expect(
        "timeout",
        vmm_run(VMM, &[TESTGUEST, "--timeout", "0.5", "--", "mode=halt"]).run(),
    );
    let failstop = examples().join("recovery-failstop.toml");
    expect(
        "fail-stop",
        vmm_run(
            VMM,
            &[
                "-q",
                "--config",
                failstop.to_str().expect("utf-8"),
                "--fault",
                "kv:panic@5",
                "--",
                "ops=40",
            ],
        )
        .run(),
    );
    // Campaigns: bad cases (every case fail-stops), incomplete (half the shards merged), and a
    // replay that does not reproduce (its record edited).
    let campaign = fail_stop_campaign(tmp.path());
    let out_dir = tmp.path().join("out");
    let out_s = out_dir.to_str().expect("utf-8");
    let fleet = |args: &[&str]| {
        let permit = VmPermit::acquire();
        vmm_cmd(VMM, args).run_with(&permit)
    };
    expect(
        "fleet-bad",
        fleet(&["fleet", "run", &campaign, "--out", out_s, "--jobs", "1"]),
    );
    let shard = tmp.path().join("shard");
    let shard_s = shard.to_str().expect("utf-8");
    let out = fleet(&[
        "fleet", "run", &campaign, "--out", shard_s, "--jobs", "1", "--shard", "0/2",
    ]);
    assert_eq!(out.status, i32::from(status::FLEET_BAD), "{out:?}");
    let half = tmp.path().join("half");
    expect(
        "fleet-incomplete",
        fleet(&[
            "fleet",
            "merge",
            shard_s,
            "--out",
            half.to_str().expect("utf-8"),
        ]),
    );
    let cases = out_dir.join("cases.jsonl");
    let text = std::fs::read_to_string(&cases).expect("cases");
    std::fs::write(&cases, text.replacen("\"fail-stop\"", "\"recovered\"", 1)).expect("edit");
    expect("not-reproduced", fleet(&["fleet", "replay", out_s, "0"]));
    expect(
        "ctl-unreachable",
        vmm_cmd(VMM, &["ctl", "/nonexistent/v.sock", "status"]).run(),
    );
    // A signal: SIGTERM to a spinning guest.
    let running = vmm_run(VMM, &[TESTGUEST, "--", "mode=spin"]).start_until("spinning");
    running.signal(libc::SIGTERM);
    expect("signal", running.wait());
    let rows: Vec<&str> = status::TABLE
        .iter()
        .map(|r| r.name)
        .filter(|n| *n != "guest-internal-error" || observed_backend(VMM) == "pvm")
        .collect();
    let observed: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|r| seen.contains_key(r))
        .collect();
    assert_eq!(observed, rows, "every row observed: {seen:?}");
}

/// Without usable KVM (here: a device that is not KVM), every command that would run a VM says
/// so at once, in one line, with the host status: before the boot line, before any benchmark
/// child or campaign case.
#[test]
fn no_usable_kvm_is_said_at_once_by_every_command_that_runs_vms() {
    let tmp = tempfile::tempdir().expect("tmp");
    let campaign = fail_stop_campaign(tmp.path());
    let out_dir = tmp.path().join("out");
    for args in [
        vec!["run", "--", "ops=10"],
        vec!["bench", "boot", "--runs", "1"],
        vec!["bench", "recovery", "--rounds", "1", "--seconds", "1"],
        vec!["bench", "fleet", "--cases", "1"],
        vec![
            "fleet",
            "run",
            &campaign,
            "--out",
            out_dir.to_str().expect("utf-8"),
        ],
    ] {
        let out = vmm_cmd(VMM, &args).env("VMM_KVM_DEVICE", "/dev/null").run();
        assert_eq!(out.status, i32::from(status::HOST), "{args:?}: {out:?}");
        let lines: Vec<&str> = out.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {out:?}");
        assert!(
            lines[0].contains("/dev/null is not a KVM device"),
            "{args:?}: {out:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
    assert!(!out_dir.exists(), "no campaign directory made");
}
