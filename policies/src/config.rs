//! Configuration: the `[recovery]` table of a VM config file, validated against the servers an
//! image declares and built into one policy object per server.
//!
//! ```toml
//! [recovery]
//! dependency_tracking = true          # default true; false only to show what it prevents
//!
//! [recovery.default]                  # every server without its own section
//! policy = "rollback"                 # rollback | replay | restart | fail-stop
//! max_crashes = 1000                  # the first 1000 crashes in any window_secs ...
//! window_secs = 60
//! escalate = ["restart", "fail-stop"] # ... then crash 1001 restarts fresh, later ones fail-stop
//! backoff_ms = 0                      # delay before a restart, doubling per crash in the window
//! backoff_max_ms = 10000
//! on_replay_crash = "rollback"        # policy "replay": a replayed message crashed it again
//! on_unsafe_dependency = "fail-stop"  # a peer cannot be rolled back with it: fail-stop | restart
//!
//! [recovery.servers.kv]               # overrides single keys of the default section
//! policy = "replay"
//! ```
//!
//! A server section takes every key it does not set from `[recovery.default]`, which takes every
//! key it does not set from [`ServerPolicy::default`]. An inherited `escalate` list keeps only the
//! steps more severe than the section's own policy.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::action::{Decision, one_line};
use crate::compose::{Backoff, EscalationChain};
use crate::context::{Crash, MAX_CRASH_LIMIT, MAX_WINDOW};
use crate::guard::{DependencyGuard, UnsafeFallback};
use crate::policy::{FailStop, RecoveryPolicy, Replay, RestartFresh, Rollback};

/// Bounds of the numeric keys, inclusive.
const MAX_CRASHES: (i64, i64) = (1, MAX_CRASH_LIMIT as i64);
const WINDOW_SECS: (i64, i64) = (1, MAX_WINDOW.as_secs() as i64);
const BACKOFF_MS: (i64, i64) = (0, 10_000);
const BACKOFF_MAX_MS: (i64, i64) = (1, 600_000);

/// The `[recovery]` table as written, before validation. The VMM's config file struct can embed
/// it as `#[serde(default)] recovery: RecoveryConfig`; [`RecoveryConfig::build`] validates it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecoveryConfig {
    /// `dependency_tracking`; absent means on.
    pub dependency_tracking: Option<bool>,
    /// `[recovery.default]`.
    #[serde(default)]
    pub default: PolicySection,
    /// `[recovery.servers.NAME]`.
    #[serde(default)]
    pub servers: BTreeMap<String, PolicySection>,
}

/// One policy section as written; absent keys are inherited. Numbers are read as written (signed)
/// so that a bad one is reported with its key.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// `policy`.
    pub policy: Option<String>,
    /// `max_crashes`.
    pub max_crashes: Option<i64>,
    /// `window_secs`.
    pub window_secs: Option<i64>,
    /// `escalate`.
    pub escalate: Option<Vec<String>>,
    /// `backoff_ms`.
    pub backoff_ms: Option<i64>,
    /// `backoff_max_ms`.
    pub backoff_max_ms: Option<i64>,
    /// `on_replay_crash`.
    pub on_replay_crash: Option<String>,
    /// `on_unsafe_dependency`.
    pub on_unsafe_dependency: Option<String>,
}

/// A base policy or escalation step, least to most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// [`Replay`].
    Replay,
    /// [`Rollback`].
    Rollback,
    /// [`RestartFresh`].
    Restart,
    /// [`FailStop`].
    FailStop,
}

const POLICIES: &str = "rollback, replay, restart or fail-stop";
const REPLAY_FALLBACKS: &str = "rollback, restart or fail-stop";
const UNSAFE_FALLBACKS: &str = "fail-stop or restart";

