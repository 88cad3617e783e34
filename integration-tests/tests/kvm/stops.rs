//! How a VM stops: triple fault, timeout, signals, KVM internal errors.

use crate::VMM;
use abi::status;
use integration_tests::{TESTGUEST, require_kvm, vmm_run};
use std::time::Duration;

#[test]
fn triple_fault_stops_with_its_status_and_one_line() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=triple-fault"]).run();
    assert_eq!(out.status, i32::from(status::TRIPLE_FAULT), "{out:?}");
    let errors = out.error_lines();
    assert_eq!(errors.len(), 1, "{out:?}");
    assert!(
        errors[0].starts_with("vmm: guest triple-faulted"),
        "{out:?}"
    );
}

#[test]
fn timeout_stops_a_spinning_vcpu() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--timeout", "1", "--", "mode=spin"]).run();
    assert_eq!(out.status, i32::from(status::TIMEOUT), "{out:?}");
    assert!(out.stdout.contains("spinning"), "{out:?}");
    assert!(out.stderr.contains("timeout"), "{out:?}");
    assert!(out.wall < Duration::from_secs(10), "took {:?}", out.wall);
}

#[test]
fn timeout_stops_a_halted_vcpu() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--timeout", "0.5", "--", "mode=halt"]).run();
    assert_eq!(out.status, i32::from(status::TIMEOUT), "{out:?}");
    assert!(out.wall < Duration::from_secs(10), "took {:?}", out.wall);
}

#[test]
fn sigterm_and_sigint_stop_a_running_guest() {
    require_kvm();
    for (sig, expected) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let running = vmm_run(VMM, &[TESTGUEST, "--timeout", "60", "--", "mode=spin"])
            .start_until("spinning");
        running.signal(sig);
        let out = running.wait();
        assert_eq!(out.status, expected, "{out:?}");
        assert!(out.stderr.contains("stopped by signal"), "{out:?}");
        assert!(out.wall < Duration::from_secs(30), "took {:?}", out.wall);
    }
}

/// SSE in ring 0 stops the VM with KVM's internal error on KVM-PVM (its emulator has no SSE)
/// and runs on hardware KVM. Which one happened is the test's own evidence of the backend, and
/// it must be the one `vmm` detected and printed.
#[test]
fn sse_in_ring_0_depends_on_the_backend() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=sse"]).run();
    let observed = if out.status == i32::from(status::GUEST_INTERNAL_ERROR) {
        let errors = out.error_lines();
        assert_eq!(errors.len(), 1, "{out:?}");
        assert!(errors[0].contains("KVM could not run the guest"), "{out:?}");
        "pvm"
    } else {
        assert_eq!(out.status, 0, "neither outcome: {out:?}");
        assert!(out.stdout.contains("sse ok"), "{out:?}");
        "hardware"
    };
    assert!(
        out.stderr.contains(&format!("KVM backend {observed}")),
        "the guest behaved as on {observed}, vmm said otherwise: {out:?}"
    );
}
