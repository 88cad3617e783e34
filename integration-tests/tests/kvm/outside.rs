//! Faults from outside: the VMM corrupts a server's code, data or registers when its planned
//! message comes. Every kind lands on every server where the report says (checked against the
//! bytes the VMM read back, by the rule of its kind stated here), the concrete fault follows
//! from the seed and replays exactly, activation is observed, and runs are classified.
//!
//! The pinned faults are chosen for effects that do not depend on where the compiler put the
//! code: `rcx` carries the fault word a server executes (bit 0 set: a null dereference), a flip
//! of `rdi` (the sender's id) makes the reply go astray, a flipped label bit makes the request
//! one nobody declared, the server's entry point is never run during a message, and the
//! instruction it resumes at is run first.

use crate::kvm::recovery::{OPS, Run, SERVERS, run, with_faults};
use abi::fault::{Executor, FaultKind};
use serde_json::Value;
use vmm::image::Image;
use vmm::layout::{Layout, plan};

/// The bundled image's layout (each server's text area and state arena).
fn layout() -> Layout {
    let image = Image::from_bytes("bundled".into(), vmm::cli::BUNDLED_GUEST.to_vec())
        .expect("the bundled image");
    plan(&image, 128 << 20).expect("its layout")
}

fn bytes(hex: &Value) -> Vec<u8> {
    hex.as_str()
        .expect("hex bytes")
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).expect("a hex byte"))
        .collect()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The single injection of a run, after checking there is exactly one.
fn the_injection(r: &Run) -> &Value {
    let all = r.report["injections"].as_array().expect("injections");
    assert_eq!(all.len(), 1, "{}", r.report);
    &all[0]
}

/// Checks that injection `i` of `kind` on `server` did what its kind says, on the bytes the
/// VMM read back, at a place of that server.
fn assert_landed(layout: &Layout, server: &str, kind: FaultKind, i: &Value) {
    let c = &i["concrete"];
    assert!(
        c.is_object(),
        "{server} {}: nothing corrupted: {i}",
        kind.name()
    );
    let s = layout
        .servers
        .iter()
        .find(|s| s.name == server)
        .expect("a server of the image");
    let (before, after) = (bytes(&c["before"]["hex"]), bytes(&c["after"]["hex"]));
    assert_eq!(before.len(), after.len(), "{i}");
    assert_ne!(before, after, "{i}");
    let diff: Vec<u8> = before.iter().zip(&after).map(|(a, b)| a ^ b).collect();
    let flipped_bits: u32 = diff.iter().map(|d| d.count_ones()).sum();
    let bit = c["bit"].as_u64();
    let register = matches!(kind, FaultKind::RegFlip | FaultKind::MsgCorrupt);
    let one_bit_at = |bit: u64| {
        // Memory bytes in address order; a register's value big-endian (as printed).
        let byte = if register { 7 - bit / 8 } else { bit / 8 } as usize;
        flipped_bits == 1 && diff[byte] == 1 << (bit % 8)
    };
    match kind {
        FaultKind::TextFlip => assert!(one_bit_at(bit.expect("a bit")), "{i}"),
        FaultKind::Nop | FaultKind::DropBranch | FaultKind::NoStore => {
            assert!(after.iter().all(|&b| b == 0x90), "{i}");
        }
        FaultKind::FlipBranch => {
            let at = diff.iter().position(|&d| d != 0).expect("a change");
            let short = (0x70..0x80).contains(&before[at]);
            let near = at > 0 && before[at - 1] == 0x0f && (0x80..0x90).contains(&before[at]);
            assert!(flipped_bits == 1 && diff[at] == 1 && (short || near), "{i}");
        }
        FaultKind::CorruptSrc | FaultKind::CorruptDst => {
            assert!(c["reg"].is_string(), "{i}");
            assert_ne!(c["before"]["asm"], c["after"]["asm"], "{i}");
        }
        FaultKind::CorruptPtr => {
            assert!(c["reg"].is_string() || bit.is_some(), "{i}");
            assert_ne!(c["before"]["asm"], c["after"]["asm"], "{i}");
        }
        FaultKind::StateFlip | FaultKind::StackFlip => {
            assert!(one_bit_at(bit.expect("a bit")), "{i}");
            let addr = u64_of(&c["addr"]);
            let region = if kind == FaultKind::StateFlip {
                s.state
            } else {
                s.scratch
            };
            assert!(region.contains(addr), "{addr:#x} outside {region:?}: {i}");
        }
        FaultKind::RegFlip | FaultKind::MsgCorrupt => {
            assert!(one_bit_at(bit.expect("a bit")), "{i}");
            let payload = ["rsi", "rdx", "r8", "r9", "r10", "r12", "r13"];
            let reg = c["reg"].as_str().expect("a register");
            assert!(kind == FaultKind::RegFlip || payload.contains(&reg), "{i}");
        }
        _ => unreachable!("not a kind the VMM injects"),
    }
    if kind.family() == abi::fault::Family::Code {
        let addr = u64_of(&c["addr"]);
        assert!(
            s.text.contains(addr),
            "{addr:#x} outside {server}'s text: {i}"
        );
    }
    // The concrete spec names everything the seed chose.
    let spec = c["spec"].as_str().expect("a spec");
    assert!(
        spec.starts_with(&format!("{server}:{}@", kind.name())),
        "{i}"
    );
}

