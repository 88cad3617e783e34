//! The [`RecoveryPolicy`] trait and the leaf policies: rollback, replay, restart fresh, fail-stop.

use std::fmt;

use crate::action::{Action, Decision, ServerAction};
use crate::context::{Crash, request_text};

/// Decides what to do about one crash.
///
/// Pure: the same [`Crash`] gives the same [`Decision`]. Everything that changes between crashes
/// (history, window, replay count) is in the input, kept by the recovery engine.
pub trait RecoveryPolicy: Send + fmt::Debug {
    /// The decision for `crash`.
    fn decide(&self, crash: &Crash<'_>) -> Decision;
}

impl<P: RecoveryPolicy + ?Sized> RecoveryPolicy for Box<P> {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        (**self).decide(crash)
    }
}

/// Before its first boundary a server has no snapshot to roll back to: restart it from its image
/// (it has no state to lose yet).
fn no_boundary(crash: &Crash<'_>, policy: &str) -> Option<Decision> {
    crash.window.boundary.is_none().then(|| {
        Decision::new(
            Action::RestartFresh,
            policy,
            "crashed before its first boundary: no snapshot to roll back to",
        )
    })
}

/// Roll back to the last boundary and answer the in-flight request "peer restarted".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollback;

impl RecoveryPolicy for Rollback {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        no_boundary(crash, "rollback").unwrap_or_else(|| {
            Decision::new(
                Action::Rollback,
                "rollback",
                "roll back to the last boundary; error reply \"peer restarted\"",
            )
        })
    }
}

/// Roll back and replay the in-flight request when its type is idempotent and it was not
/// replayed before; an error reply when it is not idempotent; the `again` policy when the
/// server crashed on the replay itself. A message is never replayed twice.
#[derive(Debug)]
pub struct Replay {
    again: Box<dyn RecoveryPolicy>,
}

impl Replay {
    /// Replays, deciding with `again` when a replayed message crashes the server again.
    pub fn new(again: impl RecoveryPolicy + 'static) -> Self {
        Self {
            again: Box::new(again),
        }
    }
}

impl Default for Replay {
    /// A message that crashes the server again on its replay gets an error reply.
    fn default() -> Self {
        Self::new(Rollback)
    }
}

impl RecoveryPolicy for Replay {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        if let Some(d) = no_boundary(crash, "replay") {
            return d;
        }
        let Some(msg) = crash.in_flight else {
            return Decision::new(Action::Rollback, "replay", "no request in flight to replay");
        };
        if msg.replays > 0 {
            let mut d = self.again.decide(crash).via(
                "replay",
                format_args!(
                    "request {} crashed the server again after {} replay(s)",
                    request_text(msg.label, msg.name.as_deref()),
                    msg.replays
                ),
            );
            // Whatever `again` is, this message is not replayed a second time.
            d.action = match d.action {
                Action::Replay => Action::Rollback,
                Action::RollbackPeers {
                    own: ServerAction::Replay,
                    peers,
                } => Action::RollbackPeers {
                    own: ServerAction::Rollback,
                    peers,
                },
                other => other,
            };
            return d;
        }
        if !msg.idempotent {
            return Decision::new(
                Action::Rollback,
                "replay",
                format!(
                    "request {} is not idempotent: error reply \"peer restarted\"",
                    request_text(msg.label, msg.name.as_deref())
                ),
            );
        }
        Decision::new(
            Action::Replay,
            "replay",
            format!(
                "roll back and replay idempotent request {}",
                request_text(msg.label, msg.name.as_deref())
            ),
        )
    }
}

/// Restart from the initial image: state declared lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartFresh;

impl RecoveryPolicy for RestartFresh {
    fn decide(&self, _crash: &Crash<'_>) -> Decision {
        Decision::new(
            Action::RestartFresh,
            "restart",
            "restart from the initial image; error reply \"state lost\"",
        )
    }
}

/// Stop the VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailStop;

