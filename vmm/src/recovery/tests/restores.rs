//! Boundary snapshots and restores: to the last boundary, to the boot image, with snapshots
//! pending; what is not a server stays stopped.

use super::*;

#[test]
fn a_restore_puts_back_the_last_boundary_and_only_the_crashed_server() {
    let (mut e, mem) = engine();
    poke(&mem, 0, 1, 7);
    poke(&mem, 1, 2, 9);
    e.boundary(snap(0, 1)).expect("kv boundary 1");
    e.boundary(snap(1, 1)).expect("fs boundary 1");
    // kv writes after its boundary (a KVM-logged write and one the bitmap sees), crashes.
    e.dirty_log().0.lock().expect("lock").push((1, 3));
    poke(&mem, 0, 1, 8);
    poke(&mem, 0, 3, 5);
    poke(&mem, 1, 2, 10); // fs's own later change must survive kv's restore
    let f = fault(0, 1, 1);
    e.fault(&f).expect("recovered");
    assert_eq!(
        (peek(&mem, 0, 1), peek(&mem, 0, 3)),
        (7, 0),
        "kv at boundary 1"
    );
    assert_eq!(peek(&mem, 1, 2), 10, "fs untouched");
    let v = verdict(&mem);
    assert_eq!((v.fault_seq, v.action), (1, VerdictAction::Rollback as u32));
    e.restarted(0, 251_000);
    let s = e.summary();
    let r = &s.recoveries[0];
    assert_eq!((r.server.as_str(), r.action.as_str()), ("kv", "rollback"));
    assert_eq!(r.pages_restored, 2);
    let check = r.isolation_check_us.expect("the isolation check ran");
    let latency = r.latency_us.expect("complete");
    assert!(
        (latency + check - 250_000.0).abs() < 1e-6,
        "(251000 - 1000) cycles at 1 MHz, less the check's {check} us: {latency}"
    );
    assert_eq!(r.peers_intact, Some(true));
    assert_eq!((s.servers[0].crashes, s.servers[0].generation), (1, 1));
}

/// A pause between a crash and the restart is not in the recovery's latency: neither the guest
/// TSC cycles it ran on meanwhile, nor a pause before the crash.
#[test]
fn time_paused_during_a_recovery_is_not_in_its_latency() {
    let (mut e, _mem) = engine();
    e.boundary(snap(0, 1)).expect("kv boundary 1");
    e.paused(40_000, std::time::Duration::from_millis(40));
    e.fault(&fault(0, 1, 1)).expect("recovered");
    e.paused(100_000, std::time::Duration::from_millis(100));
    e.restarted(0, 251_000);
    let r = &e.summary().recoveries[0];
    let latency = r.latency_us.expect("complete") + r.isolation_check_us.unwrap_or(0.0);
    assert!(
        (latency - 150_000.0).abs() < 1e-6,
        "(251000 - 1000 - 100000) cycles at 1 MHz: {latency}"
    );
}

/// A FAULT hands over the snapshots still pending (batched boundaries of other servers):
/// taken before the decision and listed in the record. One naming the crashed task itself
/// (it was running, so it has none) is a protocol violation, never a snapshot of its
/// crashed state.
#[test]
fn a_fault_takes_the_pending_snapshots_first_but_never_the_crashed_one() {
    let (mut e, mem) = engine();
    e.boundary(snap(0, 1)).expect("kv boundary 1");
    poke(&mem, 1, 2, 4);
    let mut f = fault(0, 1, 1);
    f.pending_snapshots = vec![snap(1, 1)];
    e.fault(&f).expect("recovered");
    assert_eq!(e.summary().recoveries[0].snapshots_taken_first, ["fs"]);
    assert!(
        matches!(e.boundary(snap(1, 1)), Err(Stop::Protocol(_))),
        "fs's boundary 1 was taken with the fault"
    );
    e.boundary(snap(1, 2)).expect("so its next one is 2");
    poke(&mem, 0, 1, 9);
    let mut f = fault(0, 2, 1);
    f.pending_snapshots = vec![snap(0, 2)];
    assert!(matches!(
        e.fault(&f),
        Err(Stop::Protocol(Violation::Boundary { task: 0, .. }))
    ));
    assert_eq!(
        peek(&mem, 0, 1),
        9,
        "the crashed state was neither kept nor restored"
    );
}

#[test]
fn a_crash_before_the_first_boundary_restores_the_boot_image() {
    let (mut e, mem) = engine();
    poke(&mem, 1, 0, 3);
    let f = fault(1, 1, 0);
    e.fault(&f).expect("recovered");
    assert_eq!(peek(&mem, 1, 0), 0);
    assert_eq!(e.summary().recoveries[0].action, "restart-fresh");
}