/// One kind on each server in turn.
fn each_server(kind: FaultKind) {
    let layout = layout();
    for (server, message) in SERVERS {
        let spec = format!("{server}:{}@{message}", kind.name());
        let r = with_faults(std::slice::from_ref(&spec), &["--timeout", "8"], &[OPS]);
        let i = the_injection(&r);
        assert_eq!(i["spec"], spec, "{}", r.report);
        assert_ne!(i["class"], "not-triggered", "{spec}: {}", r.report);
        assert_landed(&layout, server, kind, i);
        assert!(r.report["classification"].is_string(), "{}", r.report);
    }
}

macro_rules! each_kind_on_each_server {
    ($($name:ident: $kind:expr;)+) => {
        $(
            #[test]
            fn $name() {
                each_server($kind);
            }
        )+
    };
}

each_kind_on_each_server! {
    text_flip_lands_on_every_server: FaultKind::TextFlip;
    nop_lands_on_every_server: FaultKind::Nop;
    flip_branch_lands_on_every_server: FaultKind::FlipBranch;
    drop_branch_lands_on_every_server: FaultKind::DropBranch;
    corrupt_src_lands_on_every_server: FaultKind::CorruptSrc;
    corrupt_dst_lands_on_every_server: FaultKind::CorruptDst;
    corrupt_ptr_lands_on_every_server: FaultKind::CorruptPtr;
    no_store_lands_on_every_server: FaultKind::NoStore;
    state_flip_lands_on_every_server: FaultKind::StateFlip;
    stack_flip_lands_on_every_server: FaultKind::StackFlip;
    reg_flip_lands_on_every_server: FaultKind::RegFlip;
    msg_corrupt_lands_on_every_server: FaultKind::MsgCorrupt;
}

/// Every kind the VMM injects is covered above.
#[test]
fn the_tests_above_cover_every_kind_the_vmm_injects() {
    let by_vmm = FaultKind::ALL
        .iter()
        .filter(|k| k.executor() == Executor::Vmm)
        .count();
    assert_eq!(by_vmm, 12);
}

/// The same seed picks the same concrete fault, another seed another, and the concrete fault
/// given back as a spec does it again, byte for byte.
#[test]
fn a_concrete_fault_follows_the_seed_and_replays_exactly() {
    for kind in ["text-flip", "reg-flip"] {
        let spec = format!("kv:{kind}@60");
        let concrete = |seed: &str| {
            let r = with_faults(std::slice::from_ref(&spec), &["--fault-seed", seed], &[OPS]);
            the_injection(&r)["concrete"].clone()
        };
        let a = concrete("5");
        assert_eq!(a, concrete("5"), "{kind}: the same seed");
        assert_ne!(a["spec"], concrete("6")["spec"], "{kind}: another seed");
        let pinned = a["spec"].as_str().expect("a spec").to_owned();
        let r = with_faults(
            std::slice::from_ref(&pinned),
            &["--fault-seed", "99"],
            &[OPS],
        );
        let replay = &the_injection(&r)["concrete"];
        assert_eq!(replay, &a, "{kind}: {pinned} replays it");
    }
}

