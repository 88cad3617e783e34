//! A buggy or hostile guest cannot crash the monitor: every bad hypercall stops the VM with the
//! protocol status and one line saying what was wrong.

use crate::VMM;
use abi::status;
use integration_tests::{TESTGUEST, require_kvm, vmm_run};

fn violation(mode: &str, expect: &str) {
    require_kvm();
    let arg = format!("mode={mode}");
    let out = vmm_run(VMM, &[TESTGUEST, "--", &arg]).run();
    assert_eq!(
        out.status,
        i32::from(status::GUEST_PROTOCOL),
        "{mode}: {out:?}"
    );
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{mode}: {out:?}");
    assert!(
        errors[0].starts_with("vmm: guest protocol violation: "),
        "{mode}: {out:?}"
    );
    assert!(
        errors[0].contains(expect),
        "{mode}: expected {expect:?} in {out:?}"
    );
}

#[test]
fn unknown_hypercall() {
    violation("bad-hypercall", "unknown hypercall 0xdead");
}

#[test]
fn exit_status_out_of_range() {
    violation("bad-exit", "EXIT hypercall with status 200");
}

#[test]
fn log_outside_guest_memory() {
    violation("bad-log", "outside guest memory");
}

#[test]
fn log_too_long() {
    violation("long-log", "LOG hypercall of 100000 bytes");
}

#[test]
fn one_byte_hypercall_write() {
    violation("byte-hypercall", "1-byte write to hypercall port");
}

#[test]
fn hypercall_port_read() {
    violation("read-hypercall", "read from hypercall port");
}

#[test]
fn hypercall_from_ring_3_is_refused() {
    violation("user-hypercall", "hypercall from CPL 3");
}

#[test]
fn our_images_may_not_touch_unknown_ports() {
    violation("unknown-port", "unknown I/O port 0x99");
}

/// LOG text is the guest's: an escape sequence, a newline or a right-to-left override in it
/// reaches stderr escaped, on one line, so that it can neither act on the terminal nor make
/// vmm's lines read differently from what they hold.
#[test]
fn log_text_cannot_act_on_the_terminal_or_forge_lines() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=evil-log"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    let logs: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("vmm: guest log:"))
        .collect();
    assert_eq!(
        logs,
        ["vmm: guest log: log \\u{1b}[2J\\nforged line \\u{202e}desrever"],
        "{out:?}"
    );
    assert!(!out.stderr.contains('\u{1b}') && !out.stderr.contains('\u{202e}'));
    assert!(!out.stderr.lines().any(|l| l.starts_with("forged line")));
}

/// An endless stream of faults (kv crashes on every message from its 5th): the default policy
/// recovers, escalates through its stages and stops the VM cleanly with the fail-stop status
/// and one line naming the budget, long before any timeout.
#[test]
fn an_endless_stream_of_faults_ends_in_a_clean_fail_stop() {
    require_kvm();
    let out = vmm_run(
        VMM,
        &[
            "-q",
            "--timeout",
            "60",
            "--fault",
            "kv:panic@5+1",
            "--",
            "ops=300",
        ],
    )
    .run();
    assert_eq!(out.status, i32::from(status::FAIL_STOP), "{out:?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(
        errors[0].starts_with("vmm: recovery policy stopped the VM after a crash of kv: ")
            && errors[0].contains("crashes within"),
        "{out:?}"
    );
    assert!(
        out.wall < std::time::Duration::from_secs(30),
        "{:?}",
        out.wall
    );
}
