//! Request declarations come from the image and are checked, not trusted: the bundled servers'
//! read-only requests hold (nothing reported, their boundaries skipped once trusted), and a
//! request that breaks its declaration on purpose is caught, reported, and taken as
//! state-changing from then on.

use crate::kvm::recovery::{assert_clean, run};

/// The bundled servers declare truthfully: a run reports no mis-declared request, and once
/// their read-only requests are trusted their boundaries are not snapshotted (fewer snapshots
/// than boundaries the servers passed).
#[test]
fn the_bundled_servers_declarations_hold() {
    let r = run(&[], &["ops=600", "seed=3"]);
    assert_clean(&r);
    assert_eq!(
        r.report["misdeclared_requests"],
        serde_json::json!([]),
        "{}",
        r.report
    );
    assert!(!r.out.stderr.contains("vmm: declaration:"), "{:?}", r.out);
    // The workload's mix is about half reads: far fewer snapshots than requests.
    let snapshots = r.report["snapshots"]["boundaries"].as_u64().unwrap_or(0);
    assert!(
        snapshots > 0 && snapshots < 600,
        "{}",
        r.report["snapshots"]
    );
}

/// `crasher=misdeclare` makes the crasher's PING, declared read-only, count pings in its
/// state. The workload pings it at its midpoint: the VMM's first check of PING catches it.
#[test]
fn a_request_that_breaks_its_read_only_declaration_is_caught() {
    let r = run(&[], &["ops=200", "crasher=misdeclare"]);
    assert_clean(&r);
    let caught = r.report["misdeclared_requests"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(caught.len(), 1, "{}", r.report);
    let m = &caught[0];
    assert_eq!(m["server"], "crasher", "{m}");
    assert_eq!(m["label"], crasher_api::op::PING, "{m}");
    assert_eq!(m["name"], "PING", "{m}");
    assert!(m["pages"].as_u64() >= Some(1), "{m}");
    let lines: Vec<&str> = r
        .out
        .stderr
        .lines()
        .filter(|l| l.starts_with("vmm: declaration: "))
        .collect();
    assert_eq!(lines.len(), 1, "{:?}", r.out);
    assert!(
        lines[0].starts_with(
            "vmm: declaration: crasher request PING (label 2) is declared read-only but changed "
        ),
        "{}",
        lines[0]
    );
}
