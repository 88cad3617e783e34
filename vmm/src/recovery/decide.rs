//! Deciding: the crashed server's policy decides on the facts, and its decision becomes a plan
//! the engine can carry out, or a fail-stop. Pure: the policy call and the check of what it
//! names against the engine's servers.

use abi::monitor::VerdictAction;
use policies::{Decision, ServerAction};

/// A decision the engine can carry out: what to do with the crashed server, and which peers
/// to roll back to which of their snapshots (a consistent cut).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The crashed server's own action.
    pub own: ServerAction,
    /// (task index, snapshot number) of each peer to roll back.
    pub peers: Vec<(usize, u64)>,
}

/// The plan of `decision` about crashed task `crashed`, or `None` for a fail-stop: the
/// decision's own, or one naming a peer that is not a server this engine snapshots
/// (`is_peer(index)`), or the crashed server itself.
pub fn plan(decision: &Decision, crashed: usize, is_peer: impl Fn(usize) -> bool) -> Option<Plan> {
    let own = decision.action.own()?;
    let peers = decision
        .action
        .peers()
        .iter()
        .map(|p| {
            usize::try_from(p.peer.index)
                .ok()
                .filter(|&i| i != crashed && is_peer(i))
                .map(|i| (i, p.to_snapshot))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Plan { own, peers })
}

/// The verdict the kernel carries out for the crashed server's action.
pub fn verdict(own: ServerAction) -> VerdictAction {
    match own {
        ServerAction::Rollback => VerdictAction::Rollback,
        ServerAction::Replay => VerdictAction::Replay,
        ServerAction::RestartFresh => VerdictAction::RestartFresh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use policies::{Action, PeerRollback, ServerRef};

    fn decision(action: Action) -> Decision {
        Decision::new(action, "test", "because")
    }

    fn cut(peers: &[u32]) -> Action {
        Action::RollbackPeers {
            own: ServerAction::Replay,
            peers: peers
                .iter()
                .map(|&i| PeerRollback {
                    peer: ServerRef::new(i, "p"),
                    to_snapshot: 10 + u64::from(i),
                })
                .collect(),
        }
    }

    #[test]
    fn a_plan_names_the_own_action_and_the_peers_to_roll_back() {
        let servers = |i: usize| i < 4;
        assert_eq!(
            plan(&decision(Action::Rollback), 1, servers),
            Some(Plan {
                own: ServerAction::Rollback,
                peers: vec![]
            })
        );
        assert_eq!(
            plan(&decision(cut(&[0, 3])), 1, servers),
            Some(Plan {
                own: ServerAction::Replay,
                peers: vec![(0, 10), (3, 13)]
            })
        );
    }

    #[test]
    fn fail_stops_and_impossible_cuts_have_no_plan() {
        let servers = |i: usize| i < 4;
        assert_eq!(plan(&decision(Action::FailStop), 1, servers), None);
        assert_eq!(plan(&decision(cut(&[1])), 1, servers), None, "itself");
        assert_eq!(
            plan(&decision(cut(&[0, 9])), 1, servers),
            None,
            "a stranger"
        );
        assert_eq!(plan(&decision(cut(&[2])), 1, |i| i != 2), None, "an app");
    }

    #[test]
    fn each_action_has_its_verdict() {
        assert_eq!(verdict(ServerAction::Rollback), VerdictAction::Rollback);
        assert_eq!(verdict(ServerAction::Replay), VerdictAction::Replay);
        assert_eq!(
            verdict(ServerAction::RestartFresh),
            VerdictAction::RestartFresh
        );
    }
}
