//! Host tests of the recovery window: what a crashed server sent since its boundary, whether
//! its peers stayed quiet, when the window closes, after-send faults and generations.

use super::*;

/// SERVER, CLIENT, OTHER as in [`kernel`], plus PEER (a server); both servers wait in receive.
fn two_servers() -> K {
    let mut k = kernel();
    k.add_task(&setup(1, true));
    for s in [SERVER, PEER] {
        k.current = Some(s);
        sys(&mut k, s, Sys::Recv, 0, 0, [0; 6]);
        assert_eq!(k.tasks[s].state, State::Receiving);
    }
    k
}

/// CLIENT calls SERVER with `label`; SERVER runs.
fn client_calls_server(k: &mut K, label: u64) {
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(k, CLIENT, Sys::Call, server, label, [0; 6]);
    assert_eq!(k.current, Some(SERVER));
}

/// SERVER calls PEER with `label` and PEER answers at once (its boundary).
fn server_calls_peer(k: &mut K, label: u64) {
    k.current = Some(SERVER);
    let peer = k.id(PEER).0;
    sys(k, SERVER, Sys::Call, peer, label, [0; 6]);
    k.current = Some(PEER);
    let server = k.id(SERVER).0;
    sys(k, PEER, Sys::ReplyRecv, server, 0, [0; 6]);
    assert_eq!(k.tasks[PEER].state, State::Receiving);
    assert_eq!(
        k.tasks[SERVER].regs.rdi,
        k.id(PEER).0,
        "the reply names the replier"
    );
}

fn window_of(k: &K, t: usize) -> SentWindow {
    let mut w = SentWindow {
        count: 99,
        ..Default::default()
    };
    w.sent[WINDOW_MAX - 1].label = 77;
    k.fill_window(t, &mut w);
    w
}

fn crash_server(k: &mut K) {
    k.current = Some(SERVER);
    assert_eq!(k.exception(14, 4, 0, false), Effect::Fault(None));
}

#[test]
fn a_crashed_server_reports_what_it_sent_and_whether_the_peer_stayed_quiet() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    let before = k.tasks[PEER].boundaries;
    server_calls_peer(&mut k, 9);
    server_calls_peer(&mut k, 10);
    // An app's sends are not recorded.
    assert_eq!(k.tasks[CLIENT].window.sent_count(), 0);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count, 2);
    let both = SentRecord::PEER_SERVER | SentRecord::PEER_QUIET;
    assert_eq!(
        w.listed(),
        [
            SentRecord {
                to: PEER as u32,
                flags: both,
                label: 9,
                peer_boundary: before,
            },
            SentRecord {
                to: PEER as u32,
                flags: both,
                label: 10,
                peer_boundary: before + 1,
            },
        ]
    );
    assert_eq!(
        w.sent[WINDOW_MAX - 1].label,
        77,
        "entries past the count are left as they were (the VMM reads only the listed ones)"
    );
    // The peer now handles another task's message: it is no longer quiet, even once it is
    // back in receive.
    k.current = Some(OTHER);
    let peer = k.id(PEER).0;
    sys(&mut k, OTHER, Sys::Call, peer, 1, [0; 6]);
    assert_eq!(window_of(&k, SERVER).sent[1].flags, SentRecord::PEER_SERVER);
    k.current = Some(PEER);
    let other = k.id(OTHER).0;
    sys(&mut k, PEER, Sys::ReplyRecv, other, 0, [0; 6]);
    let w = window_of(&k, SERVER);
    assert!(
        w.listed()
            .iter()
            .all(|r| r.flags == SentRecord::PEER_SERVER),
        "{w:?}"
    );
}

