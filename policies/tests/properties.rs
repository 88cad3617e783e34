//! Property tests: the rules of the crate doc hold whatever the input.

use std::time::Duration;

use policies::{
    Action, Backoff, Cause, Crash, DecisionRecord, DependencyGuard, EscalationChain, FailStop,
    FaultRecord, History, InFlight, Micros, RecoveryPolicy, RecoveryWindow, Replay, RestartFresh,
    Rollback, SentMessage, ServerAction, ServerRef, Threshold, UnsafeFallback, consistent_cut,
    load,
};
use proptest::prelude::*;

const SERVERS: [&str; 4] = ["names", "kv", "fs", "bank"];

fn fault(at: u64) -> FaultRecord {
    FaultRecord {
        server: ServerRef::new(2, "fs"),
        generation: 1,
        cause: Cause::Panic,
        rip: 0x40_0000,
        messages: 1,
        at: Micros(at),
    }
}

fn window(sent: Vec<SentMessage>) -> RecoveryWindow {
    RecoveryWindow {
        boundary: Some(1),
        sent,
    }
}

/// Feeds crashes at `times` (µs, sorted) to `policy` as the engine would, recording each
/// decision in the history, and returns the decisions' actions with their times.
fn run(policy: &dyn RecoveryPolicy, times: &[u64]) -> Vec<(u64, Action)> {
    let mut history = History::new();
    let w = window(vec![]);
    times
        .iter()
        .map(|&t| {
            let f = fault(t);
            let d = policy.decide(&Crash {
                fault: &f,
                history: &history,
                window: &w,
                in_flight: None,
                now: Micros(t),
            });
            history.record_decision(&f, &d);
            (t, d.action)
        })
        .collect()
}

/// The largest number of decisions matching `pred` within any window of length `window` µs.
fn max_in_window(
    decisions: &[(u64, Action)],
    window: u64,
    pred: impl Fn(&Action) -> bool,
) -> usize {
    let hits: Vec<u64> = decisions
        .iter()
        .filter(|(_, a)| pred(a))
        .map(|(t, _)| *t)
        .collect();
    (0..hits.len())
        .map(|j| hits[..=j].iter().filter(|&&t| hits[j] - t < window).count())
        .max()
        .unwrap_or(0)
}

/// Sorted crash times from random gaps (zero gaps included: simultaneous crashes).
fn crash_times() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(prop_oneof![0u64..3_000, 0u64..400_000], 0..120).prop_map(|gaps| {
        gaps.iter()
            .scan(0u64, |t, g| {
                *t += g;
                Some(*t)
            })
            .collect()
    })
}

fn sent_message() -> impl Strategy<Value = SentMessage> {
    (
        0u32..4,
        any::<bool>(),
        prop::option::weighted(0.8, 0u64..20),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.15),
    )
        .prop_map(
            |(peer, state_changing, snap, answered, forwarded)| SentMessage {
                to: ServerRef::new(peer, SERVERS[peer as usize]),
                label: peer + 10,
                state_changing,
                peer_snapshot: snap,
                peer_answered_others: answered,
                peer_sent_state_changing: forwarded,
            },
        )
}

