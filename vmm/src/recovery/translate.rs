//! Translating what the guest reported into the facts a policy decides on: pure functions over
//! the fault record, the crash context and the recovery window the kernel wrote, and over what
//! the engine knows of the other tasks ([`Peer`]). No guest memory is read here.
//!
//! Everything the guest wrote is taken at its most cautious where the engine cannot vouch for
//! it: a message to a task index it does not know, or to an app, or past the window's capacity,
//! is state-changing with no snapshot to go back to.

use crate::devices::monitor::FaultReport;
use abi::fault::FaultCause;
use abi::monitor::{CrashContext, FaultRecord, SentRecord, SentWindow, WINDOW_MAX};
use policies::{Cause, InFlight, Micros, RecoveryWindow, SentMessage, ServerRef};

/// What translating needs to know of a task the crashed server sent messages to.
pub trait Peer {
    /// Its name.
    fn name(&self) -> &str;
    /// True for a server the engine snapshots (not an app).
    fn is_server(&self) -> bool;
    /// True when its request `label` may change its state (by its declaration, as checked).
    fn changes_state(&self, label: u64) -> bool;
    /// True when its request `label` is declared idempotent.
    fn idempotent(&self, label: u64) -> bool;
    /// The declared name of its request `label`, if any.
    fn request_name(&self, label: u64) -> Option<&str>;
    /// True when it still keeps the snapshot numbered `version`.
    fn keeps(&self, version: u64) -> bool;
}

/// The cause of `record`, in the policies' terms.
pub fn cause(record: &FaultRecord) -> Cause {
    match FaultCause::from_number(record.cause) {
        Some(FaultCause::PageFault) => Cause::PageFault { addr: record.addr },
        Some(FaultCause::StackOverflow) => Cause::StackOverflow,
        Some(FaultCause::InvalidOpcode) => Cause::IllegalInsn,
        Some(FaultCause::DivideError) => Cause::DivZero,
        Some(FaultCause::GeneralProtection) => Cause::GeneralProtection,
        Some(FaultCause::FloatingPoint) => Cause::FloatingPoint,
        Some(FaultCause::Panic) => Cause::Panic,
        Some(FaultCause::BudgetOverrun) => Cause::Hang,
        Some(FaultCause::Corruption) => Cause::CorruptState,
        Some(FaultCause::OtherException) => Cause::Exception(record.vector),
        None => Cause::Unknown(record.cause),
    }
}

/// The fault of server `name` as a policy sees it, heard of at `now`.
pub fn fault(fault: &FaultReport, name: &str, now: Micros) -> policies::Fault {
    let r = &fault.record;
    policies::Fault {
        server: ServerRef::new(r.task, name),
        generation: r.generation,
        cause: cause(r),
        rip: r.rip,
        messages: r.messages,
        at: now,
    }
}

/// The request the crashed server (`server`) was handling, if a caller waits for it, with what
/// its declaration says.
pub fn in_flight(context: &CrashContext, server: &impl Peer) -> Option<InFlight> {
    context.caller().map(|_| {
        let label = context.label;
        InFlight {
            label: u32::try_from(label).unwrap_or(u32::MAX),
            name: server.request_name(label).map(str::to_owned),
            idempotent: server.idempotent(label),
            state_changing: server.changes_state(label),
            replays: u32::from(context.flags & CrashContext::REPLAY != 0),
        }
    })
}

/// A message the VMM cannot vouch for, taken at its most cautious: state-changing, sent to a
/// receiver with no snapshot to go back to.
fn unrecoverable(to: ServerRef, label: u32) -> SentMessage {
    SentMessage {
        to,
        label,
        name: None,
        state_changing: true,
        peer_snapshot: None,
        peer_answered_others: true,
        peer_sent_state_changing: false,
    }
}

