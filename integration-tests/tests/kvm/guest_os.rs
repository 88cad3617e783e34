//! The bundled microkernel guest: every server starts, the workload's requests all check out,
//! and a task that faults is confined (its peers keep serving, the VMM hears of it and still
//! controls the VM).

use crate::VMM;
use abi::status;
use integration_tests::{Outcome, require_kvm, vmm_run};

const SERVERS: [&str; 6] = ["names", "kv", "fs", "bank", "crasher", "queue"];

/// Boots the bundled guest with these guest arguments (and a timeout).
fn boot(timeout: &str, guest_args: &[&str]) -> Outcome {
    boot_with(&["--timeout", timeout], guest_args)
}

/// Boots the bundled guest with these `vmm run` flags and guest arguments.
fn boot_with(flags: &[&str], guest_args: &[&str]) -> Outcome {
    require_kvm();
    let mut args = flags.to_vec();
    args.push("--");
    args.extend_from_slice(guest_args);
    vmm_run(VMM, &args).run()
}

/// The one `workload: ops=` line of the console, which is also the last line the guest prints.
fn workload_line(out: &Outcome) -> &str {
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("workload: ops="))
        .collect();
    assert_eq!(lines.len(), 1, "want one workload line: {out:?}");
    assert_eq!(
        out.stdout.lines().last(),
        Some(lines[0]),
        "the run must end with it: {out:?}"
    );
    lines[0]
}

fn fault_lines(out: &Outcome) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("vmm: fault: "))
        .collect()
}

#[test]
fn the_workload_passes_on_every_server() {
    let out = boot("60", &["ops=500", "seed=7"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        workload_line(&out),
        "workload: ops=500 errors=0 retries=0 lost=0 mismatches=0",
        "{out:?}"
    );
    for server in SERVERS.iter().filter(|s| **s != "crasher") {
        assert!(
            out.stdout.contains(&format!("{server}: ready")),
            "{server} did not start: {out:?}"
        );
    }
    // The VMM got the figures by hypercall, not from the console.
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("workload ops=500 errors=0 retries=0 lost=0 mismatches=0"),
        "{out:?}"
    );
    assert!(fault_lines(&out).is_empty(), "{out:?}");
}

#[test]
fn seed_and_op_count_come_from_the_command_line() {
    let a = boot("60", &["ops=300", "seed=1"]);
    let b = boot("60", &["ops=300", "seed=2"]);
    for out in [&a, &b] {
        assert_eq!(out.status, 0, "{out:?}");
        assert!(
            workload_line(out).starts_with("workload: ops=300 "),
            "{out:?}"
        );
    }
    assert!(a.stdout.contains("workload: seed 1, 300 requests"), "{a:?}");
    assert!(b.stdout.contains("workload: seed 2, 300 requests"), "{b:?}");
}

/// A command line the kernel does not accept stops the VM at boot, before any task runs, with
/// status 2 and one console line naming the token; nothing runs with a default instead.
#[test]
fn a_bad_command_line_stops_the_boot_with_the_token_named() {
    for (arg, why) in [
        ("ops=abc", "expected a whole number"),
        (
            "opps=5",
            "unknown key: expected ops, seed or the name of a task that takes a value: \
             crasher, namesload, kvload, fsload, bankload, queueload",
        ),
        ("crasher=bogus", "unknown mode"),
        ("kvload=3s", "ticks"),
    ] {
        let out = boot_with(&["--timeout", "60", "-q"], &["seed=3", arg]);
        assert_eq!(out.status, 2, "{arg}: {out:?}");
        let line = format!("kernel: bad command line: {arg}: ");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(why)),
            "{arg}: {out:?}"
        );
        assert!(!out.stdout.contains("workload:"), "no task ran: {out:?}");
        // vmm's own stderr says why too (even with -q), not only the guest's console.
        let said = format!("vmm: the guest stopped with status 2: bad command line: {arg}: ");
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with(&said) && l.contains(why)),
            "{arg}: {out:?}"
        );
    }
}

