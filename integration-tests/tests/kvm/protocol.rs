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
