//! Our images boot: serial output, exit status, command line, boot-info, memslots, stdin.

use crate::VMM;
use integration_tests::{TESTGUEST, observed_backend, require_kvm, vmm_run};

#[test]
fn bundled_demo_guest_boots_and_exits_0() {
    require_kvm();
    let out = vmm_run(VMM, &["--timeout", "60", "--", "ops=200"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("kernel: backend="), "{out:?}");
    assert!(out.stdout.contains("workload: ops=200 "), "{out:?}");
    assert!(out.stderr.contains("KVM backend"), "{out:?}");
}

#[test]
fn guest_status_passes_through() {
    require_kvm();
    for status in [0, 1, 7, 63] {
        let arg = format!("exit={status}");
        let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=hello", &arg]).run();
        assert_eq!(out.status, status, "{out:?}");
        assert!(
            out.error_lines()
                .iter()
                .all(|l| l.starts_with("vmm: guest log:")),
            "{out:?}"
        );
    }
}

#[test]
fn testguest_sees_command_line_backend_and_regions() {
    require_kvm();
    let out = vmm_run(
        VMM,
        &[TESTGUEST, "--memory", "64", "--", "mode=hello", "seed=7"],
    )
    .run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("testguest: hello"), "{out:?}");
    assert!(out.stdout.contains("cmdline=mode=hello seed=7"), "{out:?}");
    let backend = observed_backend(VMM);
    assert!(
        out.stdout.contains(&format!("backend={backend}")),
        "{out:?}"
    );
    assert!(out.stdout.contains("server alpha state="), "{out:?}");
    assert!(out.stdout.contains("server beta state="), "{out:?}");
    // stdout carries the console only: vmm's lines are on stderr.
    assert!(!out.stdout.contains("vmm:"), "{out:?}");
}

#[test]
fn log_hypercall_prints_one_line_on_stderr() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=hello"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "vmm: guest log: testguest log line"),
        "{out:?}"
    );
    let quiet = vmm_run(VMM, &[TESTGUEST, "--quiet", "--", "mode=hello"]).run();
    assert_eq!(quiet.stderr, "", "{quiet:?}");
}

#[test]
fn every_server_region_is_backed_by_memory() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=regions"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("regions ok"), "{out:?}");
}

#[test]
fn stdin_reaches_the_guest_serial_port() {
    require_kvm();
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=echo"])
        .stdin(b"hello from the host\n")
        .run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("got: hello from the host"), "{out:?}");
}

#[test]
fn long_stdin_input_is_not_lost_when_the_fifo_fills() {
    require_kvm();
    // Longer than the UART's 64-byte FIFO: the event loop must pause and resume stdin.
    let line: String = (0..200)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let input = format!("{line}\n");
    let out = vmm_run(VMM, &[TESTGUEST, "--", "mode=echo"])
        .stdin(input.as_bytes())
        .run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains(&format!("got: {line}")), "{out:?}");
}

#[test]
fn documented_example_config_runs_as_is() {
    require_kvm();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples/vm.toml");
    let out = vmm_run(VMM, &["--config", example]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("memory=256MiB"), "{out:?}");
}
