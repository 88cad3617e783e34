//! Property tests: the rules of the crate doc hold whatever the input.

use std::time::Duration;

use policies::{
    Action, Backoff, Cause, Crash, DecisionRecord, DependencyGuard, EscalationChain, FailStop,
    Fault, History, InFlight, Micros, RecoveryPolicy, RecoveryWindow, Replay, RestartFresh,
    Rollback, SentMessage, ServerAction, ServerRef, Threshold, UnsafeFallback, load,
};
use proptest::prelude::*;

const SERVERS: [&str; 4] = ["names", "kv", "fs", "bank"];

/// Text with what a one-line message must not let through: line breaks of every kind, terminal
/// controls, NUL, DEL, and the bidirectional overrides that make a line read differently.
const NOISY: &str =
    "[\\PC\\t\\n\\r\\x0b\\x0c\\x1b\\x00\\x7f\\u{85}\\u{2028}\\u{2029}\\u{202e}\\u{2066}]{0,200}";

/// A bidirectional formatting character (embedding, override, isolate).
fn bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One line with no control character (line breaks included) and no bidirectional override.
fn one_clean_line(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() || bidi(c) || matches!(c, '\u{2028}' | '\u{2029}'))
}

fn fault(at: u64) -> Fault {
    Fault {
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

/// How many of the crashes at `times` up to and including crash `j` lie in its window: less
/// than `window` µs before it (the crate's half-open window `(t - window, t]`).
fn in_window(times: &[u64], j: usize, window: u64) -> usize {
    times[..=j]
        .iter()
        .filter(|&&t| times[j] - t < window)
        .count()
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
                name: None,
                state_changing,
                peer_snapshot: snap,
                peer_answered_others: answered,
                peer_sent_state_changing: forwarded,
            },
        )
}

/// Leaf policy `k` (0-4) and what it decides for a crash with no request in flight: a replay
/// with nothing to replay rolls back.
fn leaf_of(k: u8) -> (Box<dyn RecoveryPolicy>, Action) {
    match k {
        0 => (Box::new(Rollback), Action::Rollback),
        1 => (Box::new(Replay::default()), Action::Rollback),
        2 => (
            Box::new(Replay::new(Replay::new(RestartFresh))),
            Action::Rollback,
        ),
        3 => (Box::new(RestartFresh), Action::RestartFresh),
        _ => (Box::new(FailStop), Action::FailStop),
    }
}