impl PolicyKind {
    /// Its name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Replay => "replay",
            Self::Rollback => "rollback",
            Self::Restart => "restart",
            Self::FailStop => "fail-stop",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Replay, Self::Rollback, Self::Restart, Self::FailStop]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The policy object; `again` decides for [`PolicyKind::Replay`] when a replayed message
    /// crashes the server again.
    fn leaf(self, again: PolicyKind) -> Box<dyn RecoveryPolicy> {
        match self {
            Self::Replay => Box::new(Replay::new(again.leaf(Self::Rollback))),
            Self::Rollback => Box::new(Rollback),
            Self::Restart => Box::new(RestartFresh),
            Self::FailStop => Box::new(FailStop),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One server's validated policy settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// What to do while the server crashes at most `max_crashes` times per `window`.
    pub policy: PolicyKind,
    /// Crashes per window decided by `policy`.
    pub max_crashes: u32,
    /// The sliding window for `max_crashes` and the backoff.
    pub window: Duration,
    /// The steps after `policy`, one crash each, the last one for every crash beyond.
    pub escalate: Vec<PolicyKind>,
    /// First backoff delay; zero for none.
    pub backoff: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
    /// With `policy` replay: what a replayed message that crashes the server again gets.
    pub on_replay_crash: PolicyKind,
    /// With dependency tracking: what to do when a peer cannot be rolled back too.
    pub on_unsafe_dependency: UnsafeFallback,
    /// Wrap the policy in a [`DependencyGuard`].
    pub dependency_tracking: bool,
}

impl Default for ServerPolicy {
    /// The no-configuration default (recovery core issue): roll back and error-reply "peer
    /// restarted"; at most 1000 crashes per 60 s, then restart fresh, then fail-stop; no backoff;
    /// dependency tracking on, fail-stop when a peer cannot be rolled back too.
    fn default() -> Self {
        Self {
            policy: PolicyKind::Rollback,
            max_crashes: 1000,
            window: Duration::from_secs(60),
            escalate: vec![PolicyKind::Restart, PolicyKind::FailStop],
            backoff: Duration::ZERO,
            backoff_max: Duration::from_secs(10),
            on_replay_crash: PolicyKind::Rollback,
            on_unsafe_dependency: UnsafeFallback::FailStop,
            dependency_tracking: true,
        }
    }
}

impl ServerPolicy {
    /// The policy object: `policy` then `escalate` in an [`EscalationChain`], in a [`Backoff`]
    /// when `backoff` is not zero, in a [`DependencyGuard`] when tracking is on. A chain that
    /// does not end with fail-stop gets one, so no server is restarted without limit.
    pub fn build(&self) -> Box<dyn RecoveryPolicy> {
        let mut steps = vec![self.policy];
        steps.extend(&self.escalate);
        if steps.last() != Some(&PolicyKind::FailStop) {
            steps.push(PolicyKind::FailStop);
        }
        let mut chain = EscalationChain::new(
            self.max_crashes,
            self.window,
            steps[0].leaf(self.on_replay_crash),
        );
        for step in &steps[1..] {
            chain = chain.then(step.leaf(self.on_replay_crash));
        }
        let policy: Box<dyn RecoveryPolicy> = if self.backoff.is_zero() {
            Box::new(chain)
        } else {
            Box::new(Backoff::new(
                self.backoff,
                self.backoff_max,
                self.window,
                chain,
            ))
        };
        if self.dependency_tracking {
            Box::new(DependencyGuard::with_fallback(
                policy,
                self.on_unsafe_dependency,
            ))
        } else {
            policy
        }
    }
}

impl fmt::Display for ServerPolicy {
    /// One line: `rollback; at most 1000 crashes per 60 s, then restart, fail-stop; ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.policy)?;
        if self.policy == PolicyKind::Replay {
            write!(f, " (crash on replay: {})", self.on_replay_crash)?;
        }
        if !self.escalate.is_empty() {
            let steps: Vec<_> = self.escalate.iter().map(|k| k.name()).collect();
            write!(
                f,
                "; at most {} crashes per {} s, then {}",
                self.max_crashes,
                self.window.as_secs(),
                steps.join(", ")
            )?;
        }
        if !self.backoff.is_zero() {
            write!(
                f,
                "; backoff {}..{} ms",
                self.backoff.as_millis(),
                self.backoff_max.as_millis()
            )?;
        }
        match (self.dependency_tracking, self.on_unsafe_dependency) {
            (false, _) => f.write_str("; dependency tracking OFF"),
            (true, UnsafeFallback::FailStop) => f.write_str("; dependency tracking on"),
            (true, UnsafeFallback::RestartFresh) => {
                f.write_str("; dependency tracking on (unsafe: restart)")
            }
        }
    }
}

