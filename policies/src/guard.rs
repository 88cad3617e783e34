//! Dependency tracking (OSIRIS recovery windows): a rollback must not leave a peer holding the
//! effect of a request the crashed server forgot.
//!
//! ```text
//!  client ──req──► S ──put (state-changing)──► P      P applies the put, answers S
//!                  S crashes before its next boundary
//!  rolled back alone, S forgets the put; P still holds it   ──► inconsistent
//!  DependencyGuard: roll P back to its snapshot from before the put as well (a consistent cut),
//!  or, when P has no such snapshot or has answered anyone else since, escalate (fail-stop).
//! ```

use std::fmt;

use crate::action::{Action, Decision, PeerRollback};
use crate::context::{Crash, SentMessage, request_text};
use crate::fault::ServerRef;
use crate::policy::RecoveryPolicy;

/// What [`DependencyGuard`] does when a rollback cannot be made consistent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnsafeFallback {
    /// Stop the VM.
    #[default]
    FailStop,
    /// Restart the crashed server from its image: its state, and the in-flight request, are
    /// declared lost to its clients; the peer keeps the effect.
    RestartFresh,
}

impl UnsafeFallback {
    fn action(self) -> Action {
        match self {
            Self::FailStop => Action::FailStop,
            Self::RestartFresh => Action::RestartFresh,
        }
    }
}

/// Why a peer cannot be rolled back with the crashed server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DependencyProblem {
    /// Its snapshot from before the message is no longer kept.
    NoSnapshot,
    /// It has answered someone else since: rolling it back would cascade.
    AnsweredOthers,
    /// It has sent a state-changing message of its own since: rolling it back would cascade.
    SentStateChanging,
}

impl fmt::Display for DependencyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoSnapshot => "its snapshot from before the message is gone",
            Self::AnsweredOthers => "it has answered others since",
            Self::SentStateChanging => "it has sent state-changing messages since",
        })
    }
}

/// A state-changing send that a rollback cannot undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unrecoverable {
    /// The peer holding the effect.
    pub peer: ServerRef,
    /// The message's label.
    pub label: u32,
    /// Its name, if declared.
    pub name: Option<String>,
    /// Why it cannot be rolled back.
    pub problem: DependencyProblem,
}

/// The peers to roll back so that no peer holds the effect of a state-changing message the
/// crashed server sent since its boundary: for each peer, its snapshot from before the first such
/// message. Messages to the crashed server itself are ignored (it is restored anyway).
pub fn consistent_cut(crash: &Crash<'_>) -> Result<Vec<PeerRollback>, Unrecoverable> {
    let sent = &crash.window.sent;
    let mut cut: Vec<PeerRollback> = Vec::new();
    for (i, m) in sent.iter().enumerate() {
        if !m.state_changing || m.to == crash.fault.server || cut.iter().any(|p| p.peer == m.to) {
            continue;
        }
        let fail = |msg: &SentMessage, problem| Unrecoverable {
            peer: msg.to.clone(),
            label: msg.label,
            name: msg.name.clone(),
            problem,
        };
        let to_snapshot = m
            .peer_snapshot
            .ok_or_else(|| fail(m, DependencyProblem::NoSnapshot))?;
        for later in sent[i..].iter().filter(|l| l.to == m.to) {
            if later.peer_answered_others {
                return Err(fail(later, DependencyProblem::AnsweredOthers));
            }
            if later.peer_sent_state_changing {
                return Err(fail(later, DependencyProblem::SentStateChanging));
            }
        }
        cut.push(PeerRollback {
            peer: m.to.clone(),
            to_snapshot,
        });
    }
    Ok(cut)
}

/// Wraps any policy: when the server sent state-changing messages since its boundary, whatever
/// `inner` decides for the server is extended to roll those peers back too
/// ([`Action::RollbackPeers`]), or, when that is impossible, replaced by the fallback
/// (fail-stop by default). Fail-stops pass through.
#[derive(Debug)]
pub struct DependencyGuard {
    inner: Box<dyn RecoveryPolicy>,
    fallback: UnsafeFallback,
}

impl DependencyGuard {
    /// Guards `inner`, stopping the VM when a rollback cannot be made consistent.
    pub fn new(inner: impl RecoveryPolicy + 'static) -> Self {
        Self::with_fallback(inner, UnsafeFallback::FailStop)
    }

    /// Guards `inner`, deciding `fallback` when a rollback cannot be made consistent.
    pub fn with_fallback(inner: impl RecoveryPolicy + 'static, fallback: UnsafeFallback) -> Self {
        Self {
            inner: Box::new(inner),
            fallback,
        }
    }
}