fn leaf() -> impl Strategy<Value = Box<dyn RecoveryPolicy>> {
    (0u8..5).prop_map(|k| leaf_of(k).0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_threshold_decides_by_the_crashes_in_the_window(
        times in crash_times(), limit in 1u32..8, window_ms in 1u64..5_000,
    ) {
        let window = Duration::from_millis(window_ms);
        let p = Threshold::new(limit, window, Rollback, FailStop);
        let decisions = run(&p, &times);
        let allowed = max_in_window(&decisions, window_ms * 1000, |a| *a == Action::Rollback);
        prop_assert!(allowed <= limit as usize, "{allowed} rollbacks in one window > {limit}");
        for (j, (_, action)) in decisions.iter().enumerate() {
            let n = in_window(&times, j, window_ms * 1000);
            let expected = if n <= limit as usize { Action::Rollback } else { Action::FailStop };
            prop_assert_eq!(action, &expected, "crash {} is number {} in its window", j, n);
        }
    }

    #[test]
    fn a_chain_moves_one_stage_per_crash_beyond_the_limit(
        times in crash_times(), limit in 1u32..8, window_ms in 1u64..5_000,
    ) {
        let p = EscalationChain::new(limit, Duration::from_millis(window_ms), Rollback)
            .then(RestartFresh)
            .then(FailStop);
        let decisions = run(&p, &times);
        for (j, (_, action)) in decisions.iter().enumerate() {
            let n = in_window(&times, j, window_ms * 1000);
            let expected = match n.saturating_sub(limit as usize) {
                0 => Action::Rollback,
                1 => Action::RestartFresh,
                _ => Action::FailStop,
            };
            prop_assert_eq!(action, &expected, "crash {} is number {} in its window", j, n);
        }
    }

    /// The configured default chain, written out by the test: `max_crashes` crashes per window
    /// get the policy (a rollback without a request in flight, for replay too), the next one a
    /// fresh restart (none for policy restart, whose next step is fail-stop), then fail-stop.
    #[test]
    fn configured_policies_escalate_as_documented(
        times in crash_times(), limit in 1u32..6,
        base in prop::sample::select(vec!["rollback", "replay", "restart"]),
    ) {
        let text = format!("[recovery.default]\npolicy = {base:?}\nmax_crashes = {limit}\nwindow_secs = 1");
        let set = load(&text, &SERVERS).expect("valid config");
        let decisions = run(set.policy("fs").expect("declared"), &times);
        let (first, steps): (Action, &[Action]) = match base {
            "restart" => (Action::RestartFresh, &[Action::FailStop]),
            _ => (Action::Rollback, &[Action::RestartFresh, Action::FailStop]),
        };
        for (j, (_, action)) in decisions.iter().enumerate() {
            let n = in_window(&times, j, 1_000_000);
            let expected = match n.checked_sub(limit as usize + 1) {
                None => &first,
                Some(k) => &steps[k.min(steps.len() - 1)],
            };
            prop_assert_eq!(action, expected, "crash {} is number {} in its window", j, n);
        }
        let restarts = max_in_window(&decisions, 1_000_000, |a| *a != Action::FailStop);
        prop_assert!(restarts < limit as usize + steps.len(), "{restarts} restarts in one window");
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
        let mut msg = InFlight { label: 7, name: None, idempotent, state_changing: true, replays: 0 };
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
    fn any_config_text_parses_or_fails_in_one_line(text in NOISY) {
        if let Err(e) = load(&text, &SERVERS) {
            let msg = e.to_string();
            prop_assert!(one_clean_line(&msg), "{msg:?}");
        }
    }

    #[test]
    fn any_recovery_table_parses_or_fails_in_one_line(text in recovery_text()) {
        match load(&text, &SERVERS) {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(one_clean_line(&msg), "{msg:?}");
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
        addr in any::<u64>(), reason_noise in NOISY,
    ) {
        let p = DependencyGuard::new(inner);
        let mut f = fault(5);
        f.cause = Cause::PageFault { addr };
        let (h, w) = (History::new(), window(sent));
        let crash = Crash { fault: &f, history: &h, window: &w, in_flight: None, now: f.at };
        let mut rec = DecisionRecord::new(&crash, &p.decide(&crash));
        rec.reason.push_str(&reason_noise);
        let line = rec.to_string();
        prop_assert!(one_clean_line(&line), "{line:?}");
        // What is not whitespace is escaped, not dropped: the reader sees that it was there.
        for c in reason_noise.chars().filter(|c| !c.is_whitespace() && (c.is_control() || bidi(*c))) {
            let escaped = format!("\\u{{{:x}}}", u32::from(c));
            prop_assert!(line.contains(&escaped), "{:?} not shown as {} in {:?}", c, escaped, line);
        }
        prop_assert!(serde_json::to_string(&rec).is_ok());
    }
}

/// The consistent cut for `sent` (crashed server `me`) by the rule in the crate's docs, written
/// out here independently of the guard: every peer that got a state-changing message goes back
/// to its snapshot from before the first such message, which must be kept, and must not have
/// answered anyone else or sent a state-changing message of its own since that message.
/// `None`: no cut exists.
fn expected_cut(me: &ServerRef, sent: &[SentMessage]) -> Option<Vec<(ServerRef, u64)>> {
    let mut cut: Vec<(ServerRef, u64)> = Vec::new();
    for (i, m) in sent.iter().enumerate() {
        if !m.state_changing || &m.to == me || cut.iter().any(|(p, _)| *p == m.to) {
            continue;
        }
        let clean = sent[i..]
            .iter()
            .filter(|l| l.to == m.to)
            .all(|l| !l.peer_answered_others && !l.peer_sent_state_changing);
        cut.push((m.to.clone(), m.peer_snapshot.filter(|_| clean)?));
    }
    Some(cut)
}

/// Whatever the inner policy and the window, the guard's decision is the test's own: the inner
/// policy's when nothing state-changing went to a peer, a roll back of exactly the expected cut,
/// or the fallback when no cut exists; fail-stop passes through. At least a tenth of the cases
/// reach each of the two interesting branches (a cut, no cut; about a quarter each is
/// expected), so the property is not vacuous.
#[test]
fn the_guard_decides_the_documented_cut() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicU32, Ordering};
    const CASES: u32 = 512;
    let (cuts, refusals) = (AtomicU32::new(0), AtomicU32::new(0));
    let strategy = (
        0u8..5,
        any::<bool>(),
        prop::collection::vec(sent_message(), 0..6),
    );
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |(k, fallback_restart, sent)| {
            let (inner, inner_action) = leaf_of(k);
            let fallback = if fallback_restart {
                UnsafeFallback::RestartFresh
            } else {
                UnsafeFallback::FailStop
            };
            let p = DependencyGuard::with_fallback(inner, fallback);
            let (f, h, w) = (fault(0), History::new(), window(sent));
            let crash = Crash {
                fault: &f,
                history: &h,
                window: &w,
                in_flight: None,
                now: f.at,
            };
            let d = p.decide(&crash);
            let expected = match expected_cut(&f.server, &w.sent) {
                _ if inner_action == Action::FailStop => Action::FailStop,
                Some(cut) if cut.is_empty() => inner_action,
                Some(cut) => {
                    cuts.fetch_add(1, Ordering::Relaxed);
                    let own = inner_action.own().expect("not a fail-stop");
                    let peers = cut
                        .into_iter()
                        .map(|(peer, to_snapshot)| policies::PeerRollback { peer, to_snapshot })
                        .collect();
                    Action::RollbackPeers { own, peers }
                }
                None => {
                    refusals.fetch_add(1, Ordering::Relaxed);
                    if fallback_restart {
                        Action::RestartFresh
                    } else {
                        Action::FailStop
                    }
                }
            };
            prop_assert_eq!(&d.action, &expected, "{:?}", w.sent);
            Ok(())
        })
        .expect("property holds");
    for (name, n) in [("a cut", cuts), ("no cut", refusals)] {
        let n = n.into_inner();
        assert!(n >= CASES / 10, "only {n} of {CASES} cases reached {name}");
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