/// The no-configuration policy for any server: [`ServerPolicy::default`] built.
pub fn default_policy() -> Box<dyn RecoveryPolicy> {
    ServerPolicy::default().build()
}

/// What is wrong with an `escalate` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EscalationProblem {
    /// A step is not more severe than the one before it (a duplicate or a loop).
    NotMoreSevere {
        /// The step.
        step: PolicyKind,
        /// The policy or step before it.
        after: PolicyKind,
    },
    /// The list does not end with fail-stop.
    NoFailStop,
}

impl fmt::Display for EscalationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMoreSevere { step, after } => write!(
                f,
                "\"{step}\" cannot follow \"{after}\": each step must be more severe than the one \
                 before (replay < rollback < restart < fail-stop)"
            ),
            Self::NoFailStop => f.write_str(
                "must end with \"fail-stop\", so that a server that keeps crashing is not \
                 restarted without limit",
            ),
        }
    }
}

/// Why a recovery configuration was rejected. Each message is one line naming the key and the
/// bad value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not TOML, an unknown key, or a value of the wrong type.
    #[error("line {line}, `{text}`: {message}")]
    Parse {
        /// 1-based line of the error.
        line: usize,
        /// That line as written (trimmed, escaped, shortened).
        text: String,
        /// The parser's message, on one line.
        message: String,
    },
    /// A section for a server the image does not declare.
    #[error("{key}: unknown server (this image declares {known})")]
    UnknownServer {
        /// The section.
        key: String,
        /// The declared servers.
        known: String,
    },
    /// A policy name that does not exist or is not allowed for this key.
    #[error("{key} = {value:?}: unknown policy, expected {expected}")]
    UnknownPolicy {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// The allowed values.
        expected: &'static str,
    },
    /// A number out of bounds.
    #[error("{key} = {value}: must be between {min} and {max}")]
    OutOfRange {
        /// The key.
        key: String,
        /// Its value.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// `backoff_ms` above `backoff_max_ms`.
    #[error("{key}: backoff_ms = {base} is above backoff_max_ms = {cap}")]
    Backoff {
        /// The key set in this section.
        key: String,
        /// Effective `backoff_ms`.
        base: i64,
        /// Effective `backoff_max_ms`.
        cap: i64,
    },
    /// A bad `escalate` list.
    #[error("{key} = [{steps}]: {problem}")]
    Escalation {
        /// The key.
        key: String,
        /// The list as written.
        steps: String,
        /// What is wrong.
        problem: EscalationProblem,
    },
    /// `on_replay_crash` in a server section whose policy is not replay.
    #[error("{key}: only applies with policy = \"replay\", and this server's policy is {policy:?}")]
    NotReplay {
        /// The key.
        key: String,
        /// The section's policy.
        policy: &'static str,
    },
    /// The image's server list names a server twice.
    #[error("the image declares server {0:?} twice")]
    DuplicateServer(String),
}

/// Where a section lives, for error messages.
#[derive(Clone, Copy)]
enum Section<'a> {
    Default,
    Server(&'a str),
}

impl Section<'_> {
    fn path(self) -> String {
        match self {
            Self::Default => "recovery.default".to_owned(),
            Self::Server(name) => {
                let bare = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    format!("recovery.servers.{name}")
                } else {
                    format!("recovery.servers.{name:?}")
                }
            }
        }
    }

    fn key(self, field: &str) -> String {
        format!("{}.{field}", self.path())
    }
}

fn number(
    section: Section<'_>,
    field: &str,
    value: i64,
    (min, max): (i64, i64),
) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        // In range, so non-negative.
        Ok(value.unsigned_abs())
    } else {
        Err(ConfigError::OutOfRange {
            key: section.key(field),
            value,
            min,
            max,
        })
    }
}

fn kind(
    section: Section<'_>,
    field: &str,
    value: &str,
    allowed: &[PolicyKind],
    expected: &'static str,
) -> Result<PolicyKind, ConfigError> {
    PolicyKind::from_name(value)
        .filter(|k| allowed.contains(k))
        .ok_or_else(|| ConfigError::UnknownPolicy {
            key: section.key(field),
            value: value.to_owned(),
            expected,
        })
}