#[test]
fn bad_boundaries_are_violations() {
    let (mut e, _mem) = engine();
    for (task, seq) in [(APP as u64, 1), (3, 1), (u64::MAX, 1), (0, 0), (0, 2)] {
        assert!(
            matches!(
                e.boundary(snap(task, seq)),
                Err(Stop::Protocol(Violation::Boundary { .. }))
            ),
            "{task} {seq}"
        );
    }
    assert_eq!(e.summary().snapshots.boundaries, 0);
    e.boundary(snap(0, 1)).expect("the next one is fine");
    assert_eq!(e.summary().snapshots.boundaries, 1);
}

/// An app that faults, a task the kernel did not flag as a server, and a task index the
/// VMM does not know: each is told to stay stopped, and nothing of theirs is restored.
#[test]
fn apps_and_strangers_stay_stopped() {
    let (mut e, mem) = engine();
    e.boundary(snap(0, 1)).expect("kv boundary 1");
    poke(&mem, APP, 1, 6);
    poke(&mem, 0, 1, 4);
    let app = e.fault(&fault(APP as u32, 3, 0));
    app.expect("the app's fault stops only the app");
    assert_eq!(
        (verdict(&mem).fault_seq, verdict(&mem).action),
        (3, VerdictAction::Stop as u32)
    );
    assert_eq!(peek(&mem, APP, 1), 6, "the app's memory is left as it was");
    let mut f = fault(0, 4, 1);
    f.context.flags = 0; // not a server
    e.fault(&f).expect("no recovery");
    assert_eq!(
        (verdict(&mem).fault_seq, verdict(&mem).action),
        (4, VerdictAction::Stop as u32)
    );
    assert_eq!(peek(&mem, 0, 1), 4, "kv not restored");
    e.fault(&fault(99, 5, 1)).expect("unknown task");
    assert_eq!(
        (verdict(&mem).fault_seq, verdict(&mem).action),
        (5, VerdictAction::Stop as u32)
    );
    let s = e.summary();
    assert!(s.recoveries.is_empty());
    assert_eq!(
        s.servers
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        SERVERS,
        "apps are not in the report's servers"
    );
    assert_eq!((s.servers[0].restores, s.servers[0].generation), (0, 0));
    // RESTARTED for a task with nothing pending, or none at all, completes nothing.
    e.restarted(APP as u64, 1);
    e.restarted(7, 1);
    e.restarted(0, 1);
    assert!(e.summary().recoveries.is_empty());
}

/// A fresh restart after boundaries writes the boot image back over everything written
/// since boot, and the boot image is then the only version.
#[test]
fn a_fresh_restart_after_boundaries_puts_back_the_boot_image() {
    let (mut e, mem) = engine_booted_with(|mem| {
        poke(mem, 0, 0, 0x11);
        poke(mem, 0, 2, 0x22);
    });
    let boot = arena_image(&mem, 0);
    let config =
        policies::RecoveryConfig::from_toml("[recovery.servers.kv]\npolicy = \"restart\"\n")
            .expect("valid");
    let set = config.build(&SERVERS).expect("builds");
    e.set_policies(set.into_policies().into_iter().map(|(_, p)| p).collect());
    for (seq, page, byte) in [(1u16, 0, 1u8), (2, 1, 2), (3, 3, 3)] {
        poke(&mem, 0, page, byte);
        e.boundary(snap(0, seq)).expect("kv boundary");
    }
    poke(&mem, 0, 2, 4); // after the last boundary
    e.fault(&fault(0, 1, 3)).expect("recovered");
    assert_eq!(arena_image(&mem, 0), boot, "kv as it booted");
    let s = e.summary();
    assert_eq!(s.recoveries[0].action, "restart-fresh");
    assert_eq!(s.recoveries[0].pages_restored, 4, "every page had changed");
    assert_eq!(verdict(&mem).action, VerdictAction::RestartFresh as u32);
    assert_eq!(
        s.servers[0].snapshot_versions,
        [3],
        "the boot image, under kv's count"
    );
    // A later rollback goes back to the boot image, not to what boundary 3 held.
    poke(&mem, 0, 1, 5);
    e.fault(&fault(0, 2, 3)).expect("recovered");
    assert_eq!(arena_image(&mem, 0), boot);
}

/// A page left writable is still covered: a later write reaches the next snapshot and a
/// restore puts it back.
#[test]
fn a_hot_page_is_still_snapshotted_and_restored() {
    let (mut e, mem) = engine();
    for (seq, byte) in [(1u16, 1u8), (2, 2), (3, 3)] {
        poke(&mem, 0, 1, byte);
        e.dirty_log().0.lock().expect("lock").push((1, 1)); // as KVM would log the write
        e.boundary(snap(0, seq)).expect("boundary");
    }
    assert!(
        e.dirty_log().0.lock().expect("lock").contains(&(1, 1)),
        "dirty at boundaries 1, 2 and 3: left writable (still logged) after 2 and 3"
    );
    poke(&mem, 0, 1, 9); // after the last snapshot: must be rolled back
    e.fault(&fault(0, 1, 3)).expect("recovered");
    assert_eq!(peek(&mem, 0, 1), 3);
}
