//! The monitor's own I/O with the host: stdin of every kind, a stdout nobody reads, a closed
//! stderr. None of them may make vmm busy-loop, hang past a stop request, or die.

use crate::VMM;
use abi::status;
use integration_tests::{PLAINGUEST, TESTGUEST, Vmm, require_kvm, vmm_run};
use std::time::Duration;

/// A halted guest stopped by a 2 s timeout: vmm must sleep meanwhile, whatever stdin is.
fn halted(with_stdin: impl FnOnce(Vmm) -> Vmm) {
    require_kvm();
    let out = with_stdin(vmm_run(
        VMM,
        &[TESTGUEST, "--timeout", "2", "--", "mode=halt"],
    ))
    .run();
    assert_eq!(out.status, i32::from(status::TIMEOUT), "{out:?}");
    // A busy loop would burn about 2 s of CPU here; VM setup and teardown take milliseconds.
    assert!(
        out.cpu < Duration::from_millis(500),
        "vmm used {:?} of CPU while the guest slept",
        out.cpu
    );
}

#[test]
fn stdin_dev_null_does_not_busy_loop() {
    halted(|v| v);
}

#[test]
fn stdin_at_eof_does_not_busy_loop() {
    halted(|v| v.stdin(b""));
}

#[test]
fn stdin_regular_file_does_not_busy_loop() {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut f, b"some input the guest never reads\n").expect("write");
    let path = f.path().to_owned();
    halted(move |v| v.stdin_file(path));
}

#[test]
fn stdin_pipe_that_never_closes_does_not_busy_loop() {
    halted(|v| v.stdin_open_pipe());
}

#[test]
fn timeout_stops_a_guest_blocked_on_a_full_stdout() {
    require_kvm();
    // Nobody reads stdout: the pipe fills, the console write blocks inside the vCPU thread.
    let out = vmm_run(VMM, &[PLAINGUEST, "--timeout", "2", "--", "blast=1000"])
        .stdout_unread()
        .run();
    assert_eq!(out.status, i32::from(status::TIMEOUT), "{out:?}");
    assert!(
        out.wall < Duration::from_secs(15),
        "stop took {:?}",
        out.wall
    );
}

#[test]
fn a_closed_stderr_does_not_kill_the_monitor() {
    require_kvm();
    // The guest logs through a hypercall and vmm prints info lines: all meet a broken pipe.
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=hello", "exit=3"])
        .stderr_closed()
        .run();
    assert_eq!(out.status, 3, "{out:?}");
    assert!(out.stdout.contains("testguest: hello"), "{out:?}");
}