/// `sec` over `base`.
fn resolve(
    sec: &PolicySection,
    base: &ServerPolicy,
    section: Section<'_>,
) -> Result<ServerPolicy, ConfigError> {
    use PolicyKind::{FailStop, Replay, Restart, Rollback};
    let mut out = base.clone();
    if let Some(v) = &sec.policy {
        out.policy = kind(
            section,
            "policy",
            v,
            &[Replay, Rollback, Restart, FailStop],
            POLICIES,
        )?;
    }
    if let Some(v) = sec.max_crashes {
        let n = number(section, "max_crashes", v, MAX_CRASHES)?;
        out.max_crashes = u32::try_from(n).unwrap_or(MAX_CRASH_LIMIT);
    }
    if let Some(v) = sec.window_secs {
        out.window = Duration::from_secs(number(section, "window_secs", v, WINDOW_SECS)?);
    }
    if let Some(v) = sec.backoff_ms {
        out.backoff = Duration::from_millis(number(section, "backoff_ms", v, BACKOFF_MS)?);
    }
    if let Some(v) = sec.backoff_max_ms {
        out.backoff_max =
            Duration::from_millis(number(section, "backoff_max_ms", v, BACKOFF_MAX_MS)?);
    }
    if out.backoff > out.backoff_max {
        let field = if sec.backoff_max_ms.is_some() {
            "backoff_max_ms"
        } else {
            "backoff_ms"
        };
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Err(ConfigError::Backoff {
            key: section.key(field),
            base: ms(out.backoff),
            cap: ms(out.backoff_max),
        });
    }
    if let Some(v) = &sec.on_replay_crash {
        if let (Section::Server(_), false) = (section, out.policy == Replay) {
            return Err(ConfigError::NotReplay {
                key: section.key("on_replay_crash"),
                policy: out.policy.name(),
            });
        }
        out.on_replay_crash = kind(
            section,
            "on_replay_crash",
            v,
            &[Rollback, Restart, FailStop],
            REPLAY_FALLBACKS,
        )?;
    }
    if let Some(v) = &sec.on_unsafe_dependency {
        out.on_unsafe_dependency = match kind(
            section,
            "on_unsafe_dependency",
            v,
            &[Restart, FailStop],
            UNSAFE_FALLBACKS,
        )? {
            Restart => UnsafeFallback::RestartFresh,
            _ => UnsafeFallback::FailStop,
        };
    }
    out.escalate = match &sec.escalate {
        Some(list) => escalation(section, out.policy, list)?,
        None => base
            .escalate
            .iter()
            .copied()
            .filter(|&k| k > out.policy)
            .collect(),
    };
    Ok(out)
}

/// An explicit `escalate` list after `policy`.
fn escalation(
    section: Section<'_>,
    policy: PolicyKind,
    list: &[String],
) -> Result<Vec<PolicyKind>, ConfigError> {
    use PolicyKind::{FailStop, Replay, Restart, Rollback};
    let key = section.key("escalate");
    let fail = |problem| ConfigError::Escalation {
        key: key.clone(),
        steps: list
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        problem,
    };
    let mut steps = Vec::with_capacity(list.len());
    let mut after = policy;
    for name in list {
        let step = kind(
            section,
            "escalate",
            name,
            &[Replay, Rollback, Restart, FailStop],
            POLICIES,
        )?;
        if step <= after {
            return Err(fail(EscalationProblem::NotMoreSevere { step, after }));
        }
        steps.push(step);
        after = step;
    }
    if after != FailStop {
        return Err(fail(EscalationProblem::NoFailStop));
    }
    Ok(steps)
}

/// The whole file, of which this crate reads only `[recovery]`.
#[derive(Deserialize)]
struct FileView {
    #[serde(default)]
    recovery: RecoveryConfig,
}

