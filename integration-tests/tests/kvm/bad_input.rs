//! Bad input gets one line naming the file or value and the reason, a nonzero status, and no
//! panic. The 32-bit and foreign-machine ELFs are made by patching the header of a good image.

use crate::VMM;
use abi::status;
use integration_tests::{Outcome, PLAINGUEST, TESTGUEST, patched_copy, require_kvm, vmm_run};

fn one_line_error(out: &Outcome, status: u8, expect: &str) {
    assert_eq!(out.status, i32::from(status), "{out:?}");
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
        "{out:?}"
    );
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line: {out:?}");
    assert!(lines[0].starts_with("vmm: "), "{out:?}");
    assert!(lines[0].contains(expect), "expected {expect:?} in {out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
}

fn run_image(path: &str, extra: &[&str]) -> Outcome {
    let mut args = vec![path];
    args.extend_from_slice(extra);
    vmm_run(VMM, &args).run()
}

#[test]
fn missing_file() {
    let out = run_image("/nonexistent/guest.elf", &[]);
    one_line_error(
        &out,
        status::IMAGE,
        "/nonexistent/guest.elf: cannot read image",
    );
}

#[test]
fn file_that_is_not_elf() {
    let path = patched_copy(TESTGUEST, |b| {
        *b = b"#!/bin/sh\necho not a kernel\n".to_vec()
    });
    let out = run_image(path.to_str().expect("utf-8 path"), &[]);
    one_line_error(&out, status::IMAGE, "not an ELF file");
    assert!(
        out.stderr.contains(path.to_str().expect("utf-8")),
        "names the file: {out:?}"
    );
}

#[test]
fn elf_32_bit() {
    let path = patched_copy(TESTGUEST, |b| b[4] = 1); // EI_CLASS = ELFCLASS32
    one_line_error(
        &run_image(path.to_str().expect("utf-8"), &[]),
        status::IMAGE,
        "32-bit ELF",
    );
}

#[test]
fn elf_for_another_machine() {
    let path = patched_copy(TESTGUEST, |b| {
        b[18..20].copy_from_slice(&183u16.to_le_bytes())
    });
    one_line_error(
        &run_image(path.to_str().expect("utf-8"), &[]),
        status::IMAGE,
        "machine 183 (AArch64)",
    );
}

#[test]
fn truncated_elf() {
    for keep in [40, 100] {
        let path = patched_copy(TESTGUEST, |b| b.truncate(keep));
        one_line_error(
            &run_image(path.to_str().expect("utf-8"), &[]),
            status::IMAGE,
            "truncated ELF",
        );
    }
    let path = patched_copy(TESTGUEST, |b| {
        let n = b.len() / 2;
        b.truncate(n)
    });
    one_line_error(
        &run_image(path.to_str().expect("utf-8"), &[]),
        status::IMAGE,
        "truncated ELF",
    );
}

#[test]
fn segments_outside_guest_memory() {
    require_kvm();
    // The plain guest is linked at 1 MiB: with 1 MiB of RAM nothing of it fits.
    let out = run_image(PLAINGUEST, &["--memory", "1"]);
    one_line_error(&out, status::IMAGE, "lies outside guest memory (1 MiB)");
    // Our image declares a kernel region up to 4 MiB.
    let out = run_image(TESTGUEST, &["--memory", "2"]);
    one_line_error(&out, status::IMAGE, "outside guest memory (2 MiB)");
}

/// Moves the first loadable segment (and the entry point with it) to `paddr`.
fn move_first_segment(b: &mut [u8], paddr: u64) {
    let rd = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let phoff = rd(b, 32) as usize;
    let phnum = u16::from_le_bytes([b[56], b[57]]) as usize;
    let first = (0..phnum)
        .map(|i| phoff + i * 56)
        .find(|&ph| u32::from_le_bytes(b[ph..ph + 4].try_into().expect("4 bytes")) == 1)
        .expect("a PT_LOAD");
    let old = rd(b, first + 24);
    let entry = rd(b, 24);
    b[first + 24..first + 32].copy_from_slice(&paddr.to_le_bytes());
    b[24..32].copy_from_slice(&(entry - old + paddr).to_le_bytes());
}

#[test]
fn segment_overlapping_the_reserved_low_memory() {
    require_kvm();
    let path = patched_copy(PLAINGUEST, |b| move_first_segment(b, 0x1000));
    let out = run_image(path.to_str().expect("utf-8"), &[]);
    one_line_error(
        &out,
        status::IMAGE,
        "overlaps the VMM's reserved low memory",
    );
}

#[test]
fn memory_size_zero_or_above_the_cap() {
    for bad in ["0", "3073", "100000"] {
        let out = run_image(TESTGUEST, &["--memory", bad]);
        one_line_error(
            &out,
            status::CONFIG,
            &format!("invalid memory size {bad} MiB"),
        );
    }
}

#[test]
fn bad_config_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("vm.toml");
    std::fs::write(&cfg, "[vm]\nmemory_mib = 64\nmemroy = 3\n").expect("write config");
    let out = run_image(TESTGUEST, &["--config", cfg.to_str().expect("utf-8")]);
    one_line_error(&out, status::CONFIG, "line 3");
    assert!(out.stderr.contains("memroy"), "{out:?}");
}

#[test]
fn config_file_settings_apply() {
    require_kvm();
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("vm.toml");
    std::fs::write(
        &cfg,
        format!(
            "[vm]\nimage = \"{TESTGUEST}\"\nmemory_mib = 32\ncmdline = \"mode=hello exit=5\"\n"
        ),
    )
    .expect("write config");
    let out = vmm_run(VMM, &["--config", cfg.to_str().expect("utf-8")]).run();
    assert_eq!(out.status, 5, "{out:?}");
    assert!(out.stderr.contains("32 MiB"), "{out:?}");
}

#[test]
fn command_line_errors_use_the_usage_status() {
    let out = vmm_run(VMM, &["--memory", "lots"]).run();
    assert_eq!(out.status, i32::from(status::USAGE), "{out:?}");
    assert!(out.stderr.contains("invalid value 'lots'"), "{out:?}");
}