/// A server's entry point never runs during a message: a transient fault there is stepped
/// until the message ends, then put back (`not-activated`); the instruction a server resumes
/// at runs first (`activated: true`).
#[test]
fn activation_is_observed_by_single_stepping() {
    let kv = layout()
        .servers
        .iter()
        .find(|s| s.name == "kv")
        .expect("kv")
        .text;
    let entry = format!("kv:nop@60:at={:#x}", kv.base);
    let r = with_faults(&[entry], &[], &[OPS]);
    let i = the_injection(&r);
    assert_eq!(i["activated"], false, "{i}");
    assert_eq!(i["undone"], true, "{i}");
    assert!(u64_of(&i["steps"]) > 0, "{i}");
    assert_eq!(i["class"], "not-activated", "{i}");
    assert_eq!(r.report["classification"], "not-activated");
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    // Where kv resumes with its 60th message: the instruction after its system call.
    let probe = with_faults(&["kv:reg-flip@60:reg=rcx:bit=40".into()], &[], &[OPS]);
    let resume = u64_of(&the_injection(&probe)["rip"]);
    assert!(kv.contains(resume), "{resume:#x}");
    let r = with_faults(
        &[format!("kv:text-flip@60:at={resume:#x}")],
        &["--timeout", "8"],
        &[OPS],
    );
    let i = the_injection(&r);
    assert_eq!(i["activated"], true, "{i}");
    assert_eq!(i["steps"], 0, "{i}");
}

/// Runs with pinned faults end in the classes their effects make.
#[test]
fn runs_are_classified_by_what_the_fault_did() {
    // rcx is the fault word a server executes: bit 0 makes it a null dereference.
    let r = with_faults(&["kv:reg-flip@60:reg=rcx:bit=0".into()], &[], &[OPS]);
    let i = the_injection(&r);
    assert_eq!(
        (&i["detected_as"], &i["class"]),
        (&Value::from("null-deref"), &Value::from("recovered")),
        "{i}"
    );
    assert_eq!(r.report["classification"], "recovered");
    assert_eq!(r.out.status, 0, "{:?}", r.out);
    assert!(
        r.out
            .stderr
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("; classification recovered")),
        "{:?}",
        r.out
    );
    // Bit 40 of it names no fault: nothing happens that anyone can see.
    let r = with_faults(&["kv:reg-flip@60:reg=rcx:bit=40".into()], &[], &[OPS]);
    assert_eq!(r.report["classification"], "no-effect", "{}", r.report);
    assert_eq!(r.out.status, 0);
    // A request label with bit 5 flipped is one kv never declared: the client gets an answer
    // its model does not expect, and the run exits non-zero.
    let r = with_faults(&["kv:msg-corrupt@60:reg=rsi:bit=5".into()], &[], &[OPS]);
    assert_eq!(
        r.report["classification"], "silent-corruption",
        "{}",
        r.report
    );
    assert_ne!(r.out.status, 0, "{:?}", r.out);
    let w = &r.report["workload"];
    assert!(u64_of(&w["mismatches"]) + u64_of(&w["errors"]) > 0, "{w}");
    // The sender's id with a bit flipped: kv answers someone else, its caller waits forever.
    let r = with_faults(
        &["kv:reg-flip@60:reg=rdi:bit=0".into()],
        &["--timeout", "3"],
        &[OPS],
    );
    assert_eq!(r.out.status, i32::from(abi::status::TIMEOUT), "{:?}", r.out);
    assert_eq!(r.report["classification"], "timeout", "{}", r.report);
    // A fault whose message never comes tested nothing, and says so.
    let r = with_faults(&["kv:panic@999999".into()], &[], &[OPS]);
    assert_eq!(r.report["classification"], "not-triggered");
    assert_eq!(the_injection(&r)["class"], "not-triggered");
    assert!(
        r.out.stderr.contains(
            "vmm: warning: --fault kv:panic@999999 never fired: kv's message 999999 never came"
        ),
        "{:?}",
        r.out
    );
    assert_eq!(r.out.status, 0);
}

/// A fault that tested nothing keeps its own class in a run another fault made bad (it is not
/// blamed for the other's wrong answers), and the run says so on stderr.
#[test]
fn a_fault_that_tested_nothing_is_not_blamed_for_another() {
    let r = with_faults(
        &[
            "kv:msg-corrupt@60:reg=rsi:bit=5".into(),
            "fs:state-flip@999999".into(),
        ],
        &[],
        &[OPS],
    );
    assert_eq!(
        r.report["classification"], "silent-corruption",
        "{}",
        r.report
    );
    let all = r.report["injections"].as_array().expect("injections");
    let class_of = |target: &str| {
        let i = all
            .iter()
            .find(|i| i["target"] == target)
            .unwrap_or_else(|| panic!("no {target} injection: {}", r.report));
        i["class"].as_str().expect("a class").to_owned()
    };
    assert_eq!(class_of("kv"), "silent-corruption");
    assert_eq!(class_of("fs"), "not-triggered");
    assert!(
        r.out.stderr.contains(
            "vmm: warning: --fault fs:state-flip@999999 never fired: fs's message 999999 never came"
        ),
        "{:?}",
        r.out
    );
}

