//! Whatever a kernel sends, in any order.

use super::*;

/// One call as a (possibly buggy) kernel might make it.
#[derive(Clone, Debug)]
enum Call {
    /// BOUNDARY of `task`: the number the kernel would send (`next`), or any.
    Boundary { task: u64, next: bool, any: u16 },
    /// FAULT of `task`, with pending snapshots of `pending` tasks (their next numbers or
    /// not) and a window derived from `n`.
    Fault {
        task: u32,
        server: bool,
        cause: u32,
        n: u16,
        pending: Vec<(u64, bool)>,
    },
    /// RESTARTED of `task`.
    Restarted { task: u64, tsc: u64 },
}

fn call() -> impl proptest::strategy::Strategy<Value = Call> {
    use proptest::prelude::*;
    prop_oneof![
        5 => (0u64..4, proptest::bool::weighted(0.8), any::<u16>())
            .prop_map(|(task, next, any)| Call::Boundary { task, next, any }),
        2 => (
            0u32..4,
            proptest::bool::weighted(0.9),
            0u32..12,
            any::<u16>(),
            proptest::collection::vec((0u64..5, proptest::bool::weighted(0.8)), 0..3),
        )
            .prop_map(|(task, server, cause, n, pending)| Call::Fault { task, server, cause, n, pending }),
        1 => (0u64..4, any::<u64>()).prop_map(|(task, tsc)| Call::Restarted { task, tsc }),
    ]
}

/// Whatever the kernel sends, in any order, the engine never panics and keeps the books the
/// test keeps itself: a boundary is taken exactly when it is a server's next number, each
/// server's newest snapshot is always its last boundary (rollbacks and fresh restarts keep
/// the kernel's numbering), every fault of a server that reaches a decision is counted and
/// recorded, and nothing else is. Across the run, a good share of the calls must reach the
/// snapshot and the decision, so the property is not vacuous.
#[test]
fn arbitrary_calls_keep_the_books() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::atomic::{AtomicU32, Ordering};
    const CASES: u32 = 256;
    let (taken, decided) = (AtomicU32::new(0), AtomicU32::new(0));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = proptest::collection::vec(call(), 0..60);
    runner
        .run(&strategy, |calls| {
            let (mut e, _mem) = engine();
            // The test's books: boundaries per server, and faults decided per server.
            let mut boundaries = [0u64; 2];
            let mut crashes = [0u64; 2];
            let mut records = 0usize;
            let is_server = |t: u64| t < 2;
            let next = |b: &[u64; 2], t: u64| is_server(t).then(|| (b[t as usize] + 1) as u16);
            for call in calls {
                match call {
                    Call::Boundary {
                        task,
                        next: wanted,
                        any,
                    } => {
                        let seq = if wanted {
                            next(&boundaries, task).unwrap_or(1)
                        } else {
                            any
                        };
                        let ok = next(&boundaries, task) == Some(seq);
                        proptest::prop_assert_eq!(
                            e.boundary(snap(task, seq)).is_ok(),
                            ok,
                            "{} {}",
                            task,
                            seq
                        );
                        if ok {
                            boundaries[task as usize] += 1;
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Call::Fault {
                        task,
                        server,
                        cause,
                        n,
                        pending,
                    } => {
                        let mut f = fault(
                            task,
                            u64::from(n),
                            boundaries.get(task as usize).copied().unwrap_or(0),
                        );
                        f.record.cause = cause;
                        f.context.flags = if server { CrashContext::SERVER } else { 0 };
                        f.context.caller = if n % 2 == 0 { NO_CALLER } else { u32::from(n) };
                        f.context.label = u64::from(cause);
                        f.window.count = u32::from(n % 11);
                        for (i, m) in f.window.sent.iter_mut().enumerate() {
                            m.to = (u32::from(n) + i as u32) % 4;
                            m.flags = u32::from(n) >> (i % 3);
                            m.label = u64::from(cause) + i as u64;
                            m.peer_boundary = u64::from(n % 5);
                        }
                        // The books after the pending snapshots: taken in order while each
                        // is another server's next number; the first bad one stops the call.
                        let mut after = boundaries;
                        let mut reaches_decision = true;
                        f.pending_snapshots = pending
                            .iter()
                            .map(|&(t, good)| {
                                let seq = if good {
                                    next(&after, t).unwrap_or(1)
                                } else {
                                    n
                                };
                                if reaches_decision
                                    && t != u64::from(task)
                                    && next(&after, t) == Some(seq)
                                {
                                    after[t as usize] += 1;
                                } else {
                                    reaches_decision = false;
                                }
                                snap(t, seq)
                            })
                            .collect();
                        let result = e.fault(&f);
                        boundaries = after;
                        if reaches_decision && is_server(u64::from(task)) {
                            crashes[task as usize] += 1;
                            if server {
                                records += 1;
                                decided.fetch_add(1, Ordering::Relaxed);
                            }
                        } else {
                            proptest::prop_assert!(
                                !reaches_decision || result.is_ok(),
                                "{:?}",
                                result
                            );
                        }
                    }
                    Call::Restarted { task, tsc } => e.restarted(task, tsc),
                }
                let s = e.summary();
                for t in 0..2 {
                    proptest::prop_assert_eq!(
                        s.servers[t].snapshot_versions.last(),
                        Some(&boundaries[t])
                    );
                    proptest::prop_assert_eq!(s.servers[t].crashes, crashes[t]);
                }
                proptest::prop_assert_eq!(s.recoveries.len(), records);
                proptest::prop_assert_eq!(s.snapshots.boundaries, boundaries.iter().sum::<u64>());
            }
            Ok(())
        })
        .expect("property holds");
    let (taken, decided) = (taken.into_inner(), decided.into_inner());
    assert!(
        taken >= CASES * 4,
        "only {taken} snapshots taken in {CASES} runs"
    );
    assert!(
        decided >= CASES / 2,
        "only {decided} decisions in {CASES} runs"
    );
}
