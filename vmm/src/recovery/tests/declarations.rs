//! Request declarations checked against what the snapshots find.

use super::*;

/// The read-only masks the engine wrote into the monitor page, per server.
fn read_only_masks(mem: &GuestMemory) -> [u64; 2] {
    let addr = MONITOR + std::mem::offset_of!(MonitorPage, read_only) as u64;
    [0, 1].map(|s| mem.read_obj(GuestAddress(addr + 8 * s)).expect("read"))
}

/// A request declared read-only is snapshotted until its snapshots have shown it changing
/// nothing, then trusted (its bit goes into the monitor page, for the kernel). One that
/// changed the state is reported once, never trusted, and from then on counts as
/// state-changing in a crashed server's recovery window.
#[test]
fn read_only_declarations_are_trusted_only_once_they_hold() {
    let (mut e, mem) = engine();
    let get = |task, seq| PendingSnapshot::new(task, seq, GET as u16);
    for seq in 1..=u16::from(crate::recovery::declarations::CHECKS) {
        assert_eq!(
            read_only_masks(&mem),
            [0, 0],
            "not trusted before check {seq}"
        );
        e.boundary(get(0, seq)).expect("kv GET");
    }
    assert_eq!(read_only_masks(&mem), [1 << GET, 0], "kv's GET trusted");
    // fs's GET writes its state: caught at its first check.
    poke(&mem, 1, 2, 1);
    e.boundary(get(1, 1)).expect("fs GET");
    let caught = &e.summary().misdeclared_requests;
    assert_eq!(caught.len(), 1);
    let m = &caught[0];
    assert_eq!(
        (
            m.server.as_str(),
            m.label,
            m.name.as_deref(),
            m.boundary,
            m.pages
        ),
        ("fs", GET as u16, Some("GET"), 1, 1)
    );
    for seq in 2..=2 * u16::from(crate::recovery::declarations::CHECKS) {
        e.boundary(get(1, seq)).expect("fs GET");
    }
    assert_eq!(
        read_only_masks(&mem),
        [1 << GET, 0],
        "fs's GET is never trusted"
    );
    assert_eq!(e.summary().misdeclared_requests.len(), 1, "reported once");
    // kv sent fs a GET since its last boundary, then crashed: fs holds its effect now.
    let mut f = fault(0, 1, 4);
    f.window.count = 1;
    f.window.sent[0] = SentRecord {
        to: 1,
        flags: SentRecord::PEER_SERVER | SentRecord::PEER_QUIET,
        label: GET,
        peer_boundary: 8,
    };
    e.fault(&f).expect("recovered");
    assert_eq!(e.summary().recoveries[0].action, "rollback-peers");
}
