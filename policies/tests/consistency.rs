//! The consistency scenario at the policy level: naive rollback leaves a peer holding the effect
//! of a request the crashed server forgot; the default policy rolls the peer back or stops.
//!
//! ```text
//!  client ──create "b"──► fs ──put "b" (state-changing)──► kv   kv stores "b", answers fs
//!                         fs crashes before its next boundary
//!  fs restored to its boundary knows files [a]; kv holds [a, b]
//!  invariant: every kv entry belongs to a file fs knows (fs.files == kv.entries)
//! ```

use std::collections::BTreeMap;

use policies::{
    Action, Cause, Crash, DecisionRecord, Fault, History, InFlight, Micros, PolicySet,
    RecoveryWindow, SentMessage, ServerAction, ServerRef, load,
};

const SERVERS: [&str; 4] = ["names", "kv", "fs", "bank"];

/// A server's state and the snapshots kept of it, by sequence number.
#[derive(Default)]
struct Server {
    state: Vec<&'static str>,
    snapshots: BTreeMap<u64, Vec<&'static str>>,
    last: u64,
}

impl Server {
    /// Passes a message boundary: snapshot.
    fn boundary(&mut self, seq: u64) {
        self.snapshots.insert(seq, self.state.clone());
        self.last = seq;
    }

    fn restore(&mut self, seq: u64) {
        self.state = self.snapshots[&seq].clone();
    }
}

/// fs and kv in the scenario, up to fs's crash.
struct World {
    fs: Server,
    kv: Server,
    /// kv answered another client after fs's put.
    kv_answered_others: bool,
    /// kv's snapshot from before the put was already dropped.
    kv_snapshot_gone: bool,
}

impl World {
    fn new(kv_answered_others: bool, kv_snapshot_gone: bool) -> Self {
        let mut w = World {
            fs: Server::default(),
            kv: Server::default(),
            kv_answered_others,
            kv_snapshot_gone,
        };
        w.fs.boundary(1);
        w.kv.boundary(7);
        // Acknowledged request: create "a".
        w.kv.state.push("a");
        w.kv.boundary(8);
        w.fs.state.push("a");
        w.fs.boundary(2);
        // In flight: create "b". fs sends the put, kv applies it and answers; fs crashes.
        w.kv.state.push("b");
        w.kv.boundary(9);
        if kv_snapshot_gone {
            w.kv.snapshots.remove(&8);
        }
        w
    }

    fn window(&self) -> RecoveryWindow {
        RecoveryWindow {
            boundary: Some(self.fs.last),
            sent: vec![SentMessage {
                to: ServerRef::new(1, "kv"),
                label: 1, // put
                name: None,
                state_changing: true,
                peer_snapshot: (!self.kv_snapshot_gone).then_some(8),
                peer_answered_others: self.kv_answered_others,
                peer_sent_state_changing: false,
            }],
        }
    }

    /// Asks fs's policy in `set` and carries the decision out. `None`: the VM stopped.
    fn recover(&mut self, set: &PolicySet) -> Option<ServerAction> {
        let fault = Fault {
            server: ServerRef::new(2, "fs"),
            generation: 1,
            cause: Cause::PageFault { addr: 0 },
            rip: 0x40_2000,
            messages: 2,
            at: Micros(1_000),
        };
        let (history, window) = (History::new(), self.window());
        let request = InFlight {
            label: 1, // create
            name: None,
            idempotent: true,
            state_changing: true,
            replays: 0,
        };
        let crash = Crash {
            fault: &fault,
            history: &history,
            window: &window,
            in_flight: Some(&request),
            now: fault.at,
        };
        let decision = set.decide(&crash).expect("fs is declared");
        println!("{}", DecisionRecord::new(&crash, &decision));
        for peer in decision.action.peers() {
            assert_eq!(peer.peer.name, "kv");
            self.kv.restore(peer.to_snapshot);
        }
        let own = decision.action.own()?;
        match own {
            ServerAction::Rollback => self.fs.restore(self.fs.last),
            ServerAction::Replay => {
                // Restore, then handle create "b" again: put to kv, record the file.
                self.fs.restore(self.fs.last);
                self.kv.state.push("b");
                self.fs.state.push("b");
            }
            ServerAction::RestartFresh => self.fs.state.clear(),
        }
        Some(own)
    }

    fn consistent(&self) -> bool {
        self.fs.state == self.kv.state
    }
}

fn policies(text: &str) -> PolicySet {
    load(text, &SERVERS).expect("valid config")
}

const NO_TRACKING: &str = "[recovery]\ndependency_tracking = false\n";

#[test]
fn naive_rollback_leaves_kv_holding_a_forgotten_put() {
    let mut w = World::new(false, false);
    assert_eq!(
        w.recover(&policies(NO_TRACKING)),
        Some(ServerAction::Rollback)
    );
    assert!(!w.consistent(), "fs forgot \"b\", kv still holds it");
    assert_eq!(w.fs.state, ["a"]);
    assert_eq!(w.kv.state, ["a", "b"]);
}

#[test]
fn the_default_rolls_kv_back_too() {
    let mut w = World::new(false, false);
    assert_eq!(w.recover(&policies("")), Some(ServerAction::Rollback));
    assert!(w.consistent());
    assert_eq!(
        w.kv.state,
        ["a"],
        "kv back to its snapshot from before the put"
    );
}

#[test]
fn replay_with_kv_rolled_back_applies_the_put_once() {
    let set = policies("[recovery.servers.fs]\npolicy = \"replay\"\n");
    let mut w = World::new(false, false);
    assert_eq!(w.recover(&set), Some(ServerAction::Replay));
    assert!(w.consistent());
    assert_eq!(w.kv.state, ["a", "b"]);
}

#[test]
fn the_default_stops_when_kv_cannot_be_rolled_back() {
    for (answered, gone) in [(true, false), (false, true)] {
        let mut naive = World::new(answered, gone);
        naive.recover(&policies(NO_TRACKING));
        assert!(!naive.consistent(), "without tracking the effect stays");

        let mut w = World::new(answered, gone);
        assert_eq!(
            w.recover(&policies("")),
            None,
            "fail-stop, not a silent loss"
        );
        let set = policies("[recovery.default]\non_unsafe_dependency = \"restart\"\n");
        let mut w = World::new(answered, gone);
        assert_eq!(
            w.recover(&set),
            Some(ServerAction::RestartFresh),
            "state declared lost"
        );
    }
}

#[test]
fn the_decision_names_the_peer() {
    let w = World::new(false, false);
    let set = policies("");
    let fault = Fault {
        server: ServerRef::new(2, "fs"),
        generation: 3,
        cause: Cause::Panic,
        rip: 1,
        messages: 2,
        at: Micros(5),
    };
    let (h, win) = (History::new(), w.window());
    let crash = Crash {
        fault: &fault,
        history: &h,
        window: &win,
        in_flight: None,
        now: Micros(5),
    };
    let d = set.decide(&crash).expect("declared");
    assert!(matches!(d.action, Action::RollbackPeers { .. }));
    assert_eq!(d.policy, "dependency-guard>rollback");
    assert!(d.reason.contains("kv@8"), "{}", d.reason);
}