/// A corrupted kernel ends in a clean whole-VM stop with a report: a documented status, the
/// fault and a class, never a VMM panic or hang.
#[test]
fn a_corrupted_kernel_ends_in_a_clean_stop() {
    for (kind, seed) in [("text-flip", "1"), ("text-flip", "2"), ("state-flip", "1")] {
        let spec = format!("kernel:{kind}@200");
        let r = run(
            &["--fault", &spec, "--fault-seed", seed, "--timeout", "5"],
            &[OPS],
        );
        let status = r.out.status;
        assert!(
            (0..=63).contains(&status) || (80..=83).contains(&status),
            "{spec} seed {seed}: status {status}: {:?}",
            r.out
        );
        assert_eq!(r.report["exit_status"], status);
        let i = the_injection(&r);
        assert_eq!(i["target"], "kernel", "{i}");
        assert!(i["concrete"].is_object(), "{i}");
        if kind == "text-flip" {
            assert!(i["activated"].is_boolean(), "a breakpoint watched it: {i}");
        }
        assert!(r.report["classification"].is_string(), "{}", r.report);
    }
}

/// Bad `--fault` specs are refused before the VM boots, with one line: malformed ones with the
/// usage status, ones the image cannot honour with the config status.
#[test]
fn specs_that_do_not_fit_the_image_are_refused_before_boot() {
    integration_tests::require_kvm();
    // A one-byte instruction of kv's: bit 8 is past it.
    let image = Image::from_bytes("bundled".into(), vmm::cli::BUNDLED_GUEST.to_vec())
        .expect("the bundled image");
    let sites = vmm::faults::sites::listing(
        &image,
        &layout(),
        &vmm::faults::Target::Server("kv".into()),
        FaultKind::TextFlip,
        usize::MAX,
    )
    .expect("kv's sites");
    let (addr, one_byte_asm) = sites
        .lines()
        .skip(1)
        .find_map(|l| {
            let (addr, rest) = l.trim().split_once("  ")?;
            // `{addr}  {hex:<24} {asm}`
            let (hex, asm) = (rest.get(..24)?.trim(), rest.get(24..)?.trim());
            (hex.len() == 2).then(|| (addr.to_owned(), asm.to_owned()))
        })
        .expect("a one-byte instruction in kv");
    let one_byte_flip = format!("kv:text-flip@5:at={addr}:bit=8");
    // Malformed specs are usage errors (64); well-formed ones the image cannot honour, 66.
    let usage = abi::status::USAGE;
    let config = abi::status::CONFIG;
    for (spec, status, want) in [
        (
            "kv:nop@5:at=0x10",
            config,
            "at=0x10 is not an instruction of kv's code",
        ),
        (
            "kv:state-flip@5:at=0x10",
            config,
            "at=0x10 is not in kv's state",
        ),
        (
            "kernel:panic@5",
            usage,
            "the kernel takes text-flip and state-flip faults only",
        ),
        (
            "kv:nop@5:aftersend",
            usage,
            "unknown modifier \"aftersend\"",
        ),
        ("kvv:nop@5", config, "unknown server \"kvv\""),
        (
            &one_byte_flip,
            config,
            &format!("bit: 8 is past the 8 bits of {one_byte_asm}"),
        ),
        (
            "kernel:text-flip@5:transient",
            usage,
            "transient does not apply to text-flip in the kernel",
        ),
    ] {
        let out = integration_tests::vmm_run(crate::VMM, &["--fault", spec]).run();
        assert_eq!(out.status, i32::from(status), "{spec}: {out:?}");
        let lines = out.error_lines();
        assert_eq!(lines.len(), 1, "{spec}: {out:?}");
        assert!(lines[0].contains(want), "{spec}: {}", lines[0]);
        assert!(out.stdout.is_empty(), "{spec}: the VM did not boot");
    }
    // Two faults one message of one server would take: the second would never fire.
    let out = integration_tests::vmm_run(
        crate::VMM,
        &["--fault", "kv:panic@10+10", "--fault", "kv:nop@30"],
    )
    .run();
    assert_eq!(out.status, i32::from(abi::status::CONFIG), "{out:?}");
    assert_eq!(
        out.error_lines(),
        [
            "vmm: --fault \"kv:nop@30\": kv would take it and \"kv:panic@10+10\" at its message 30; a target takes one fault a message"
        ],
        "{out:?}"
    );
}