impl RecoveryPolicy for DependencyGuard {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        let d = self.inner.decide(crash);
        let Some(own) = d.action.own() else {
            return d;
        };
        match consistent_cut(crash) {
            Ok(cut) if cut.is_empty() => d,
            Ok(cut) => {
                let mut peers = d.action.peers().to_vec();
                for p in cut {
                    match peers.iter_mut().find(|q| q.peer == p.peer) {
                        Some(q) => q.to_snapshot = q.to_snapshot.min(p.to_snapshot),
                        None => peers.push(p),
                    }
                }
                let names: Vec<String> = peers
                    .iter()
                    .map(|p| format!("{}@{}", p.peer, p.to_snapshot))
                    .collect();
                let why = format!(
                    "state-changing sends since the boundary: roll back {} too",
                    names.join(", ")
                );
                let delay = d.delay;
                let mut d = d.via("dependency-guard", why);
                d.action = Action::RollbackPeers { own, peers };
                d.delay = delay;
                d
            }
            Err(u) => {
                let delay = d.delay;
                let action = self.fallback.action();
                let mut d = Decision::new(
                    action.clone(),
                    "dependency-guard",
                    format!(
                        "{} holds the effect of state-changing request {} from {} and cannot \
                         be rolled back ({}): {}",
                        u.peer,
                        request_text(u.label, u.name.as_deref()),
                        crash.fault.server,
                        u.problem,
                        action.name()
                    ),
                );
                if action != Action::FailStop {
                    d.delay = delay;
                }
                d
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::ServerAction;
    use crate::context::{History, RecoveryWindow};
    use crate::policy::tests::fault;
    use crate::policy::{FailStop, Replay, Rollback};

    fn send(to: &str, state_changing: bool, snap: Option<u64>) -> SentMessage {
        SentMessage {
            to: ServerRef::new(if to == "kv" { 2 } else { 3 }, to),
            label: 1,
            name: None,
            state_changing,
            peer_snapshot: snap,
            peer_answered_others: false,
            peer_sent_state_changing: false,
        }
    }

    fn decide(p: &dyn RecoveryPolicy, sent: Vec<SentMessage>) -> Decision {
        let mut f = fault();
        f.server = ServerRef::new(1, "fs");
        let h = History::new();
        let w = RecoveryWindow {
            boundary: Some(5),
            sent,
        };
        p.decide(&Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight: None,
            now: f.at,
        })
    }

    #[test]
    fn no_state_changing_sends_pass_through() {
        let d = decide(
            &DependencyGuard::new(Rollback),
            vec![send("kv", false, None)],
        );
        assert_eq!(d.action, Action::Rollback);
        assert_eq!(d.policy, "rollback");
    }

    #[test]
    fn rolls_back_each_peer_to_before_its_first_state_changing_message() {
        let d = decide(
            &DependencyGuard::new(Replay::default()),
            vec![
                send("kv", false, Some(3)),
                send("kv", true, Some(4)),
                send("bank", true, Some(9)),
                send("kv", true, Some(6)),
            ],
        );
        assert_eq!(
            d.action,
            Action::RollbackPeers {
                own: ServerAction::Rollback,
                peers: vec![
                    PeerRollback {
                        peer: ServerRef::new(2, "kv"),
                        to_snapshot: 4
                    },
                    PeerRollback {
                        peer: ServerRef::new(3, "bank"),
                        to_snapshot: 9
                    },
                ],
            }
        );
        assert_eq!(d.policy, "dependency-guard>replay");
    }

    #[test]
    fn escalates_on_each_problem() {
        let mut answered = send("kv", true, Some(4));
        answered.peer_answered_others = true;
        let mut forwarded = send("kv", true, Some(4));
        forwarded.peer_sent_state_changing = true;
        for (sent, why) in [
            (vec![send("kv", true, None)], "snapshot"),
            (vec![answered], "answered others"),
            (
                vec![send("kv", true, Some(4)), forwarded],
                "sent state-changing",
            ),
        ] {
            let d = decide(&DependencyGuard::new(Rollback), sent);
            assert_eq!(d.action, Action::FailStop);
            assert!(d.reason.contains(why), "{}", d.reason);
            assert!(d.reason.contains("kv"), "{}", d.reason);
        }
        let d = decide(
            &DependencyGuard::with_fallback(Rollback, UnsafeFallback::RestartFresh),
            vec![send("kv", true, None)],
        );
        assert_eq!(d.action, Action::RestartFresh);
        let named = SentMessage {
            name: Some("PUT".into()),
            ..send("kv", true, None)
        };
        assert_eq!(
            decide(&DependencyGuard::new(Rollback), vec![named]).reason,
            "kv holds the effect of state-changing request PUT (label 1) from fs and cannot be \
             rolled back (its snapshot from before the message is gone): fail-stop"
        );
    }

    /// A backoff's delay stays on a fallback that restarts the server, and a fail-stop carries
    /// none; so does a cut.
    #[test]
    fn a_fallback_keeps_the_backoff_only_for_a_restart() {
        use crate::compose::Backoff;
        use std::time::Duration;
        let backoff = || {
            Backoff::new(
                Duration::from_millis(250),
                Duration::from_secs(1),
                Duration::from_secs(60),
                Rollback,
            )
        };
        let unsafe_send = || vec![send("kv", true, None)];
        let d = decide(
            &DependencyGuard::with_fallback(backoff(), UnsafeFallback::RestartFresh),
            unsafe_send(),
        );
        assert_eq!(
            (d.action, d.delay),
            (Action::RestartFresh, Some(Duration::from_millis(250)))
        );
        let d = decide(
            &DependencyGuard::with_fallback(backoff(), UnsafeFallback::FailStop),
            unsafe_send(),
        );
        assert_eq!((d.action, d.delay), (Action::FailStop, None));
        let d = decide(
            &DependencyGuard::new(backoff()),
            vec![send("kv", true, Some(4))],
        );
        assert_eq!(d.delay, Some(Duration::from_millis(250)));
        assert!(matches!(d.action, Action::RollbackPeers { .. }));
    }

    #[test]
    fn fail_stop_passes_through_and_self_sends_are_ignored() {
        let d = decide(
            &DependencyGuard::new(FailStop),
            vec![send("kv", true, None)],
        );
        assert_eq!(d.policy, "fail-stop");
        let mut own = send("fs", true, None);
        own.to = ServerRef::new(1, "fs");
        let d = decide(&DependencyGuard::new(Rollback), vec![own]);
        assert_eq!(d.action, Action::Rollback);
    }
}
