//! Consistent cuts: peers rolled back with the crashed server, and the isolation check around
//! the restore.

use super::*;

/// fs (task 1) sent kv a PUT after both passed boundary 1; kv applied it, passed boundary 2,
/// then wrote more pages before fs crashed. Rolling kv back as fs's peer puts back every
/// page: those the PUT changed (kept in the store) and those written after its newest
/// snapshot (known only from the dirty log).
#[test]
fn a_peer_rollback_restores_every_page_the_peer_wrote() {
    let (mut e, mem) = engine();
    poke(&mem, 0, 1, 7);
    e.boundary(snap(0, 1)).expect("kv 1");
    e.boundary(snap(1, 1)).expect("fs 1");
    let at1 = arena_image(&mem, 0);
    poke(&mem, 0, 1, 8);
    poke(&mem, 0, 2, 5);
    e.boundary(snap(0, 2)).expect("kv 2");
    // After boundary 2: a write KVM logs (page 0) and one through the VMM (page 3).
    e.dirty_log().0.lock().expect("lock").push((slot(0), 0));
    mem.write_slice(&[3], GuestAddress(arena(0)))
        .expect("write");
    poke(&mem, 0, 3, 4);
    e.fault(&fs_crash_after_a_put(true)).expect("recovered");
    assert_eq!(arena_image(&mem, 0), at1, "kv as it was at boundary 1");
    let r = &e.summary().recoveries[0];
    assert_eq!(r.peers_rolled_back.len(), 1);
    assert_eq!(
        r.peers_rolled_back[0].pages, 4,
        "pages 1 and 2 from the store, 0 and 3 from the dirty log"
    );
}

/// The isolation check reports a peer whose arena changed during a restore (the test's
/// dirty log writes into it when the engine clears the crashed server's log).
#[test]
fn the_isolation_check_catches_a_peer_changed_during_a_restore() {
    let (mut e, mem) = engine();
    e.boundary(snap(0, 1)).expect("kv 1");
    e.boundary(snap(1, 1)).expect("fs 1");
    poke(&mem, 0, 1, 9);
    e.dirty_log().sabotage(slot(0), &mem, 1);
    e.fault(&fault(0, 1, 1)).expect("recovered");
    assert_eq!(peek(&mem, 0, 1), 0, "kv restored");
    let r = &e.summary().recoveries[0];
    assert_eq!(
        r.peers_intact,
        Some(false),
        "fs changed during kv's restore"
    );
}

/// In a consistent cut the peers rolled back may change, but nobody else: the app's arena
/// changing during the restore makes the check fail, kv's (in the cut) does not.
#[test]
fn the_isolation_check_spares_only_the_cut() {
    for (victim, intact) in [(0, true), (APP, false)] {
        let (mut e, mem) = engine();
        put_from_fs(&mut e, &mem);
        e.dirty_log().sabotage(slot(1), &mem, victim);
        e.fault(&fs_crash_after_a_put(true)).expect("recovered");
        let r = &e.summary().recoveries[0];
        assert_eq!(r.action, "rollback-peers");
        assert_eq!(r.peers_intact, Some(intact), "task {victim} changed");
    }
}

/// fs (task 1) called kv (task 0) with a PUT since its boundary, then crashed: the
/// window the kernel would report, with kv quiet or not.
fn fs_crash_after_a_put(quiet: bool) -> FaultReport {
    let mut f = fault(1, 1, 1);
    f.window.count = 1;
    f.window.sent[0] = SentRecord {
        to: 0,
        flags: SentRecord::PEER_SERVER | if quiet { SentRecord::PEER_QUIET } else { 0 },
        label: PUT,
        peer_boundary: 1,
    };
    f
}

/// kv at boundary 1 holds 7; fs at boundary 1; then kv handles fs's PUT (8) and passes
/// boundary 2.
fn put_from_fs(e: &mut Engine<FakeLog>, mem: &GuestMemory) {
    poke(mem, 0, 1, 7);
    e.boundary(snap(0, 1)).expect("kv 1");
    e.boundary(snap(1, 1)).expect("fs 1");
    poke(mem, 0, 1, 8);
    e.boundary(snap(0, 2)).expect("kv 2");
}

