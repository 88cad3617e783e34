//! Every decision is a record: data to print (one console line), count, export (`--report`
//! JSON) and assert on in tests.

use std::fmt;

use serde::Serialize;

use crate::action::{Action, Decision, one_line};
use crate::context::{Crash, InFlight, RecoveryWindow};
use crate::fault::{Cause, Micros, ServerRef};

/// The recovery window in a record: how much the server sent since its boundary, and to whom
/// state-changing messages went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WindowSummary {
    /// The server's last boundary snapshot, if any.
    pub boundary: Option<u64>,
    /// Messages sent since.
    pub sent: usize,
    /// Of which state-changing.
    pub state_changing: usize,
    /// Distinct destinations of the state-changing ones, in first-send order.
    pub peers: Vec<ServerRef>,
}

impl WindowSummary {
    /// Summarizes `window`.
    pub fn of(window: &RecoveryWindow) -> Self {
        let mut peers: Vec<ServerRef> = Vec::new();
        for m in window.state_changing() {
            if !peers.contains(&m.to) {
                peers.push(m.to.clone());
            }
        }
        Self {
            boundary: window.boundary,
            sent: window.sent.len(),
            state_changing: window.state_changing().count(),
            peers,
        }
    }
}

/// What came of a decision; the recovery engine fills it in after acting.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// Not acted on yet.
    #[default]
    Pending,
    /// The server (and any peers) were restored and made runnable.
    Recovered {
        /// Pages written back, peers' included.
        pages_restored: u64,
        /// From the fault report to the server's first instruction, in microseconds.
        latency_us: f64,
    },
    /// The VM was stopped.
    Stopped,
    /// The action could not be carried out.
    Failed {
        /// Why, in one line.
        error: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending => f.write_str("pending"),
            Self::Recovered {
                pages_restored,
                latency_us,
            } => write!(f, "recovered, {pages_restored} pages in {latency_us:.1} us"),
            Self::Stopped => f.write_str("stopped"),
            Self::Failed { error } => write!(f, "failed: {error}"),
        }
    }
}

/// One crash and the decision about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DecisionRecord {
    /// When the decision was made (monotonic clock, µs).
    #[serde(rename = "at_us")]
    pub at: Micros,
    /// The crashed server.
    pub server: ServerRef,
    /// Its generation when it crashed.
    pub generation: u32,
    /// Why it crashed.
    pub cause: Cause,
    /// Where.
    pub rip: u64,
    /// The faulting address, for page faults.
    pub addr: Option<u64>,
    /// Messages it had handled.
    pub messages: u64,
    /// The request in flight, if any.
    pub in_flight: Option<InFlight>,
    /// Its recovery window.
    pub window: WindowSummary,
    /// Which policy decided.
    pub policy: String,
    /// What it decided.
    pub action: Action,
    /// Backoff before the restart, in microseconds (0: none).
    pub delay_us: u64,
    /// Why, in one line.
    pub reason: String,
    /// What came of it.
    pub outcome: Outcome,
}

impl DecisionRecord {
    /// The record of `decision` about `crash`, outcome pending.
    pub fn new(crash: &Crash<'_>, decision: &Decision) -> Self {
        let f = crash.fault;
        Self {
            at: crash.now,
            server: f.server.clone(),
            generation: f.generation,
            cause: f.cause,
            rip: f.rip,
            addr: f.fault_addr(),
            messages: f.messages,
            in_flight: crash.in_flight.cloned(),
            window: WindowSummary::of(crash.window),
            policy: decision.policy.clone(),
            action: decision.action.clone(),
            delay_us: decision
                .delay
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            reason: decision.reason.clone(),
            outcome: Outcome::Pending,
        }
    }

    /// The same record with `outcome`.
    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

impl fmt::Display for DecisionRecord {
    /// One line, for the console (any line break in a field becomes a space).
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let mut line = String::new();
        let f = &mut line;
        write!(
            f,
            "recovery: {} gen {} {} at rip {:#x}",
            self.server, self.generation, self.cause, self.rip
        )?;
        if let Some(addr) = self.addr {
            write!(f, " addr {addr:#x}")?;
        }
        write!(
            f,
            " after {} msgs; window {} sent, {} state-changing; {} -> {}",
            self.messages, self.window.sent, self.window.state_changing, self.policy, self.action
        )?;
        if self.delay_us > 0 {
            write!(f, " after {} us", self.delay_us)?;
        }
        write!(f, " [{}]: {}", self.outcome, self.reason)?;
        out.write_str(&one_line(&line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{History, SentMessage};
    use crate::policy::tests::{fault, request};
    use std::time::Duration;

    #[test]
    fn record_is_one_line_and_serializes() {
        let f = fault();
        let h = History::new();
        let w = RecoveryWindow {
            boundary: Some(9),
            sent: vec![SentMessage {
                to: ServerRef::new(3, "fs"),
                label: 2,
                name: None,
                state_changing: true,
                peer_snapshot: Some(4),
                peer_answered_others: false,
                peer_sent_state_changing: false,
            }],
        };
        let r = request(true, 0);
        let crash = Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight: Some(&r),
            now: Micros(1_000_050),
        };
        let d = Decision::new(Action::Rollback, "rollback", "because\nreasons")
            .with_delay(Duration::from_millis(2));
        let rec = DecisionRecord::new(&crash, &d).with_outcome(Outcome::Recovered {
            pages_restored: 3,
            latency_us: 41.5,
        });
        let line = rec.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert_eq!(
            line,
            "recovery: kv gen 1 null-deref at rip 0x401000 addr 0x0 after 500 msgs; window 1 sent, \
             1 state-changing; rollback -> rollback after 2000 us [recovered, 3 pages in 41.5 us]: \
             because reasons"
        );
        let json: serde_json::Value = serde_json::to_value(&rec).expect("serializes");
        assert_eq!(json["server"], "kv");
        assert_eq!(json["cause"], "null-deref");
        assert_eq!(json["action"]["kind"], "rollback");
        assert_eq!(json["window"]["peers"][0], "fs");
        assert_eq!(json["outcome"]["status"], "recovered");
        assert_eq!(json["outcome"]["pages_restored"], 3);
        assert_eq!(json["at_us"], 1_000_050);
        assert_eq!(json["in_flight"]["label"], 3);
    }

    /// Without a backoff the line names no delay; a cause other than a page fault has no
    /// address.
    #[test]
    fn no_delay_and_no_address_are_left_out() {
        let mut f = fault();
        f.cause = Cause::Panic;
        let (h, w) = (History::new(), RecoveryWindow::default());
        let crash = Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight: None,
            now: Micros(7),
        };
        let d = Decision::new(Action::Rollback, "rollback", "r");
        let rec = DecisionRecord::new(&crash, &d);
        assert_eq!((rec.delay_us, rec.addr), (0, None));
        assert_eq!(
            rec.to_string(),
            "recovery: kv gen 1 panic at rip 0x401000 after 500 msgs; window 0 sent, \
             0 state-changing; rollback -> rollback [pending]: r"
        );
    }
}