#[test]
fn a_peer_that_took_a_notification_or_set_a_timer_is_not_quiet() {
    for what in ["notification", "timer", "send", "restart"] {
        let mut k = two_servers();
        client_calls_server(&mut k, 5);
        server_calls_peer(&mut k, 9);
        let peer = k.id(PEER).0;
        match what {
            "notification" => {
                k.current = Some(OTHER);
                sys(&mut k, OTHER, Sys::Notify, peer, 0, [1, 0, 0, 0, 0, 0]);
                k.current = Some(PEER);
                sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
            }
            "timer" | "send" => {
                // The peer is handling OTHER's send when it does this.
                k.current = Some(OTHER);
                sys(&mut k, OTHER, Sys::Send, peer, 1, [0; 6]);
                let mark = k.tasks[PEER].activity;
                k.current = Some(PEER);
                if what == "timer" {
                    sys(&mut k, PEER, Sys::Timer, 0, 0, [50, 1, 0, 0, 0, 0]);
                } else {
                    let client = k.id(CLIENT).0;
                    sys(&mut k, PEER, Sys::Notify, client, 0, [1, 0, 0, 0, 0, 0]);
                }
                assert_eq!(k.tasks[PEER].activity, mark + 1);
                k.current = Some(PEER);
                sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
            }
            _ => {
                k.current = Some(PEER);
                k.tasks[PEER].state = State::Runnable;
                k.exception(6, 0, 0, false);
                k.recover(PEER, VerdictAction::Rollback, 0);
                k.current = Some(PEER);
                sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
            }
        }
        assert_eq!(k.tasks[PEER].state, State::Receiving, "{what}");
        crash_server(&mut k);
        let w = window_of(&k, SERVER);
        assert_eq!(
            (w.count, w.sent[0].flags),
            (1, SentRecord::PEER_SERVER),
            "{what}"
        );
    }
}

#[test]
fn a_peer_still_handling_the_message_is_not_quiet_and_apps_are_not_servers() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    // A plain send: delivered, and the peer has not finished with it when the server crashes.
    let peer = k.id(PEER).0;
    sys(&mut k, SERVER, Sys::Send, peer, 3, [0; 6]);
    assert_eq!(k.tasks[PEER].state, State::Runnable);
    // And a send to an app waiting in receive.
    k.current = Some(OTHER);
    k.tasks[OTHER].state = State::Runnable;
    sys(&mut k, OTHER, Sys::Recv, 0, 0, [0; 6]);
    k.current = Some(SERVER);
    let other = k.id(OTHER).0;
    sys(&mut k, SERVER, Sys::Send, other, 4, [0; 6]);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count, 2);
    assert_eq!(
        (w.sent[0].flags, w.sent[0].label),
        (SentRecord::PEER_SERVER, 3)
    );
    assert_eq!((w.sent[1].to, w.sent[1].flags), (OTHER as u32, 0));
    assert_eq!(w.sent[1].peer_boundary, 0, "apps have no boundaries");
}

#[test]
fn the_window_closes_at_the_boundary_and_at_a_restart() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    server_calls_peer(&mut k, 9);
    assert_eq!(k.tasks[SERVER].window.sent_count(), 1);
    let client = k.id(CLIENT).0;
    sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    assert_eq!(
        k.tasks[SERVER].window.sent_count(),
        0,
        "closed at the boundary"
    );
    client_calls_server(&mut k, 5);
    crash_server(&mut k);
    assert_eq!(window_of(&k, SERVER).count, 0);
    assert!(window_of(&k, SERVER).listed().is_empty());
    // Sent, then restarted: the restarted task's window starts empty.
    k.recover(SERVER, VerdictAction::Rollback, 0);
    client_calls_server(&mut k, 5);
    server_calls_peer(&mut k, 9);
    crash_server(&mut k);
    assert_eq!(window_of(&k, SERVER).count, 1);
    k.recover(SERVER, VerdictAction::Rollback, 0);
    assert_eq!(k.tasks[SERVER].window.sent_count(), 0);
}

#[test]
fn the_window_counts_past_what_it_lists() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    let first = k.tasks[PEER].boundaries;
    for label in 0..WINDOW_MAX as u64 + 2 {
        server_calls_peer(&mut k, 100 + label);
    }
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count as usize, WINDOW_MAX + 2);
    assert!(w.overflowed());
    for (i, r) in w.listed().iter().enumerate() {
        assert_eq!(
            (r.label, r.peer_boundary),
            (100 + i as u64, first + i as u64)
        );
        // Two more messages went to the peer than are listed: nobody can say it was quiet.
        assert_eq!(r.flags, SentRecord::PEER_SERVER, "record {i}");
    }
}

