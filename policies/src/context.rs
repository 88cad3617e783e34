//! What else a policy decides from: the server's crash history, the request it was handling and
//! its recovery window (what it sent since its last boundary).

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use crate::action::{ActionKind, Decision};
use crate::fault::{Cause, Fault, Micros, ServerRef};

/// Crash limits above this are clamped: [`History`] keeps enough crashes to count this many.
pub const MAX_CRASH_LIMIT: u32 = 100_000;
/// Windows longer than this are clamped: [`History`] forgets crashes older than this.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// One past crash of a server and what was done about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PastCrash {
    /// When it crashed.
    pub at: Micros,
    /// Why.
    pub cause: Cause,
    /// What the policy decided.
    pub action: ActionKind,
}

/// A server's past crashes, oldest first, in non-decreasing time.
///
/// Bounded: it keeps at most [`History::CAPACITY`] crashes and none older than [`MAX_WINDOW`]
/// before the newest, which is all any policy here can count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    crashes: VecDeque<PastCrash>,
}

impl History {
    /// Most crashes kept.
    pub const CAPACITY: usize = 1 << 17;

    /// No crashes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a crash. A time before the newest kept crash is taken as the newest's time (the
    /// clock is monotonic; this keeps the history sorted whatever the caller passes).
    pub fn record(&mut self, mut crash: PastCrash) {
        if let Some(last) = self.crashes.back() {
            crash.at = crash.at.max(last.at);
        }
        while self.crashes.len() >= Self::CAPACITY
            || self
                .crashes
                .front()
                .is_some_and(|c| !crash.at.within(c.at, MAX_WINDOW))
        {
            self.crashes.pop_front();
        }
        self.crashes.push_back(crash);
    }

    /// Appends the crash `fault` and the action `decision` took on it: what the recovery engine
    /// calls after each decision.
    pub fn record_decision(&mut self, fault: &Fault, decision: &Decision) {
        self.record(PastCrash {
            at: fault.at,
            cause: fault.cause,
            action: decision.action.kind(),
        });
    }

    /// The kept crashes, oldest first.
    pub fn crashes(&self) -> impl DoubleEndedIterator<Item = &PastCrash> + ExactSizeIterator {
        self.crashes.iter()
    }

    /// Number of kept crashes.
    pub fn len(&self) -> usize {
        self.crashes.len()
    }

    /// True before the first crash.
    pub fn is_empty(&self) -> bool {
        self.crashes.is_empty()
    }

    /// Past crashes less than `window` before `now`.
    pub fn count_within(&self, now: Micros, window: Duration) -> u32 {
        let n = self
            .crashes
            .iter()
            .rev()
            .take_while(|c| now.within(c.at, window))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// The request the server was handling when it crashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InFlight {
    /// The request's label (opcode).
    pub label: u32,
    /// Its name, as the server's request table declares it (none if undeclared).
    pub name: Option<String>,
    /// Its request type is declared idempotent: delivering it twice has the effect of once.
    pub idempotent: bool,
    /// Its request type is declared state-changing.
    pub state_changing: bool,
    /// How many times this message was already replayed after a crash.
    pub replays: u32,
}

/// A message the crashed server sent since its last boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    /// The destination.
    pub to: ServerRef,
    /// The request's label.
    pub label: u32,
    /// Its name, as the destination's request table declares it (none if undeclared).
    pub name: Option<String>,
    /// Its request type is declared state-changing.
    pub state_changing: bool,
    /// Sequence number of the destination's snapshot from its boundary just before it received
    /// this message, if that snapshot is still kept.
    pub peer_snapshot: Option<u64>,
    /// The destination has answered someone other than the crashed server since this message.
    pub peer_answered_others: bool,
    /// The destination has itself sent a state-changing message since this message.
    pub peer_sent_state_changing: bool,
}

/// A server's recovery window: its last boundary and what it sent since (OSIRIS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryWindow {
    /// Sequence number of the server's own snapshot at its last boundary; `None` before its
    /// first boundary (it crashed while initialising).
    pub boundary: Option<u64>,
    /// Messages sent since that boundary, in send order.
    pub sent: Vec<SentMessage>,
}

impl RecoveryWindow {
    /// The state-changing messages sent since the boundary.
    pub fn state_changing(&self) -> impl Iterator<Item = &SentMessage> {
        self.sent.iter().filter(|m| m.state_changing)
    }
}

/// Everything a policy decides from.
#[derive(Clone, Copy, Debug)]
pub struct Crash<'a> {
    /// The fault.
    pub fault: &'a Fault,
    /// The server's earlier crashes (not including this one).
    pub history: &'a History,
    /// What the server did since its last boundary.
    pub window: &'a RecoveryWindow,
    /// The request it was handling, if any.
    pub in_flight: Option<&'a InFlight>,
    /// Now, on the same clock as the fault's time.
    pub now: Micros,
}

impl Crash<'_> {
    /// Crashes of this server less than `window` before now, this one included.
    pub fn crashes_within(&self, window: Duration) -> u32 {
        self.history
            .count_within(self.now, window.min(MAX_WINDOW))
            .saturating_add(1)
    }
}

/// A request as the one-line texts name it: `GET (label 2)`, or `label 2` when undeclared.
pub fn request_text(label: u32, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} (label {label})"),
        None => format!("label {label}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(at: u64) -> PastCrash {
        PastCrash {
            at: Micros(at),
            cause: Cause::Panic,
            action: ActionKind::Rollback,
        }
    }

    #[test]
    fn counts_only_the_window() {
        let mut h = History::new();
        for t in [1_000_000, 2_000_000, 2_500_000, 3_000_000] {
            h.record(crash(t));
        }
        assert_eq!(h.count_within(Micros(3_000_000), Duration::from_secs(1)), 2);
        assert_eq!(
            h.count_within(Micros(3_000_000), Duration::from_secs(10)),
            4
        );
        assert_eq!(h.count_within(Micros(9_000_000), Duration::from_secs(1)), 0);
    }

    #[test]
    fn keeps_sorted_and_bounded() {
        let mut h = History::new();
        h.record(crash(5));
        h.record(crash(3));
        let times: Vec<_> = h.crashes().map(|c| c.at.0).collect();
        assert_eq!(times, [5, 5]);
        let day = u64::try_from(MAX_WINDOW.as_micros()).expect("fits");
        h.record(crash(5 + day));
        assert_eq!(
            h.len(),
            1,
            "crashes a day older than the newest are forgotten"
        );
    }

    #[test]
    fn capacity_is_enforced() {
        let mut h = History::new();
        for t in 0..(History::CAPACITY as u64 + 10) {
            h.record(crash(t));
        }
        assert_eq!(h.len(), History::CAPACITY);
        assert_eq!(h.crashes().next().map(|c| c.at.0), Some(10));
    }

    #[test]
    fn empty_until_the_first_crash() {
        let mut h = History::new();
        assert!(h.is_empty());
        h.record(crash(1));
        assert!(!h.is_empty());
    }
}