#[test]
fn a_state_changing_send_rolls_the_quiet_peer_back_too() {
    let (mut e, mem) = engine();
    put_from_fs(&mut e, &mem);
    e.fault(&fs_crash_after_a_put(true)).expect("recovered");
    assert_eq!(
        peek(&mem, 0, 1),
        7,
        "kv back at its snapshot from before the PUT"
    );
    assert_eq!(verdict(&mem).action, VerdictAction::Rollback as u32);
    let s = e.summary();
    let r = &s.recoveries[0];
    assert_eq!(r.action, "rollback-peers");
    assert_eq!(r.peers_rolled_back.len(), 1);
    assert_eq!(
        (
            r.peers_rolled_back[0].server.as_str(),
            r.peers_rolled_back[0].to_snapshot
        ),
        ("kv", 1)
    );
    assert_eq!(r.peers_intact, Some(true), "nobody outside the cut changed");
    assert_eq!(s.servers[0].peer_rollbacks, 1);
    assert_eq!(
        s.servers[0].snapshot_versions,
        [0, 1, 2],
        "version 2 now holds the image of 1: the kernel goes on naming kv's state 2"
    );
    // kv's snapshots go on from 3 (the kernel's count).
    poke(&mem, 0, 1, 9);
    e.boundary(snap(0, 3)).expect("kv 3");
    assert_eq!(e.summary().servers[0].snapshot_versions.last(), Some(&3));
}

/// After kv was rolled back as fs's peer, the next message delivered to kv is recorded
/// with kv's snapshot number as the kernel counts it (2): a second consistent cut, e.g. on
/// fs's retry crashing again, must find that version.
#[test]
fn a_second_cut_after_a_peer_rollback_finds_the_peer_s_snapshot() {
    let (mut e, mem) = engine();
    put_from_fs(&mut e, &mem);
    e.fault(&fs_crash_after_a_put(true)).expect("first cut");
    assert_eq!(peek(&mem, 0, 1), 7);
    e.restarted(1, 2000);
    e.boundary(snap(1, 2))
        .expect("fs 2 (restarted, first receive)");
    // fs's retried PUT reaches kv (kernel: peer_boundary 2), kv applies it and snapshots.
    poke(&mem, 0, 1, 8);
    e.boundary(snap(0, 3)).expect("kv 3");
    let mut f = fs_crash_after_a_put(true);
    f.record.seq = 2;
    f.context.boundary = 2;
    f.window.sent[0].peer_boundary = 2;
    e.fault(&f).expect("second consistent cut");
    assert_eq!(
        peek(&mem, 0, 1),
        7,
        "kv back at the state it had before either PUT"
    );
    assert_eq!(e.summary().servers[0].peer_rollbacks, 2);
}

#[test]
fn a_peer_that_answered_others_makes_the_default_fail_stop() {
    let (mut e, mem) = engine();
    put_from_fs(&mut e, &mem);
    let stop = e
        .fault(&fs_crash_after_a_put(false))
        .expect_err("no consistent cut");
    assert!(matches!(stop, Stop::FailStop { .. }), "{stop:?}");
    assert_eq!(peek(&mem, 0, 1), 8, "kv untouched");
    assert_eq!(e.summary().recoveries[0].decision.outcome, Outcome::Stopped);
}

#[test]
fn without_tracking_the_peer_keeps_the_effect() {
    let (mut e, mem) = engine();
    let config = policies::RecoveryConfig::from_toml("[recovery]\ndependency_tracking = false\n")
        .expect("valid");
    let set = config.build(&SERVERS).expect("builds");
    e.set_policies(set.into_policies().into_iter().map(|(_, p)| p).collect());
    put_from_fs(&mut e, &mem);
    e.fault(&fs_crash_after_a_put(true)).expect("recovered");
    assert_eq!(peek(&mem, 0, 1), 8, "kv keeps the PUT fs forgot");
    assert_eq!(e.summary().recoveries[0].action, "rollback");
}

#[test]
fn a_window_past_its_capacity_or_naming_strangers_is_not_trusted() {
    let (mut e, mem) = engine();
    put_from_fs(&mut e, &mem);
    let mut f = fs_crash_after_a_put(true);
    f.window.count = WINDOW_MAX as u32 + 1;
    assert!(matches!(e.fault(&f), Err(Stop::FailStop { .. })));
    let (mut e, mem) = engine();
    put_from_fs(&mut e, &mem);
    let mut f = fs_crash_after_a_put(true);
    f.window.sent[0].to = 77;
    assert!(matches!(e.fault(&f), Err(Stop::FailStop { .. })));
    // A read-only message needs nothing.
    let (mut e, mem) = engine();
    put_from_fs(&mut e, &mem);
    let mut f = fs_crash_after_a_put(false);
    f.window.sent[0].label = GET;
    e.fault(&f).expect("plain rollback");
    assert_eq!(peek(&mem, 0, 1), 8);
}