fn leaf() -> impl Strategy<Value = Box<dyn RecoveryPolicy>> {
    (0u8..5).prop_map(|k| -> Box<dyn RecoveryPolicy> {
        match k {
            0 => Box::new(Rollback),
            1 => Box::new(Replay::default()),
            2 => Box::new(Replay::new(Replay::new(RestartFresh))),
            3 => Box::new(RestartFresh),
            _ => Box::new(FailStop),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_threshold_never_allows_more_than_n_per_window(
        times in crash_times(), limit in 1u32..8, window_ms in 1u64..5_000,
    ) {
        let window = Duration::from_millis(window_ms);
        let p = Threshold::new(limit, window, Rollback, FailStop);
        let decisions = run(&p, &times);
        let allowed = max_in_window(&decisions, window_ms * 1000, |a| *a == Action::Rollback);
        prop_assert!(allowed <= limit as usize, "{allowed} rollbacks in one window > {limit}");
    }

    #[test]
    fn a_chain_bounds_every_stage_per_window(
        times in crash_times(), limit in 1u32..8, window_ms in 1u64..5_000,
    ) {
        let p = EscalationChain::new(limit, Duration::from_millis(window_ms), Rollback)
            .then(RestartFresh)
            .then(FailStop);
        let decisions = run(&p, &times);
        let w = window_ms * 1000;
        prop_assert!(max_in_window(&decisions, w, |a| *a == Action::Rollback) <= limit as usize);
        prop_assert!(
            max_in_window(&decisions, w, |a| *a != Action::FailStop) <= limit as usize + 1,
            "at most one fresh restart beyond the limit per window"
        );
    }

    #[test]
    fn configured_policies_never_restart_without_limit(
        times in crash_times(), limit in 1u32..6, base in prop::sample::select(vec!["rollback", "replay", "restart"]),
    ) {
        let text = format!("[recovery.default]\npolicy = {base:?}\nmax_crashes = {limit}\nwindow_secs = 1");
        let set = load(&text, &SERVERS).expect("valid config");
        let steps = set.settings("fs").expect("declared").escalate.len();
        let decisions = run(set.policy("fs").expect("declared"), &times);
        let restarts = max_in_window(&decisions, 1_000_000, |a| *a != Action::FailStop);
        prop_assert!(restarts < limit as usize + steps, "{restarts} restarts in one window");
    }

    #[test]
    fn backoff_is_capped_and_monotonic(base_ms in 0u64..1_000, cap_ms in 0u64..100_000, n in 1u32..200) {
        let p = Backoff::new(
            Duration::from_millis(base_ms),
            Duration::from_millis(cap_ms),
            Duration::from_secs(60),
            Rollback,
        );
        prop_assert!(p.delay(n) <= Duration::from_millis(cap_ms));
        prop_assert!(p.delay(n) <= p.delay(n + 1));
    }

    #[test]
    fn replay_never_replays_a_non_idempotent_request_nor_a_message_twice(
        idempotent in any::<bool>(), crashes in 1usize..6, again in leaf(),
        guarded in any::<bool>(), sent in prop::collection::vec(sent_message(), 0..4),
    ) {
        let replay = Replay::new(again);
        let p: Box<dyn RecoveryPolicy> = if guarded {
            Box::new(DependencyGuard::new(replay))
        } else {
            Box::new(replay)
        };
        // One message crashes the server `crashes` times in a row; the kernel counts replays.
        let mut msg = InFlight { label: 7, idempotent, state_changing: true, replays: 0 };
        let (h, w) = (History::new(), window(sent));
        let mut replays = 0;
        for i in 0..crashes {
            let f = fault(i as u64);
            let d = p.decide(&Crash { fault: &f, history: &h, window: &w, in_flight: Some(&msg), now: f.at });
            if d.action.own() == Some(ServerAction::Replay) {
                prop_assert!(idempotent, "replayed a non-idempotent request: {d:?}");
                replays += 1;
                msg.replays += 1;
            } else {
                break; // the message was answered (or the VM stopped): it is gone
            }
        }
        prop_assert!(replays <= 1, "replayed {replays} times");
    }

    #[test]
    fn the_guard_never_leaves_an_untracked_state_changing_send(
        inner in leaf(), fallback_restart in any::<bool>(),
        sent in prop::collection::vec(sent_message(), 0..6),
    ) {
        let fallback = if fallback_restart { UnsafeFallback::RestartFresh } else { UnsafeFallback::FailStop };
        let p = DependencyGuard::with_fallback(inner, fallback);
        let (f, h, w) = (fault(0), History::new(), window(sent));
        let crash = Crash { fault: &f, history: &h, window: &w, in_flight: None, now: f.at };
        let d = p.decide(&crash);
        let foreign: Vec<&SentMessage> = w.state_changing().filter(|m| m.to != f.server).collect();
        if foreign.is_empty() {
            return Ok(());
        }
        match &d.action {
            Action::FailStop => {}
            Action::RestartFresh => {
                prop_assert!(fallback_restart, "plain restart without a configured fallback");
                prop_assert!(consistent_cut(&crash).is_err(), "restart although a cut existed");
            }
            Action::RollbackPeers { peers, .. } => {
                for (i, m) in w.sent.iter().enumerate() {
                    if !m.state_changing || m.to == f.server {
                        continue;
                    }
                    let p = peers.iter().find(|p| p.peer == m.to);
                    prop_assert!(p.is_some(), "{} not rolled back", m.to);
                    let first = w.sent[..=i].iter().find(|e| e.state_changing && e.to == m.to);
                    prop_assert_eq!(first.and_then(|e| e.peer_snapshot), p.map(|p| p.to_snapshot));
                    prop_assert!(!m.peer_answered_others && !m.peer_sent_state_changing, "cascade");
                }
            }
            plain => prop_assert!(false, "plain {plain} with state-changing sends {foreign:?}"),
        }
    }

    #[test]
    fn any_config_text_parses_or_fails_in_one_line(text in "\\PC{0,200}") {
        if let Err(e) = load(&text, &SERVERS) {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
        }
    }

    #[test]
    fn any_recovery_table_parses_or_fails_in_one_line(text in recovery_text()) {
        match load(&text, &SERVERS) {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(!msg.contains('\n') && !msg.contains('\r'), "{msg:?}");
                prop_assert!(msg.contains("recovery") || msg.starts_with("line "), "no key: {msg}");
            }
            Ok(set) => {
                for (name, s) in set.iter() {
                    let mut prev = s.policy;
                    for &step in &s.escalate {
                        prop_assert!(step > prev, "{name}: {s}");
                        prev = step;
                    }
                    prop_assert_eq!(prev, policies::PolicyKind::FailStop, "{}: {}", name, s);
                    prop_assert!((1..=policies::MAX_CRASH_LIMIT).contains(&s.max_crashes));
                    prop_assert!(s.backoff <= s.backoff_max);
                }
            }
        }
    }

    #[test]
    fn every_record_is_one_line_and_serializes(
        inner in leaf(), sent in prop::collection::vec(sent_message(), 0..4),
        addr in any::<u64>(), reason_noise in "\\PC{0,20}",
    ) {
        let p = DependencyGuard::new(inner);
        let mut f = fault(5);
        f.cause = Cause::PageFault { addr };
        let (h, w) = (History::new(), window(sent));
        let crash = Crash { fault: &f, history: &h, window: &w, in_flight: None, now: f.at };
        let mut rec = DecisionRecord::new(&crash, &p.decide(&crash));
        rec.reason.push_str(&reason_noise);
        let line = rec.to_string();
        prop_assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        prop_assert!(serde_json::to_string(&rec).is_ok());
    }
}

/// Config text built from the schema's keys, with good and bad values, in good and bad sections.
fn recovery_text() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "rollback",
        "replay",
        "restart",
        "fail-stop",
        "halt",
        "",
        "Rollback",
    ]);
    let int = prop_oneof![
        Just(0i64),
        Just(-1),
        1i64..2_000,
        Just(86_401),
        Just(i64::MAX),
        Just(i64::MIN),
    ];
    let value = prop_oneof![
        int.prop_map(|n| n.to_string()),
        name.clone().prop_map(|n| format!("{n:?}")),
        prop::collection::vec(name, 0..4).prop_map(|v| format!("{v:?}")),
        Just("true".to_owned()),
        Just("1.5".to_owned()),
    ];
    let key = prop::sample::select(vec![
        "policy",
        "max_crashes",
        "window_secs",
        "escalate",
        "backoff_ms",
        "backoff_max_ms",
        "on_replay_crash",
        "on_unsafe_dependency",
        "dependency_tracking",
        "bogus",
    ]);
    let section = prop::sample::select(vec![
        "[recovery]",
        "[recovery.default]",
        "[recovery.servers.kv]",
        "[recovery.servers.fs]",
        "[recovery.servers.nope]",
        "[vm]",
    ]);
    let table = (section, prop::collection::vec((key, value), 0..4)).prop_map(|(s, kvs)| {
        let mut t = format!("{s}\n");
        for (k, v) in kvs {
            t.push_str(&format!("{k} = {v}\n"));
        }
        t
    });
    prop::collection::vec(table, 0..4).prop_map(|t| t.concat())
}