#[test]
fn after_send_faults_stay_armed_until_the_task_crashes_holding_one() {
    let panic = abi::fault::FaultKind::Panic as u32;
    let hang = abi::fault::FaultKind::Hang as u32;
    let after = |kind: u32| u64::from(kind | AFTER_SEND);
    let mut k = kernel();
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 2,
        kind: panic | AFTER_SEND,
        period: 3,
    }));
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 4,
        kind: hang,
        period: 0,
    }));
    server_receives(&mut k);
    let mut seen = Vec::new();
    for n in 1..=10u64 {
        k.current = Some(CLIENT);
        let id = k.id(SERVER).0;
        sys(&mut k, CLIENT, Sys::Call, id, 1, [0; 6]);
        let word = k.tasks[SERVER].regs.rcx;
        seen.push(word);
        k.current = Some(SERVER);
        if n == 5 {
            // Crashes holding the after-send fault: consumed, armed again from 5 + 3.
            k.exception(6, 0, 0, false);
            k.recover(SERVER, VerdictAction::Rollback, 0);
            k.current = Some(SERVER);
            sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
            // The client's call was answered PeerRestarted; it runs on.
            continue;
        }
        let client = k.id(CLIENT).0;
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    }
    assert_eq!(
        seen,
        [
            0,
            after(panic),
            after(panic),
            u64::from(hang), // a plain fault due now comes first, once
            after(panic),    // crashed holding it
            0,
            0,
            after(panic),
            after(panic),
            after(panic),
        ]
    );
    // A crash on a message without an after-send fault consumes nothing.
    let f = k.tasks[SERVER].faults[0];
    assert_eq!((f.message, f.kind), (8, panic | AFTER_SEND));
    k.current = Some(SERVER);
    k.tasks[SERVER].held_fault = 0;
    k.exception(6, 0, 0, false);
    assert_eq!(k.tasks[SERVER].faults[0].message, 8);
    // Once, without a period: removed when it strikes.
    let mut t = crate::task::Task::EMPTY;
    t.plan_fault(PlannedFault {
        message: 1,
        kind: panic | AFTER_SEND,
        period: 0,
    });
    t.messages = 1;
    assert_eq!(t.take_due_fault().handed, after(panic));
    t.crashed_holding_fault();
    t.messages = 2;
    assert_eq!(t.take_due_fault().handed, 0);
    assert_eq!(
        t.faults,
        [crate::task::NO_FAULT; crate::task::PLANNED_FAULTS]
    );
}

#[test]
fn ids_made_before_a_fresh_restart_get_state_lost_and_later_ones_peer_restarted() {
    let mut k = crashed_on_a_call();
    // Generations wrap: start the server just below the wrap.
    k.tasks[SERVER].generation = u32::MAX;
    let gen_max = k.id(SERVER).0;
    k.recover(SERVER, VerdictAction::RestartFresh, 0);
    assert_eq!(k.tasks[SERVER].generation, 0);
    let call = |k: &mut K, id: u64| {
        k.current = Some(CLIENT);
        sys(k, CLIENT, Sys::Call, id, 1, [0; 6]);
        let r = k.tasks[CLIENT].regs;
        (r.rax, r.rdi)
    };
    let current = k.id(SERVER).0;
    assert_eq!(call(&mut k, gen_max), (Error::StateLost as u64, current));
    assert_eq!(
        k.tasks[OTHER].regs.rax,
        Error::StateLost as u64,
        "queued: told"
    );
    // The server reaches a boundary, takes a call, crashes on it and is rolled back (plain).
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    let after_fresh = k.id(SERVER).0;
    client_calls_server(&mut k, 5);
    k.exception(0, 0, 0, false);
    k.recover(SERVER, VerdictAction::Rollback, 0);
    let current = k.id(SERVER).0;
    assert_eq!(k.tasks[SERVER].generation, 1);
    assert_eq!(call(&mut k, gen_max), (Error::StateLost as u64, current));
    assert_eq!(
        call(&mut k, after_fresh),
        (Error::PeerRestarted as u64, current),
        "made after the fresh restart: only rolled back"
    );
    assert_eq!(
        call(&mut k, TaskId::new(SERVER as u16, 7).0),
        (Error::PeerRestarted as u64, current),
        "not older, never made: no claim of loss"
    );
    // A fresh restart before any boundary lost nothing: stale ids are only restarted.
    let mut k = kernel();
    k.schedule(false);
    let first = k.id(SERVER).0;
    k.exception(0, 0, 0, false);
    k.recover(SERVER, VerdictAction::RestartFresh, 0);
    let current = k.id(SERVER).0;
    assert_eq!(call(&mut k, first), (Error::PeerRestarted as u64, current));
}

