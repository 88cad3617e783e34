//! `vmm run --fault SERVER:KIND@N`: crash server SERVER while it handles its N-th message, with
//! fault KIND ([`abi::fault::FaultKind`]). `SERVER:KIND@N+P` crashes it again every P messages
//! after that (for benchmarks: a crash rate). A `:after-send` suffix moves the fault to the end
//! of the handler (before the reply) of the first message from the N-th on during which the
//! server sent a message to a peer: a crash that leaves the peer holding an effect the crashed
//! server forgets, the case dependency tracking is for (`bank:panic@10:after-send`).
//!
//! The specs are checked twice: their form when the command line is read ([`FaultSpec::parse`]),
//! the server name against the image's servers once the image is known ([`plan`]). The plan
//! goes into the monitor page before boot; the kernel keeps it (outside every state arena, so
//! a rollback cannot re-arm a fault: each fires once) and hands the kind to the server with its
//! N-th message, and userlib's loop executes the fault in the server's own code.

use abi::fault::{AFTER_SEND, FaultKind};
use abi::monitor::{FaultPlan, MAX_PLANNED_FAULTS};
use std::fmt;

/// Most faults planned for one server (the kernel's per-task plan).
pub const MAX_PER_SERVER: usize = 4;

/// One `--fault` argument, checked for form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpec {
    /// The server's name.
    pub server: String,
    /// The fault.
    pub kind: FaultKind,
    /// The message it strikes (1 = the first one the server receives).
    pub message: u64,
    /// Messages between repeats (0: it strikes once).
    pub period: u64,
    /// Taken after the handler, on the first message from `message` on that sent a message.
    pub after_send: bool,
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.server, self.kind.name(), self.message)?;
        if self.period != 0 {
            write!(f, "+{}", self.period)?;
        }
        if self.after_send {
            f.write_str(":after-send")?;
        }
        Ok(())
    }
}

/// A `--fault` that cannot be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    /// Not `SERVER:KIND@N[+P][:after-send]`.
    #[error(
        "--fault {0:?}: expected SERVER:KIND@N, SERVER:KIND@N+P or either with :after-send, e.g. kv:null-deref@500"
    )]
    Form(String),
    /// KIND is not a known fault.
    #[error(
        "--fault {spec:?}: unknown fault kind {kind:?}, expected one of {}",
        kind_names()
    )]
    Kind {
        /// The argument.
        spec: String,
        /// The kind given.
        kind: String,
    },
    /// N or P is not a positive number.
    #[error("--fault {spec:?}: message number {n:?} must be a whole number from 1 up")]
    Message {
        /// The argument.
        spec: String,
        /// The number given.
        n: String,
    },
    /// The image declares no server of that name.
    #[error("--fault {spec}: unknown server {server:?} (this image declares {})", quoted(.known))]
    Server {
        /// The argument.
        spec: FaultSpec,
        /// The name given.
        server: String,
        /// The image's servers.
        known: Vec<String>,
    },
    /// A plain image has no servers to crash.
    #[error("--fault {0}: the image declares no servers (a plain ELF, or only apps)")]
    NoServers(FaultSpec),
    /// More faults than the kernel keeps.
    #[error(
        "--fault {spec}: too many faults (at most {MAX_PLANNED_FAULTS} in all, {MAX_PER_SERVER} per server)"
    )]
    TooMany {
        /// The first argument that does not fit.
        spec: FaultSpec,
    },
}