impl RecoveryPolicy for FailStop {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        Decision::new(
            Action::FailStop,
            "fail-stop",
            format!("server {} crashed: stop the VM", crash.fault.server),
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::context::{History, InFlight, RecoveryWindow};
    use crate::fault::{Cause, Fault, Micros, ServerRef};

    pub(crate) fn fault() -> Fault {
        Fault {
            server: ServerRef::new(2, "kv"),
            generation: 1,
            cause: Cause::PageFault { addr: 0 },
            rip: 0x40_1000,
            messages: 500,
            at: Micros(1_000_000),
        }
    }

    pub(crate) fn window() -> RecoveryWindow {
        RecoveryWindow {
            boundary: Some(10),
            sent: Vec::new(),
        }
    }

    pub(crate) fn request(idempotent: bool, replays: u32) -> InFlight {
        InFlight {
            label: 3,
            name: None,
            idempotent,
            state_changing: true,
            replays,
        }
    }

    pub(crate) fn decide(p: &dyn RecoveryPolicy, in_flight: Option<&InFlight>) -> Decision {
        let (f, h, w) = (fault(), History::new(), window());
        p.decide(&Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight,
            now: f.at,
        })
    }

    #[test]
    fn leaves_decide_their_action() {
        let r = request(true, 0);
        assert_eq!(decide(&Rollback, Some(&r)).action, Action::Rollback);
        assert_eq!(decide(&RestartFresh, Some(&r)).action, Action::RestartFresh);
        let stop = decide(&FailStop, Some(&r));
        assert_eq!(stop.action, Action::FailStop);
        assert!(stop.reason.contains("kv"), "{}", stop.reason);
    }

    #[test]
    fn replay_only_idempotent_requests_once() {
        let p = Replay::default();
        assert_eq!(decide(&p, Some(&request(true, 0))).action, Action::Replay);
        let not_idem = decide(&p, Some(&request(false, 0)));
        assert_eq!(not_idem.action, Action::Rollback);
        assert!(not_idem.reason.contains("not idempotent"));
        let again = decide(&p, Some(&request(true, 1)));
        assert_eq!(again.action, Action::Rollback);
        assert_eq!(again.policy, "replay>rollback");
        assert_eq!(decide(&p, None).action, Action::Rollback);
    }

    /// The texts name a request by its declared name where it has one, by label where not.
    #[test]
    fn reasons_name_the_request_as_declared() {
        let p = Replay::default();
        let named = |idempotent, replays| InFlight {
            name: Some("PUT".into()),
            ..request(idempotent, replays)
        };
        let cases = [
            (
                named(false, 0),
                "request PUT (label 3) is not idempotent: error reply \"peer restarted\"",
            ),
            (
                named(true, 0),
                "roll back and replay idempotent request PUT (label 3)",
            ),
            (
                request(false, 0),
                "request label 3 is not idempotent: error reply \"peer restarted\"",
            ),
            (
                request(true, 0),
                "roll back and replay idempotent request label 3",
            ),
        ];
        for (r, reason) in cases {
            assert_eq!(decide(&p, Some(&r)).reason, reason);
        }
        let again = decide(&p, Some(&named(true, 1)));
        assert!(
            again
                .reason
                .starts_with("request PUT (label 3) crashed the server again after 1 replay(s)"),
            "{}",
            again.reason
        );
    }

    #[test]
    fn replay_escalates_as_configured_and_never_twice() {
        let p = Replay::new(RestartFresh);
        assert_eq!(
            decide(&p, Some(&request(true, 1))).action,
            Action::RestartFresh
        );
        let p = Replay::new(Replay::default());
        assert_eq!(decide(&p, Some(&request(true, 1))).action, Action::Rollback);
    }

    #[test]
    fn no_boundary_restarts_fresh() {
        let (f, h) = (fault(), History::new());
        let w = RecoveryWindow::default();
        let r = request(true, 0);
        let crash = Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight: Some(&r),
            now: f.at,
        };
        assert_eq!(Rollback.decide(&crash).action, Action::RestartFresh);
        assert_eq!(
            Replay::default().decide(&crash).action,
            Action::RestartFresh
        );
    }
}
