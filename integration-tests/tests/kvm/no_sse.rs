//! Ring-0 code must hold no SSE/xmm instruction (on KVM-PVM ring 0 is emulated and stops the VM on
//! one). Disassembles every ring-0 image and fails on any xmm register use, except the one
//! deliberate instruction of the test guest's `sse` mode.
//!
//! The kernel image also carries its ring-3 tasks' segments (built with SSE, which ring 3 may
//! use), bundled as non-executable data sections `.task.<index>.<n>`: `objdump -d` disassembles
//! executable sections only, so the check sees exactly the kernel's own code. The last test
//! makes sure it stays that way (the kernel's code is `.text` alone, the tasks are data).

use integration_tests::{KERNEL, PLAINGUEST, PLAINLOW, TESTGUEST};
use std::process::Command;

/// (function, instruction) for every instruction that names an xmm register.
fn xmm_uses(image: &str) -> Vec<(String, String)> {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn", "-M", "intel", image])
        .output()
        .unwrap_or_else(|e| panic!("objdump is needed for this test (binutils): {e}"));
    assert!(
        out.status.success(),
        "objdump failed on {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut function = String::new();
    let mut uses = Vec::new();
    for line in text.lines() {
        if let Some(name) = line
            .strip_suffix(">:")
            .and_then(|l| l.split_once(" <"))
            .map(|(_, n)| n)
        {
            function = name.to_owned();
        } else if line.contains("xmm") || line.contains("ymm") || line.contains("zmm") {
            uses.push((function.clone(), line.trim().to_owned()));
        }
    }
    assert!(
        text.contains(">:"),
        "objdump printed no functions for {image}"
    );
    uses
}

#[test]
fn ring_0_images_hold_no_xmm_instruction() {
    for image in [KERNEL, PLAINGUEST, PLAINLOW] {
        let uses = xmm_uses(image);
        assert!(
            uses.is_empty(),
            "{image} uses SSE registers in ring 0: {uses:#?}"
        );
    }
}

#[test]
fn test_guest_holds_only_its_deliberate_sse_instruction() {
    let uses = xmm_uses(TESTGUEST);
    assert!(
        !uses.is_empty(),
        "the sse mode's instruction is missing: the check would be blind"
    );
    for (function, insn) in &uses {
        assert!(
            function.contains("sse_instruction_on_purpose"),
            "unexpected xmm use in {function}: {insn}"
        );
    }
}

/// (name, is code) of every allocated section of `image`, from `objdump -h`.
fn sections(image: &str) -> Vec<(String, bool)> {
    let out = Command::new("objdump")
        .args(["-h", image])
        .output()
        .unwrap_or_else(|e| panic!("objdump is needed for this test (binutils): {e}"));
    assert!(out.status.success(), "objdump -h failed on {image}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for pair in lines.windows(2) {
        let fields: Vec<&str> = pair[0].split_whitespace().collect();
        let is_header = fields.len() >= 7 && fields[0].parse::<u32>().is_ok();
        if is_header && pair[1].contains("ALLOC") {
            found.push((fields[1].to_owned(), pair[1].contains("CODE")));
        }
    }
    found
}

#[test]
fn the_kernel_s_code_is_text_alone_and_its_tasks_are_data() {
    let sections = sections(KERNEL);
    let code: Vec<&str> = sections
        .iter()
        .filter(|(_, code)| *code)
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(code, [".text"], "{sections:?}");
    let tasks = sections
        .iter()
        .filter(|(name, _)| name.starts_with(".task."))
        .count();
    assert!(
        tasks >= sysmap::TASKS.len(),
        "the tasks' segments are missing from the kernel image: {sections:?}"
    );
}