/// Request labels of the tests' server: GET is read-only (when its platform says so).
const PUT: u64 = 1;
const GET: u64 = 2;
const DELETE: u64 = 3;

/// A server is snapshotted only at the boundaries that close a state-changing request: after a
/// request whose label the platform marks read-only the reply is released without a BOUNDARY
/// (nothing its clients saw is missing from the last snapshot), and its recovery window stays
/// open. The boundary names the request it closed.
#[test]
fn read_only_requests_skip_the_snapshot_and_keep_the_window_open() {
    let mut k = two_servers();
    k.platform.read_only[SERVER] = 1 << GET;
    let (passed, snaps) = (k.tasks[SERVER].boundaries, k.tasks[SERVER].snapshots);
    let client = k.id(CLIENT).0;
    // A PUT that also sends something to the peer: snapshotted, window closed.
    client_calls_server(&mut k, PUT);
    server_calls_peer(&mut k, 9);
    k.current = Some(SERVER);
    assert_eq!(
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]),
        Effect::Boundary {
            task: SERVER,
            label: PUT as u16
        }
    );
    assert_eq!(k.tasks[SERVER].snapshots, snaps + 1);
    assert_eq!(k.tasks[SERVER].window.sent_count(), 0);
    // A GET that sends to the peer: the reply goes out without a snapshot, the window stays.
    client_calls_server(&mut k, GET);
    server_calls_peer(&mut k, 9);
    k.current = Some(SERVER);
    assert_eq!(
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]),
        Effect::None
    );
    assert_eq!(k.tasks[CLIENT].regs.rax, 0, "the reply was delivered");
    assert_eq!(k.tasks[SERVER].snapshots, snaps + 1, "no snapshot");
    assert_eq!(
        k.tasks[SERVER].boundaries,
        passed + 2,
        "but a boundary passed"
    );
    assert_eq!(
        k.tasks[SERVER].window.sent_count(),
        1,
        "the window stays open"
    );
    assert_eq!(k.tasks[SERVER].window.caller(), None);
    // A crash now reports the last snapshot's window and the peer's snapshot number.
    client_calls_server(&mut k, DELETE);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count, 1);
    assert_eq!(w.listed()[0].peer_boundary, k.tasks[PEER].snapshots - 1);
    // A receive without a reply (e.g. after a notification) always snapshots.
    let mut k = two_servers();
    k.platform.read_only[SERVER] = 1 << GET;
    let snaps = k.tasks[SERVER].snapshots;
    k.current = Some(SERVER);
    k.tasks[SERVER].state = State::Runnable;
    assert_eq!(
        sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]),
        Effect::Boundary {
            task: SERVER,
            label: 0
        }
    );
    assert_eq!(k.tasks[SERVER].snapshots, snaps + 1);
}

/// A peer that released a deferred reply to another task while it handled the crashed
/// server's message answered someone else: it is not reported quiet (rolling it back would take
/// back what that task was told).
#[test]
fn a_peer_that_replied_to_someone_else_is_not_quiet() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    // OTHER calls PEER; PEER defers the reply (receives again without answering).
    k.current = Some(OTHER);
    let peer = k.id(PEER).0;
    sys(&mut k, OTHER, Sys::Call, peer, 1, [0; 6]);
    k.current = Some(PEER);
    sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(
        k.tasks[OTHER].state,
        State::AwaitingReply { from: PEER as u16 }
    );
    // SERVER calls PEER; PEER answers OTHER first (explicit reply), then SERVER.
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Call, peer, 9, [0; 6]);
    k.current = Some(PEER);
    let other = k.id(OTHER).0;
    sys(&mut k, PEER, Sys::Reply, other, 0, [0; 6]);
    assert_ne!(
        k.tasks[OTHER].state,
        State::AwaitingReply { from: PEER as u16 },
        "OTHER answered"
    );
    k.current = Some(PEER);
    let server = k.id(SERVER).0;
    sys(&mut k, PEER, Sys::ReplyRecv, server, 0, [0; 6]);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(
        w.listed()[0].flags & SentRecord::PEER_QUIET,
        0,
        "PEER answered OTHER: {w:?}"
    );
}
