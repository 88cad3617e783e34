//! What a policy decides: an [`Action`] inside a [`Decision`].

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::fault::ServerRef;

/// What happens to the crashed server itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerAction {
    /// Restore its pages to its last boundary; the in-flight request gets a "peer restarted"
    /// error reply (its client's typed API retries idempotent requests).
    Rollback,
    /// Restore its pages to its last boundary and deliver the in-flight request again.
    Replay,
    /// Restore it from its initial image: its state is declared lost, and the in-flight request
    /// (and callers queued on it) get the distinct "state lost" error.
    RestartFresh,
}

impl ServerAction {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Replay => "replay",
            Self::RestartFresh => "restart-fresh",
        }
    }
}

/// A peer to roll back together with the crashed server (one part of a consistent cut).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PeerRollback {
    /// The peer.
    pub peer: ServerRef,
    /// Sequence number of the peer's snapshot to restore: from just before the first
    /// state-changing message the crashed server sent it since its boundary.
    pub to_snapshot: u64,
}

/// A recovery action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// [`ServerAction::Rollback`]: roll back, error-reply "peer restarted".
    Rollback,
    /// [`ServerAction::Replay`]: roll back, replay the in-flight request.
    Replay,
    /// [`ServerAction::RestartFresh`]: restart from the initial image, "state lost".
    RestartFresh,
    /// Do `own` to the crashed server and roll each peer back to the given snapshot, first the
    /// peers, then the server; each rolled-back peer loses the in-flight message from the
    /// crashed server (its late reply is dropped by generation).
    RollbackPeers {
        /// What happens to the crashed server.
        own: ServerAction,
        /// The peers and their snapshots, one entry per peer.
        peers: Vec<PeerRollback>,
    },
    /// Stop the VM with the fail-stop exit status; the decision's reason says why.
    FailStop,
}

/// An [`Action`] without its data, for histories and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// [`Action::Rollback`].
    Rollback,
    /// [`Action::Replay`].
    Replay,
    /// [`Action::RestartFresh`].
    RestartFresh,
    /// [`Action::RollbackPeers`].
    RollbackPeers,
    /// [`Action::FailStop`].
    FailStop,
}

impl ActionKind {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Replay => "replay",
            Self::RestartFresh => "restart-fresh",
            Self::RollbackPeers => "rollback-peers",
            Self::FailStop => "fail-stop",
        }
    }
}

impl From<ServerAction> for Action {
    fn from(own: ServerAction) -> Self {
        match own {
            ServerAction::Rollback => Self::Rollback,
            ServerAction::Replay => Self::Replay,
            ServerAction::RestartFresh => Self::RestartFresh,
        }
    }
}

impl Action {
    /// Its kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Self::Rollback => ActionKind::Rollback,
            Self::Replay => ActionKind::Replay,
            Self::RestartFresh => ActionKind::RestartFresh,
            Self::RollbackPeers { .. } => ActionKind::RollbackPeers,
            Self::FailStop => ActionKind::FailStop,
        }
    }

    /// Lower-case name, as in reports.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// What happens to the crashed server; `None` for a fail-stop.
    pub fn own(&self) -> Option<ServerAction> {
        match self {
            Self::Rollback => Some(ServerAction::Rollback),
            Self::Replay => Some(ServerAction::Replay),
            Self::RestartFresh => Some(ServerAction::RestartFresh),
            Self::RollbackPeers { own, .. } => Some(*own),
            Self::FailStop => None,
        }
    }

    /// The peers rolled back too (empty unless [`Action::RollbackPeers`]).
    pub fn peers(&self) -> &[PeerRollback] {
        match self {
            Self::RollbackPeers { peers, .. } => peers,
            _ => &[],
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Self::RollbackPeers { own, peers } = self {
            write!(f, "({}", own.name())?;
            for p in peers {
                write!(f, ", {}@{}", p.peer, p.to_snapshot)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A policy's answer: the action, who decided it, why, and how long to wait before restarting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// The policy that decided, with the wrappers that changed the outcome in front:
    /// `rollback`, `threshold>fail-stop`, `dependency-guard>replay`.
    pub policy: String,
    /// Why, in one line.
    pub reason: String,
    /// Wait this long before making the server runnable again (backoff).
    pub delay: Option<Duration>,
}

impl Decision {
    /// A decision without delay; `reason` is folded onto one line.
    pub fn new(action: Action, policy: impl Into<String>, reason: impl AsRef<str>) -> Self {
        Self {
            action,
            policy: policy.into(),
            reason: one_line(reason.as_ref()),
            delay: None,
        }
    }

    /// The same decision, waiting `delay` first.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// The decision as reached through wrapper `by`, which explains itself with `why`.
    pub(crate) fn via(mut self, by: &str, why: impl fmt::Display) -> Self {
        self.policy = format!("{by}>{}", self.policy);
        self.reason = one_line(&format!("{why}; {}", self.reason));
        self
    }
}

/// `text` as one line that cannot act on a terminal: every run of whitespace (line breaks
/// included) becomes one space, and every other control character and bidirectional
/// formatting character (which can make a line read differently from what it holds) is
/// escaped as `\u{..}`.
pub(crate) fn one_line(text: &str) -> String {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !line.is_empty() {
            line.push(' ');
        }
        for c in word.chars() {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                let _ = write!(line, "\\u{{{:x}}}", u32::from(c));
            } else {
                line.push(c);
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_and_peers() {
        let a = Action::RollbackPeers {
            own: ServerAction::Replay,
            peers: vec![PeerRollback {
                peer: ServerRef::new(1, "kv"),
                to_snapshot: 41,
            }],
        };
        assert_eq!(a.own(), Some(ServerAction::Replay));
        assert_eq!(a.peers().len(), 1);
        assert_eq!(a.to_string(), "rollback-peers(replay, kv@41)");
        assert_eq!(Action::FailStop.own(), None);
        assert!(Action::Rollback.peers().is_empty());
        for own in [
            ServerAction::Rollback,
            ServerAction::Replay,
            ServerAction::RestartFresh,
        ] {
            assert_eq!(Action::from(own).own(), Some(own));
            assert_eq!(Action::from(own).name(), own.name());
        }
    }

    #[test]
    fn serializes_tagged() {
        let a = Action::RollbackPeers {
            own: ServerAction::Rollback,
            peers: vec![PeerRollback {
                peer: ServerRef::new(1, "kv"),
                to_snapshot: 7,
            }],
        };
        assert_eq!(
            serde_json::to_string(&a).expect("serializes"),
            r#"{"kind":"rollback-peers","own":"rollback","peers":[{"peer":"kv","to_snapshot":7}]}"#
        );
        assert_eq!(
            serde_json::to_string(&Action::FailStop).expect("serializes"),
            r#"{"kind":"fail-stop"}"#
        );
    }

    #[test]
    fn reasons_are_one_line() {
        let d = Decision::new(Action::Rollback, "rollback", "a\nb\r\n  c").via("x", "why\nnot");
        assert_eq!(d.reason, "why not; a b c");
        assert_eq!(d.policy, "x>rollback");
        let d = Decision::new(Action::Rollback, "rollback", "\x1b[2J\u{202e}x\u{0}");
        assert_eq!(d.reason, "\\u{1b}[2J\\u{202e}x\\u{0}");
    }
}
