//! Recovery policies: pure decision logic from a crashed server's fault record to a recovery
//! action. No KVM, no I/O, no clock: the recovery engine in `vmm` gathers the input, asks the
//! server's policy, carries out the action and records the outcome.
//!
//! ```text
//!  Fault + History + RecoveryWindow + InFlight + now  ──►  Crash
//!  Crash ──► RecoveryPolicy::decide ──► Decision { action, policy, reason, delay }
//!  Crash + Decision ──► DecisionRecord (console line, --report JSON); engine fills its Outcome
//! ```
//!
//! The rules every policy here keeps:
//!
//! 1. An action is one of: roll back and error-reply "peer restarted"; roll back and replay the
//!    in-flight request; restart from the initial image ("state lost"); any of those plus rolling
//!    dependent peers back (a consistent cut); fail-stop the VM.
//! 2. Only requests whose type is declared idempotent are replayed, and a message is replayed at
//!    most once: a crash during its replay escalates ([`Replay`]).
//! 3. No server is restarted without limit: crash counts per sliding window escalate
//!    ([`Threshold`], [`EscalationChain`]), and every configured chain ends with fail-stop.
//! 4. Never silently leave a peer holding the effect of a request the crashed server forgot: when
//!    the server sent state-changing messages since its boundary, its peers are rolled back to
//!    their snapshots from before those messages, or, when a peer has no such snapshot or has
//!    answered anyone else since (a cascade), the decision escalates ([`DependencyGuard`]).
//!    Tracking is on unless a configuration explicitly turns it off.
//! 5. Policies are chosen per server by configuration ([`RecoveryConfig`]), never by `#[cfg]`;
//!    with no configuration every server gets [`default_policy`].
//! 6. Every decision names the policy that made it and says why in one line, and becomes a
//!    [`DecisionRecord`].
//!
//! ```
//! use policies::*;
//!
//! let set = load("[recovery.servers.kv]\npolicy = \"replay\"\n", &["names", "kv", "fs"])?;
//! let fault = Fault {
//!     server: ServerRef::new(1, "kv"),
//!     generation: 1,
//!     cause: Cause::PageFault { addr: 0 },
//!     rip: 0x40_1000,
//!     messages: 500,
//!     at: Micros(2_000),
//! };
//! let mut history = History::new();
//! let window = RecoveryWindow { boundary: Some(17), sent: vec![] };
//! let put = InFlight { label: 2, name: Some("PUT".into()), idempotent: true, state_changing: true, replays: 0 };
//! let crash = Crash {
//!     fault: &fault,
//!     history: &history,
//!     window: &window,
//!     in_flight: Some(&put),
//!     now: Micros(2_010),
//! };
//! let decision = set.decide(&crash).expect("kv is declared");
//! assert_eq!(decision.action, Action::Replay);
//! let record = DecisionRecord::new(&crash, &decision);
//! history.record_decision(&fault, &decision);
//! assert!(record.to_string().starts_with("recovery: kv gen 1 null-deref"));
//! # Ok::<(), ConfigError>(())
//! ```
#![forbid(unsafe_code)]

mod action;
mod compose;
mod config;
mod context;
mod fault;
mod guard;
mod policy;
mod record;

pub use action::{Action, ActionKind, Decision, PeerRollback, ServerAction};
pub use compose::{Backoff, EscalationChain, Threshold};
pub use config::{
    ConfigError, EscalationProblem, PolicyKind, PolicySection, PolicySet, RecoveryConfig,
    ServerPolicy, default_policy, load,
};
pub use context::{
    Crash, History, InFlight, MAX_CRASH_LIMIT, MAX_WINDOW, PastCrash, RecoveryWindow, SentMessage,
    request_text,
};
pub use fault::{Cause, Fault, Micros, NULL_PAGE_END, ServerRef};
pub use guard::{
    DependencyGuard, DependencyProblem, Unrecoverable, UnsafeFallback, consistent_cut,
};
pub use policy::{FailStop, RecoveryPolicy, Replay, RestartFresh, Rollback};
pub use record::{DecisionRecord, Outcome, WindowSummary};