/// The parser's error as one line, with the line of the file it points at.
fn parse_error(text: &str, e: &toml::de::Error) -> ConfigError {
    const SHOWN: usize = 60;
    let start = e.span().map_or(0, |s| s.start);
    let line = text
        .get(..start)
        .map_or(1, |before| before.matches('\n').count() + 1);
    let source = text.lines().nth(line - 1).unwrap_or("").trim();
    let mut shown: String = source.chars().take(SHOWN).collect();
    if source.chars().count() > SHOWN {
        shown.push_str("...");
    }
    let mut message = one_line(e.message())
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected a list")
        .replace("struct RecoveryConfig", "a table")
        .replace("struct PolicySection", "a table");
    if message.contains(" as i128") {
        message = "integer out of range".to_owned();
    }
    let text = one_line(&shown);
    ConfigError::Parse {
        line,
        text,
        message,
    }
}

impl RecoveryConfig {
    /// Parses the `[recovery]` table of a VM config file's text. Other top-level tables belong
    /// to the VMM and are not checked here.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str::<FileView>(text)
            .map(|f| f.recovery)
            .map_err(|e| parse_error(text, &e))
    }

    /// Validates the configuration against the servers the image declares and builds one
    /// policy per server, in the order of `servers`.
    pub fn build<S: AsRef<str>>(&self, servers: &[S]) -> Result<PolicySet, ConfigError> {
        let names: Vec<&str> = servers.iter().map(AsRef::as_ref).collect();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(ConfigError::DuplicateServer((*name).to_owned()));
            }
        }
        if let Some(unknown) = self.servers.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(ConfigError::UnknownServer {
                key: Section::Server(unknown).path(),
                known: names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut base = ServerPolicy {
            dependency_tracking: self.dependency_tracking.unwrap_or(true),
            ..ServerPolicy::default()
        };
        base = resolve(&self.default, &base, Section::Default)?;
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let settings = match self.servers.get(name) {
                Some(sec) => resolve(sec, &base, Section::Server(name))?,
                None => base.clone(),
            };
            entries.push(Entry {
                name: name.to_owned(),
                policy: settings.build(),
                settings,
            });
        }
        Ok(PolicySet {
            dependency_tracking: base.dependency_tracking,
            entries,
        })
    }
}

/// Parses `text` (a VM config file) and builds the policies for `servers`.
pub fn load<S: AsRef<str>>(text: &str, servers: &[S]) -> Result<PolicySet, ConfigError> {
    RecoveryConfig::from_toml(text)?.build(servers)
}

#[derive(Debug)]
struct Entry {
    name: String,
    settings: ServerPolicy,
    policy: Box<dyn RecoveryPolicy>,
}

/// One validated policy per server.
#[derive(Debug)]
pub struct PolicySet {
    dependency_tracking: bool,
    entries: Vec<Entry>,
}

impl PolicySet {
    /// The no-configuration policies for `servers`.
    pub fn defaults<S: AsRef<str>>(servers: &[S]) -> Result<Self, ConfigError> {
        RecoveryConfig::default().build(servers)
    }

    /// The policy of `server`.
    pub fn policy(&self, server: &str) -> Option<&dyn RecoveryPolicy> {
        self.entry(server).map(|e| &*e.policy)
    }

    /// The settings `server`'s policy was built from.
    pub fn settings(&self, server: &str) -> Option<&ServerPolicy> {
        self.entry(server).map(|e| &e.settings)
    }

    /// The policy of the `index`-th server of the list the set was built for.
    pub fn by_index(&self, index: usize) -> Option<&dyn RecoveryPolicy> {
        self.entries.get(index).map(|e| &*e.policy)
    }

    /// The servers, in the order the set was built for, with their settings.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ServerPolicy)> {
        self.entries.iter().map(|e| (e.name.as_str(), &e.settings))
    }

    /// Whether dependency tracking is on (it is unless the configuration turned it off).
    pub fn dependency_tracking(&self) -> bool {
        self.dependency_tracking
    }

    /// The decision of the crashed server's policy; `None` for a server not in the set.
    pub fn decide(&self, crash: &Crash<'_>) -> Option<Decision> {
        self.policy(&crash.fault.server.name)
            .map(|p| p.decide(crash))
    }

    /// The policies, in the order the set was built for.
    pub fn into_policies(self) -> Vec<(String, Box<dyn RecoveryPolicy>)> {
        self.entries
            .into_iter()
            .map(|e| (e.name, e.policy))
            .collect()
    }

    fn entry(&self, server: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == server)
    }
}

#[cfg(test)]
mod tests;