fn kind_names() -> String {
    FaultKind::ALL.map(FaultKind::name).join(", ")
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FaultSpec {
    /// Parses `SERVER:KIND@N` or `SERVER:KIND@N+P`, either with `:after-send` (the server name
    /// is checked later, against the image).
    pub fn parse(spec: &str) -> Result<Self, FaultSpecError> {
        let form = || FaultSpecError::Form(spec.to_owned());
        let (body, after_send) = match spec.strip_suffix(":after-send") {
            Some(body) => (body, true),
            None => (spec, false),
        };
        let (server, rest) = body.split_once(':').ok_or_else(form)?;
        let (kind, n) = rest.rsplit_once('@').ok_or_else(form)?;
        if server.is_empty() || kind.is_empty() {
            return Err(form());
        }
        let kind = FaultKind::from_name(kind).ok_or_else(|| FaultSpecError::Kind {
            spec: spec.to_owned(),
            kind: kind.to_owned(),
        })?;
        let number = |n: &str| {
            n.parse::<u64>()
                .ok()
                .filter(|&m| m >= 1)
                .ok_or_else(|| FaultSpecError::Message {
                    spec: spec.to_owned(),
                    n: n.to_owned(),
                })
        };
        let (message, period) = match n.split_once('+') {
            Some((n, p)) => (number(n)?, number(p)?),
            None => (number(n)?, 0),
        };
        Ok(Self {
            server: server.to_owned(),
            kind,
            message,
            period,
            after_send,
        })
    }
}

/// The monitor page's fault plan for `specs` on an image whose tasks are `tasks` (task index =
/// position; `None` for an app, which has no server loop to take a fault in).
pub fn plan(
    specs: &[FaultSpec],
    tasks: &[Option<String>],
) -> Result<[FaultPlan; MAX_PLANNED_FAULTS], FaultSpecError> {
    let mut plan = [FaultPlan::default(); MAX_PLANNED_FAULTS];
    let mut per_server = vec![0usize; tasks.len()];
    for (i, spec) in specs.iter().enumerate() {
        if tasks.iter().all(Option::is_none) {
            return Err(FaultSpecError::NoServers(spec.clone()));
        }
        let task = tasks
            .iter()
            .position(|s| s.as_ref() == Some(&spec.server))
            .ok_or_else(|| FaultSpecError::Server {
                spec: spec.clone(),
                server: spec.server.clone(),
                known: tasks.iter().flatten().cloned().collect(),
            })?;
        per_server[task] += 1;
        let (Some(slot), true) = (plan.get_mut(i), per_server[task] <= MAX_PER_SERVER) else {
            return Err(FaultSpecError::TooMany { spec: spec.clone() });
        };
        *slot = FaultPlan {
            task: task as u32,
            kind: spec.kind as u32 | if spec.after_send { AFTER_SEND } else { 0 },
            message: spec.message,
            period: spec.period,
        };
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<Option<String>> {
        vec![
            Some("names".into()),
            Some("kv".into()),
            Some("fs".into()),
            None,
        ]
    }

    #[test]
    fn specs_parse_and_print_back() {
        let s = FaultSpec::parse("kv:null-deref@500").expect("valid");
        assert_eq!(
            (s.server.as_str(), s.kind, s.message),
            ("kv", FaultKind::NullDeref, 500)
        );
        assert_eq!(s.to_string(), "kv:null-deref@500");
        let p = FaultSpec::parse("fs:hang@10+1000").expect("valid");
        assert_eq!((p.message, p.period), (10, 1000));
        assert_eq!(p.to_string(), "fs:hang@10+1000");
        let a = FaultSpec::parse("bank:panic@10:after-send").expect("valid");
        assert!(a.after_send && !p.after_send);
        assert_eq!((a.server.as_str(), a.kind), ("bank", FaultKind::Panic));
        assert_eq!(a.to_string(), "bank:panic@10:after-send");
        let plan = plan(&[a], &servers());
        assert!(plan.is_err(), "no bank in the test image");
        let a = FaultSpec::parse("fs:panic@3+2:after-send").expect("valid");
        let plan = super::plan(&[a], &servers()).expect("fits");
        assert_eq!(
            (plan[0].kind, plan[0].message, plan[0].period),
            (FaultKind::Panic as u32 | AFTER_SEND, 3, 2)
        );
        for k in FaultKind::ALL {
            let spec = format!("fs:{}@1", k.name());
            assert_eq!(FaultSpec::parse(&spec).map(|s| s.kind), Ok(k));
        }
    }

    #[test]
    fn malformed_specs_get_one_line_errors_naming_the_input() {
        let cases = [
            ("kv", "expected SERVER:KIND@N"),
            ("kv:panic", "expected SERVER:KIND@N"),
            (":panic@3", "expected SERVER:KIND@N"),
            ("kv:@3", "expected SERVER:KIND@N"),
            (
                "kv:melt@3",
                "unknown fault kind \"melt\", expected one of null-deref,",
            ),
            ("kv:panic@0", "message number \"0\" must be"),
            ("kv:panic@-1", "message number \"-1\""),
            ("kv:panic@x", "message number \"x\""),
            ("kv:panic@3+0", "message number \"0\""),
            ("kv:panic@3+", "message number \"\""),
            ("kv:panic@3:after", "message number \"3:after\""),
            ("kv:panic@3:after-send:after-send", "message number"),
        ];
        for (spec, want) in cases {
            let e = FaultSpec::parse(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.contains(&format!("{spec:?}")), "{spec}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn plans_name_tasks_by_index_and_refuse_strangers_and_excess() {
        let specs = [
            FaultSpec::parse("fs:hang@9").expect("valid"),
            FaultSpec::parse("kv:panic@2").expect("valid"),
        ];
        let plan = plan(&specs, &servers()).expect("fits");
        assert_eq!((plan[0].task, plan[0].kind, plan[0].message), (2, 5, 9));
        assert_eq!((plan[1].task, plan[1].message), (1, 2));
        assert_eq!(plan[2].message, 0, "unused");
        let e = super::plan(
            &[FaultSpec::parse("kvv:panic@2").expect("valid")],
            &servers(),
        )
        .expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "--fault kvv:panic@2: unknown server \"kvv\" (this image declares \"names\", \"kv\", \"fs\")"
        );
        assert!(
            super::plan(
                &[FaultSpec::parse("names:panic@2").expect("valid")],
                &[None]
            )
            .is_err(),
            "apps cannot be crashed on purpose"
        );
        let five = vec![FaultSpec::parse("kv:panic@2").expect("valid"); 5];
        assert!(matches!(
            super::plan(&five, &servers()),
            Err(FaultSpecError::TooMany { .. })
        ));
        assert!(matches!(
            super::plan(&five[..1], &[]),
            Err(FaultSpecError::NoServers(_))
        ));
    }

    proptest::proptest! {
        /// Any text: parsed or refused with one line, never a panic.
        #[test]
        fn arbitrary_specs_never_panic(spec in ".{0,40}") {
            if let Err(e) = FaultSpec::parse(&spec) {
                proptest::prop_assert!(!e.to_string().contains('\n') || spec.contains('\n'));
            }
        }
    }
}