/// `crasher=KIND` makes the crasher take that fault under the workload's midpoint call. With
/// recovery off, the crasher stays stopped: the kernel fails that call (`PeerCrashed`), the
/// fault is reported once, under the kind's own name, and the workload still finishes clean.
/// (With recovery on, see recovery.rs.)
fn confined(kind: &str) {
    let arg = format!("crasher={kind}");
    let out = boot_with(&["--timeout", "60", "--no-recovery"], &["ops=400", &arg]);
    assert_eq!(out.status, 0, "{kind}: {out:?}");
    assert_eq!(
        workload_line(&out),
        "workload: ops=400 errors=0 retries=0 lost=0 mismatches=0",
        "{kind}: {out:?}"
    );
    let faults = fault_lines(&out);
    assert_eq!(faults.len(), 1, "{kind}: {out:?}");
    let want = format!("vmm: fault: crasher {kind} at rip ");
    assert!(
        faults[0].starts_with(&want),
        "{kind}: want {want:?} in {out:?}"
    );
    if matches!(kind, "null-deref" | "stack-overflow") {
        assert!(faults[0].contains(" addr 0x"), "{kind}: {out:?}");
    }
    let after = faults[0].split(" after ").nth(1).unwrap_or_default();
    assert!(
        after == "1 message" || after.starts_with("1 message;") || after.starts_with("1 message:"),
        "{kind}: {out:?}"
    );
    assert!(out.stderr.contains("; 1 task fault"), "{kind}: {out:?}");
    assert!(
        out.stdout
            .contains("workload: the crasher crashed under its poke"),
        "{kind}: the caller's pending call was not failed: {out:?}"
    );
}

#[test]
fn cpu_exceptions_are_confined_to_the_faulting_task() {
    for kind in [
        "null-deref",
        "illegal-insn",
        "div-zero",
        "gp",
        "stack-overflow",
    ] {
        confined(kind);
    }
}

#[test]
fn panics_and_hangs_are_confined_too() {
    confined("panic");
    confined("hang");
}

#[test]
fn the_vmm_still_controls_a_vm_with_a_crashed_task() {
    let out = boot_with(
        &["--timeout", "5", "--no-recovery"],
        &["ops=100000000", "crasher=null-deref"],
    );
    assert_eq!(out.status, i32::from(status::TIMEOUT), "{out:?}");
    assert_eq!(fault_lines(&out).len(), 1, "{out:?}");
    assert!(!out.stdout.contains("workload: ops="), "{out:?}");
}

#[test]
fn the_system_call_trap_works_and_is_timed() {
    let out = boot("60", &["ops=0", "crasher=bench"]);
    assert_eq!(out.status, 0, "{out:?}");
    for trap in ["int3", "ud2 stub"] {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("crasher: trap {trap}: 2000 null calls in ")))
            .unwrap_or_else(|| panic!("no {trap} timing: {out:?}"));
        assert!(line.ends_with(" us/call, failures 0"), "{line}");
    }
}

/// The workload beside a load client: its checks of kv skip the client's keys (they made
/// mismatches of a clean run), and the rate it prints is its own requests' over its own time
/// (with `ops=0` it printed the clients' requests over no time).
#[test]
fn the_workload_beside_a_load_client_checks_and_times_only_its_own() {
    require_kvm();
    let out = vmm_run(VMM, &["--", "ops=100", "kvload=30"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    let last = out
        .stdout
        .lines()
        .rfind(|l| l.starts_with("workload: ops="))
        .expect("result line");
    assert!(last.ends_with(" mismatches=0"), "{last}");
    let out = vmm_run(VMM, &["--", "ops=0", "kvload=30"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    let timing = out
        .stdout
        .lines()
        .find(|l| l.starts_with("workload: ") && l.contains(" ms"))
        .expect("timing line");
    assert!(
        !timing.contains("requests/s"),
        "no rate of nothing: {timing}"
    );
    assert!(timing.contains("the load clients made "), "{timing}");
}