/// The crashed server's recovery window as the policies see it: the kernel's record of what it
/// sent since its boundary (`boundary`: boundaries passed, 0 for none), each message classified
/// by the receiver's declarations and matched with the receiver's kept snapshots (`peers`,
/// indexed by task).
pub fn window<P: Peer>(peers: &[P], boundary: u64, sent: &SentWindow) -> RecoveryWindow {
    let mut messages: Vec<SentMessage> = sent
        .listed()
        .iter()
        .map(|m| {
            let label = u32::try_from(m.label).unwrap_or(u32::MAX);
            let peer = usize::try_from(m.to)
                .ok()
                .and_then(|p| peers.get(p))
                .filter(|p| m.flags & SentRecord::PEER_SERVER != 0 && p.is_server());
            let Some(peer) = peer else {
                return unrecoverable(ServerRef::new(m.to, format!("#{}", m.to)), label);
            };
            SentMessage {
                to: ServerRef::new(m.to, peer.name()),
                label,
                name: peer.request_name(m.label).map(str::to_owned),
                state_changing: peer.changes_state(m.label),
                peer_snapshot: peer.keeps(m.peer_boundary).then_some(m.peer_boundary),
                // The kernel's "quiet" covers both: since the message the peer handled
                // nothing but this server's messages and sent nothing of its own.
                peer_answered_others: !m.peer_quiet(),
                peer_sent_state_changing: false,
            }
        })
        .collect();
    if sent.overflowed() {
        let unlisted = sent.count.saturating_sub(WINDOW_MAX as u32);
        messages.push(unrecoverable(
            ServerRef::new(u32::MAX, format!("{unlisted} unlisted message(s)")),
            0,
        ));
    }
    RecoveryWindow {
        boundary: (boundary > 0).then_some(boundary),
        sent: messages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer as a test states it.
    struct P {
        name: &'static str,
        server: bool,
        changing: &'static [u64],
        idempotent: &'static [u64],
        kept: &'static [u64],
    }

    impl Peer for P {
        fn name(&self) -> &str {
            self.name
        }
        fn is_server(&self) -> bool {
            self.server
        }
        fn changes_state(&self, label: u64) -> bool {
            self.changing.contains(&label)
        }
        fn idempotent(&self, label: u64) -> bool {
            self.idempotent.contains(&label)
        }
        fn request_name(&self, label: u64) -> Option<&str> {
            (label == 1).then_some("PUT")
        }
        fn keeps(&self, version: u64) -> bool {
            self.kept.contains(&version)
        }
    }

    const PEERS: [P; 3] = [
        P {
            name: "kv",
            server: true,
            changing: &[1],
            idempotent: &[5],
            kept: &[3, 4],
        },
        P {
            name: "fs",
            server: true,
            changing: &[],
            idempotent: &[],
            kept: &[9],
        },
        P {
            name: "client",
            server: false,
            changing: &[1],
            idempotent: &[],
            kept: &[0],
        },
    ];

    fn sent(list: &[(u32, u32, u64, u64)], count: u32) -> SentWindow {
        let mut w = SentWindow {
            count,
            ..SentWindow::default()
        };
        for (slot, &(to, flags, label, peer_boundary)) in w.sent.iter_mut().zip(list) {
            *slot = SentRecord {
                to,
                flags,
                label,
                peer_boundary,
            };
        }
        w
    }

    #[test]
    fn messages_are_classified_by_the_receiver_and_its_kept_snapshots() {
        let server = SentRecord::PEER_SERVER;
        let quiet = SentRecord::PEER_SERVER | SentRecord::PEER_QUIET;
        let w = window(
            &PEERS,
            7,
            &sent(&[(0, quiet, 1, 4), (1, server, 1, 8), (0, quiet, 2, 5)], 3),
        );
        assert_eq!(w.boundary, Some(7));
        let m = &w.sent;
        assert_eq!(m.len(), 3);
        assert_eq!(
            (
                m[0].to.name.as_str(),
                m[0].state_changing,
                m[0].peer_snapshot
            ),
            ("kv", true, Some(4))
        );
        assert!(!m[0].peer_answered_others, "quiet");
        assert_eq!(
            (
                m[1].state_changing,
                m[1].peer_snapshot,
                m[1].peer_answered_others
            ),
            (false, None, true),
            "fs's label 1 is read-only; snapshot 8 is gone; not quiet"
        );
        assert_eq!((m[2].state_changing, m[2].peer_snapshot), (false, None));
    }

    #[test]
    fn what_the_engine_cannot_vouch_for_is_taken_at_its_worst() {
        let server = SentRecord::PEER_SERVER | SentRecord::PEER_QUIET;
        // An app, an index nobody has, a task the kernel did not flag as a server, and more
        // messages than the window lists (it lists its first WINDOW_MAX: these three, then
        // records left zero, which name task 0 without the server flag).
        let w = window(
            &PEERS,
            0,
            &sent(&[(2, server, 1, 0), (77, server, 1, 3), (0, 0, 2, 3)], 12),
        );
        assert_eq!(w.boundary, None, "no boundary yet");
        assert_eq!(w.sent.len(), WINDOW_MAX + 1);
        for m in &w.sent {
            assert!(m.state_changing && m.peer_snapshot.is_none() && m.peer_answered_others);
        }
        assert_eq!(w.sent[1].to.name, "#77");
        assert_eq!(
            w.sent[WINDOW_MAX].to.name,
            format!("{} unlisted message(s)", 12 - WINDOW_MAX)
        );
    }

    #[test]
    fn the_request_in_flight_carries_its_declaration_and_replays() {
        let mut c = CrashContext {
            caller: abi::monitor::NO_CALLER,
            label: 5,
            ..CrashContext::default()
        };
        let kv = &PEERS[0];
        assert_eq!(in_flight(&c, kv), None, "nobody waits");
        c.caller = 3;
        c.flags = CrashContext::REPLAY;
        let m = in_flight(&c, kv).expect("in flight");
        assert_eq!(
            (m.label, m.name, m.idempotent, m.state_changing, m.replays),
            (5, None, true, false, 1)
        );
        c.label = 1;
        c.flags = 0;
        let m = in_flight(&c, kv).expect("in flight");
        assert_eq!(
            (
                m.label,
                m.name.as_deref(),
                m.idempotent,
                m.state_changing,
                m.replays
            ),
            (1, Some("PUT"), false, true, 0)
        );
        c.label = u64::MAX;
        assert_eq!(in_flight(&c, kv).map(|m| m.label), Some(u32::MAX));
    }

    #[test]
    fn causes_keep_their_addresses_and_vectors() {
        let r = |cause, vector, addr| FaultRecord {
            cause: cause as u32,
            vector,
            addr,
            ..FaultRecord::ZERO
        };
        assert_eq!(
            cause(&r(FaultCause::PageFault, 14, 8)),
            Cause::PageFault { addr: 8 }
        );
        assert_eq!(
            cause(&r(FaultCause::OtherException, 17, 0)),
            Cause::Exception(17)
        );
        let unknown = FaultRecord {
            cause: 99,
            ..FaultRecord::ZERO
        };
        assert_eq!(cause(&unknown), Cause::Unknown(99));
    }

    /// One name per fault kind: `--fault`'s kinds, the cause the kernel records for each crash
    /// kind (as abi and the policies name it), the `--help` text, and the tables of
    /// docs/recovery.md (crash kinds) and docs/fault-injection.md (the VMM's kinds).
    #[test]
    fn one_name_per_fault_kind_everywhere() {
        use abi::fault::FaultKind;
        use clap::CommandFactory;
        let kinds: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
        for k in FaultKind::CRASHES {
            let record = FaultRecord {
                cause: k.cause().expect("a crash kind") as u32,
                ..FaultRecord::ZERO
            };
            assert_eq!(record.cause_name(), Some(k.name()), "abi, {k:?}");
            assert_eq!(cause(&record).name(), k.name(), "policies, {k:?}");
        }
        let help = crate::cli::Cli::command()
            .find_subcommand_mut("run")
            .expect("run")
            .render_long_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            help.contains(&kinds.join(", ")),
            "--help lists {kinds:?}: {help}"
        );
        // The crash kinds in docs/recovery.md, the VMM's in docs/fault-injection.md.
        let table = |doc: &'static str, marker: &str| -> Vec<&'static str> {
            doc.split(marker)
                .nth(1)
                .and_then(|rest| rest.split("\n\n").next())
                .unwrap_or_else(|| panic!("the {marker} table"))
                .lines()
                .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
                .collect()
        };
        let mut documented = table(
            include_str!("../../../docs/recovery.md"),
            "<!-- fault-kinds:",
        );
        documented.extend(table(
            include_str!("../../../docs/fault-injection.md"),
            "<!-- fault-kinds-outside:",
        ));
        let (mut a, mut b) = (kinds.clone(), documented.clone());
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(
            a, b,
            "docs/recovery.md and docs/fault-injection.md list {documented:?}"
        );
    }
}
