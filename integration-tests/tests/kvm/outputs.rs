//! Output and input files as issue 13 has them: a report goes where it is sent and replaces
//! nothing it should not (/dev/null stays a device, /dev/stdout streams, a symlink is followed,
//! an old report keeps its mode), a FIFO nobody reads is one error and never a hang, a path that
//! cannot take a file is refused before the run; a FIFO is never read as an image or config.

use crate::VMM;
use abi::status;
use integration_tests::{require_kvm, vmm_run};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: mkfifo(3) on a NUL-terminated path we own; no memory is shared.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn reports_go_where_they_are_sent_and_replace_nothing_else() {
    require_kvm();
    let out = vmm_run(VMM, &["-q", "--report", "/dev/null", "--", "ops=20"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    let null = std::fs::metadata("/dev/null").expect("/dev/null");
    assert!(
        null.file_type().is_char_device(),
        "/dev/null is still a device"
    );
    let out = vmm_run(VMM, &["-q", "--report", "/dev/stdout", "--", "ops=20"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    let json = &out.stdout[out.stdout.find("{\n").expect("the report on stdout")..];
    let report: serde_json::Value = serde_json::from_str(json).expect("the whole report");
    assert_eq!(report["exit_status"], 0);
    let tmp = tempfile::tempdir().expect("tmp");
    // A FIFO nobody reads: one line, the run's status kept apart, no hang (the harness's
    // deadline would fail the test).
    let fifo = tmp.path().join("fifo");
    mkfifo(&fifo);
    let out = vmm_run(
        VMM,
        &[
            "-q",
            "--report",
            fifo.to_str().expect("utf-8"),
            "--",
            "ops=20",
        ],
    )
    .run();
    assert_eq!(out.status, i32::from(status::VMM_INTERNAL), "{out:?}");
    assert_eq!(out.error_lines().len(), 1, "{out:?}");
    assert!(out.stderr.contains("a FIFO nobody reads"), "{out:?}");
    // A symlink: its target gets the report, the link stays; an old report keeps its mode.
    let target = tmp.path().join("target.json");
    std::fs::write(&target, "old").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let link = tmp.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    let out = vmm_run(
        VMM,
        &[
            "-q",
            "--report",
            link.to_str().expect("utf-8"),
            "--",
            "ops=20",
        ],
    )
    .run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&target).expect("target")).expect("JSON");
    assert_eq!(written["exit_status"], 0);
    let mode = std::fs::metadata(&target)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "the old report's mode");
    // Refused before the run, with the usage status: the VM never boots.
    let plain = tmp.path().join("plain");
    std::fs::write(&plain, "x").expect("write");
    for (path, want) in [
        (format!("{}/new.json/", tmp.path().display()), "ends in /"),
        (format!("{}/x.json", plain.display()), "not a directory"),
        (tmp.path().display().to_string(), "is a directory"),
    ] {
        let out = vmm_run(VMM, &["--report", &path, "--", "ops=20"]).run();
        assert_eq!(out.status, i32::from(status::USAGE), "{path}: {out:?}");
        assert!(out.stdout.is_empty(), "{path}: the VM did not boot");
        assert!(out.stderr.contains(want), "{path}: {out:?}");
    }
    let out =
        integration_tests::vmm_cmd(VMM, &["bench", "boot", "--runs", "1", "--json", "x/"]).run();
    assert_eq!(out.status, i32::from(status::USAGE), "{out:?}");
    assert!(out.stdout.is_empty(), "no benchmark ran: {out:?}");
}

#[test]
fn a_fifo_is_never_read_as_an_image_or_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fifo = tmp.path().join("f.elf");
    mkfifo(&fifo);
    let fifo = fifo.to_str().expect("utf-8");
    let out = vmm_run(VMM, &[fifo]).run();
    assert_eq!(out.status, i32::from(status::IMAGE), "{out:?}");
    assert!(out.stderr.contains("not a regular file"), "{out:?}");
    let out = vmm_run(VMM, &["--config", fifo]).run();
    assert_eq!(out.status, i32::from(status::CONFIG), "{out:?}");
    assert!(out.stderr.contains("not a regular file"), "{out:?}");
    let config = tmp.path().join("vm.toml");
    std::fs::write(&config, format!("[vm]\nimage = \"{fifo}\"\n")).expect("write");
    let out = vmm_run(VMM, &["--config", config.to_str().expect("utf-8")]).run();
    assert_eq!(out.status, i32::from(status::IMAGE), "{out:?}");
    assert!(out.stderr.contains("not a regular file"), "{out:?}");
}

/// Console output that stdout does not take (full, closed) is said to be lost, even with -q.
#[test]
fn lost_console_output_is_reported() {
    require_kvm();
    let _permit = integration_tests::VmPermit::acquire();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = std::process::Command::new(VMM)
        .args(["run", "-q", "--timeout", "60", "--", "ops=20"])
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .output()
        .expect("vmm");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the guest's status: {stderr}");
    assert!(
        stderr.contains("bytes of the guest's console output were lost"),
        "{stderr}"
    );
}
