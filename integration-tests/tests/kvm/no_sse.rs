//! Ring-0 code must hold no SSE/xmm instruction (on KVM-PVM ring 0 is emulated and stops the VM on
//! one). Disassembles every ring-0 image and fails on any xmm register use, except the one
//! deliberate instruction of the test guest's `sse` mode.

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
