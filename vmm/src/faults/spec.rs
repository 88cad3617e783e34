//! The `--fault` grammar: what a planned fault says, checked for form when the command line is
//! read (the target against the image later: [`super::plan`]).
//!
//! ```text
//!  spec      = target ":" kind "@" N [ "+" P ] { ":" modifier }
//!  target    = a server's name | "kernel"
//!  kind      = null-deref | illegal-insn | div-zero | panic | hang | stack-overflow
//!            | corrupt-state | gp                              (the server executes them)
//!            | text-flip | nop | flip-branch | drop-branch | corrupt-src | corrupt-dst
//!            | corrupt-ptr | no-store                          (code, rewritten by the VMM)
//!            | state-flip | stack-flip | reg-flip | msg-corrupt (data, flipped by the VMM)
//!  modifier  = "after-send" | "transient" | "permanent" | "at=" ADDR | "bit=" B | "reg=" R
//! ```
//!
//! N is the message the fault strikes (the target's N-th; for `kernel`, the N-th delivered to
//! any task), P repeats it every P messages. Each modifier at most once, in any order, and only
//! where it means something: `after-send` for the kinds a server executes; `transient` (the
//! default) and `permanent` for code kinds; `at=` (decimal or `0x` hex) the instruction of a
//! code kind or the byte of a `state-flip`/`stack-flip`; `bit=` the bit flipped (of the
//! instruction's bytes for `text-flip`, of the byte, of the register, of the displacement for
//! `corrupt-ptr`); `reg=` the register flipped (`reg-flip`, `msg-corrupt`: a payload register)
//! or put in (`corrupt-src`, `corrupt-dst`). What a spec leaves open, `--fault-seed` picks; the
//! concrete fault is reported as a spec that leaves nothing open.

use abi::fault::{Family, FaultKind};
use abi::monitor::InjectRegs;
use std::fmt;

/// The target name of a fault in the kernel itself.
pub const KERNEL: &str = "kernel";

/// Who takes a fault.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A server of the image, by name (checked against the image later).
    Server(String),
    /// The guest kernel (`kernel:text-flip@N`, `kernel:state-flip@N`).
    Kernel,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(name) => f.write_str(name),
            Self::Kernel => f.write_str(KERNEL),
        }
    }
}

/// Whether a code fault is undone when its message is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Persistence {
    /// Undone before the target's next message, or when it is restored (the default).
    Transient,
    /// Left in place for the rest of the run.
    Permanent,
}

impl Persistence {
    fn name(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
        }
    }
}

/// A general register, by its index in [`InjectRegs::NAMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reg(pub usize);

impl Reg {
    /// The register called `name` (64-bit names: `rax` ... `r15`).
    pub fn from_name(name: &str) -> Option<Self> {
        InjectRegs::NAMES.iter().position(|n| *n == name).map(Reg)
    }

    /// The 64-bit register of a narrower name (`eax`, `ax`, `al`, `r8d`, `r8w`, `r8b`, `sil`,
    /// ...), if `name` is one.
    pub fn widened(name: &str) -> Option<Self> {
        let name = name.to_ascii_lowercase();
        let narrower = |full: &str| -> Vec<String> {
            let core = &full[1..];
            if core.bytes().all(|b| b.is_ascii_digit()) {
                ["d", "w", "b", "l"].map(|s| format!("{full}{s}")).to_vec()
            } else if let Some(letter) = core.strip_suffix('x') {
                vec![
                    format!("e{core}"),
                    core.into(),
                    format!("{letter}l"),
                    format!("{letter}h"),
                ]
            } else {
                vec![format!("e{core}"), core.into(), format!("{core}l")]
            }
        };
        InjectRegs::NAMES
            .iter()
            .position(|full| **full == name || narrower(full).contains(&name))
            .map(Reg)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        InjectRegs::NAMES.get(self.0).copied().unwrap_or("?")
    }

    /// True when it carries a message as delivered (the label or a word).
    pub fn is_payload(self) -> bool {
        InjectRegs::PAYLOAD.contains(&self.0)
    }
}

/// One `--fault` argument, checked for form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FaultSpec {
    /// Who takes it.
    pub target: Target,
    /// The fault.
    pub kind: FaultKind,
    /// The message it strikes (1 = the first).
    pub message: u64,
    /// Messages between repeats (0: it strikes once).
    pub period: u64,
    /// Taken after the handler, on the first message from `message` on that sent a message.
    pub after_send: bool,
    /// Code kinds: undone after its message or not (`None`: not said, transient).
    pub persistence: Option<Persistence>,
    /// The instruction (code kinds) or byte (`state-flip`, `stack-flip`).
    pub at: Option<u64>,
    /// The bit.
    pub bit: Option<u32>,
    /// The register.
    pub reg: Option<Reg>,
}

impl FaultSpec {
    /// A spec of `kind` for `target` at message `message`, nothing else said.
    pub fn new(target: Target, kind: FaultKind, message: u64) -> Self {
        Self {
            target,
            kind,
            message,
            period: 0,
            after_send: false,
            persistence: None,
            at: None,
            bit: None,
            reg: None,
        }
    }

    /// The server it targets, if not the kernel.
    pub fn server(&self) -> Option<&str> {
        match &self.target {
            Target::Server(name) => Some(name),
            Target::Kernel => None,
        }
    }

    /// True when its code fault stays after its message.
    pub fn permanent(&self) -> bool {
        self.persistence == Some(Persistence::Permanent)
    }
}

impl fmt::Display for FaultSpec {
    /// The canonical form: what [`FaultSpec::parse`] reads back as the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}@{}", self.target, self.kind.name(), self.message)?;
        if self.period != 0 {
            write!(f, "+{}", self.period)?;
        }
        if self.after_send {
            f.write_str(":after-send")?;
        }
        if let Some(p) = self.persistence {
            write!(f, ":{}", p.name())?;
        }
        if let Some(at) = self.at {
            write!(f, ":at={at:#x}")?;
        }
        if let Some(bit) = self.bit {
            write!(f, ":bit={bit}")?;
        }
        if let Some(reg) = self.reg {
            write!(f, ":reg={}", reg.name())?;
        }
        Ok(())
    }
}

/// A `--fault` that cannot be carried out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultSpecError {
    /// Not `TARGET:KIND@N...`.
    #[error(
        "--fault {0:?}: expected SERVER:KIND@N, optionally +P and :MODIFIERs, e.g. kv:null-deref@500 or kv:flip-branch@200:permanent"
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
    /// N or P is not a positive number, or too large.
    #[error(
        "--fault {spec:?}: {what} {n:?} must be a whole number from 1 to {}",
        u64::MAX
    )]
    Number {
        /// The argument.
        spec: String,
        /// "message number" or "repeat period".
        what: &'static str,
        /// The number given.
        n: String,
    },
    /// A modifier nobody defined.
    #[error(
        "--fault {spec:?}: unknown modifier {modifier:?}, expected after-send, transient, permanent, at=ADDR, bit=B or reg=R"
    )]
    Modifier {
        /// The argument.
        spec: String,
        /// The modifier given.
        modifier: String,
    },
    /// A modifier given twice (or both `transient` and `permanent`).
    #[error("--fault {spec:?}: {modifier} given twice")]
    Twice {
        /// The argument.
        spec: String,
        /// The modifier.
        modifier: String,
    },
    /// A modifier's value that does not parse or is out of range.
    #[error("--fault {spec:?}: {modifier}: {why}")]
    Value {
        /// The argument.
        spec: String,
        /// The modifier.
        modifier: String,
        /// What is wrong.
        why: String,
    },
    /// A modifier that means nothing for this kind (or target).
    #[error("--fault {spec:?}: {modifier} does not apply to {kind}{}", for_kernel(*.kernel))]
    NotFor {
        /// The argument.
        spec: String,
        /// The modifier.
        modifier: String,
        /// The kind.
        kind: &'static str,
        /// The target is the kernel.
        kernel: bool,
    },
    /// The kernel takes only some kinds.
    #[error("--fault {spec:?}: the kernel takes text-flip and state-flip faults only")]
    KernelKind {
        /// The argument.
        spec: String,
    },
    /// The image declares no server of that name.
    #[error("--fault {spec:?}: unknown server {server:?} (this image declares {})", quoted(.known))]
    Server {
        /// The argument.
        spec: String,
        /// The name given.
        server: String,
        /// The image's servers.
        known: Vec<String>,
    },
    /// A plain image has no servers (or kernel of ours) to fault.
    #[error("--fault {0:?}: the image declares no servers (a plain ELF, or only apps)")]
    NoServers(String),
    /// More faults than the kernel keeps.
    #[error(
        "--fault {spec:?}: too many faults (at most {most} in all, {per_target} per server, {kernel} for the kernel)"
    )]
    TooMany {
        /// The first argument that does not fit.
        spec: String,
        /// Most faults in all.
        most: usize,
        /// Most per server.
        per_target: usize,
        /// Most for the kernel.
        kernel: usize,
    },
    /// Two faults that strike one target at one message.
    #[error(
        "--fault {spec:?}: {target} would take it and {other:?} at its message {message}; a target takes one fault a message"
    )]
    Collide {
        /// The later argument.
        spec: String,
        /// The earlier one.
        other: String,
        /// Their target.
        target: String,
        /// The first message both strike.
        message: u64,
    },
    /// `at=` outside what the kind can corrupt in this image.
    #[error("--fault {spec:?}: at={at:#x} is not {what}")]
    Address {
        /// The argument.
        spec: String,
        /// The address.
        at: u64,
        /// What it should have been.
        what: String,
    },
}

fn for_kernel(kernel: bool) -> &'static str {
    if kernel { " in the kernel" } else { "" }
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

/// The highest `bit=` of each kind (inclusive); `None` where `bit=` does not apply.
fn max_bit(kind: FaultKind) -> Option<u32> {
    use FaultKind::*;
    match kind {
        TextFlip => Some(15 * 8 - 1),
        StateFlip | StackFlip => Some(7),
        RegFlip | MsgCorrupt => Some(63),
        CorruptPtr => Some(31),
        _ => None,
    }
}

/// True when `at=` applies to `kind`.
fn takes_at(kind: FaultKind) -> bool {
    kind.family() == Family::Code || matches!(kind, FaultKind::StateFlip | FaultKind::StackFlip)
}

/// True when `reg=` applies to `kind`.
fn takes_reg(kind: FaultKind) -> bool {
    matches!(
        kind,
        FaultKind::RegFlip | FaultKind::MsgCorrupt | FaultKind::CorruptSrc | FaultKind::CorruptDst
    )
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u64::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    }
}

impl FaultSpec {
    /// Parses one `--fault` argument (see the module doc); the target is checked later,
    /// against the image.
    pub fn parse(spec: &str) -> Result<Self, FaultSpecError> {
        let owned = || spec.to_owned();
        let form = || FaultSpecError::Form(owned());
        let (target, rest) = spec.split_once(':').ok_or_else(form)?;
        let (kind, rest) = rest.split_once('@').ok_or_else(form)?;
        if target.is_empty() || kind.is_empty() || rest.contains('@') {
            return Err(form());
        }
        let kind = FaultKind::from_name(kind).ok_or_else(|| FaultSpecError::Kind {
            spec: owned(),
            kind: kind.to_owned(),
        })?;
        let mut parts = rest.split(':');
        let numbers = parts.next().unwrap_or_default();
        let number = |n: &str, what: &'static str| {
            n.parse::<u64>()
                .ok()
                .filter(|&m| m >= 1 && n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| FaultSpecError::Number {
                    spec: owned(),
                    what,
                    n: n.to_owned(),
                })
        };
        let (message, period) = match numbers.split_once('+') {
            Some((n, p)) => (number(n, "message number")?, number(p, "repeat period")?),
            None => (number(numbers, "message number")?, 0),
        };
        let target = if target == KERNEL {
            Target::Kernel
        } else {
            Target::Server(target.to_owned())
        };
        let mut s = FaultSpec::new(target, kind, message);
        s.period = period;
        for modifier in parts {
            s.apply(spec, modifier)?;
        }
        s.check(spec)?;
        Ok(s)
    }

    /// Applies one `:modifier` (`spec`: the whole argument, for errors).
    fn apply(&mut self, spec: &str, modifier: &str) -> Result<(), FaultSpecError> {
        let (key, value) = match modifier.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (modifier, None),
        };
        let twice = |m: &str| FaultSpecError::Twice {
            spec: spec.to_owned(),
            modifier: m.to_owned(),
        };
        let value_error = |why: String| FaultSpecError::Value {
            spec: spec.to_owned(),
            modifier: key.to_owned(),
            why,
        };
        let flag = || match value {
            None => Ok(()),
            Some(_) => Err(value_error("takes no value".into())),
        };
        let needed = || value.ok_or_else(|| value_error("needs a value".into()));
        match key {
            "after-send" => {
                flag()?;
                if std::mem::replace(&mut self.after_send, true) {
                    return Err(twice("after-send"));
                }
            }
            "transient" | "permanent" => {
                flag()?;
                if self.persistence.is_some() {
                    return Err(twice("transient/permanent"));
                }
                self.persistence = Some(if key == "permanent" {
                    Persistence::Permanent
                } else {
                    Persistence::Transient
                });
            }
            "at" => {
                let v = needed()?;
                let at = parse_number(v)
                    .ok_or_else(|| value_error(format!("{v:?} is not an address")))?;
                if self.at.replace(at).is_some() {
                    return Err(twice("at="));
                }
            }
            "bit" => {
                let v = needed()?;
                let bit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| value_error(format!("{v:?} is not a bit number")))?;
                if self.bit.replace(bit).is_some() {
                    return Err(twice("bit="));
                }
            }
            "reg" => {
                let v = needed()?;
                let reg = Reg::from_name(v).ok_or_else(|| {
                    value_error(match Reg::widened(v) {
                        Some(r) => format!(
                            "{v:?}: name the whole 64-bit register, {} (the fault picks the part the instruction uses)",
                            r.name()
                        ),
                        None => format!(
                            "{v:?} is not a general register ({})",
                            InjectRegs::NAMES.join(", ")
                        ),
                    })
                })?;
                if self.reg.replace(reg).is_some() {
                    return Err(twice("reg="));
                }
            }
            _ => {
                return Err(FaultSpecError::Modifier {
                    spec: spec.to_owned(),
                    modifier: modifier.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Checks that every modifier given means something for the kind and target.
    fn check(&self, spec: &str) -> Result<(), FaultSpecError> {
        let kernel = self.target == Target::Kernel;
        let not_for = |modifier: &str| FaultSpecError::NotFor {
            spec: spec.to_owned(),
            modifier: modifier.to_owned(),
            kind: self.kind.name(),
            kernel,
        };
        if kernel && !matches!(self.kind, FaultKind::TextFlip | FaultKind::StateFlip) {
            return Err(FaultSpecError::KernelKind {
                spec: spec.to_owned(),
            });
        }
        let code = self.kind.family() == Family::Code;
        if self.after_send && (self.kind.family() != Family::Crash || kernel) {
            return Err(not_for("after-send"));
        }
        // The kernel's code faults stay: the kernel has no message whose end could undo them.
        if let Some(p) = self.persistence
            && (!code || (kernel && p == Persistence::Transient))
        {
            return Err(not_for(p.name()));
        }
        if self.at.is_some() && !takes_at(self.kind) {
            return Err(not_for("at="));
        }
        if let Some(bit) = self.bit {
            let Some(max) = max_bit(self.kind) else {
                return Err(not_for("bit="));
            };
            if bit > max {
                return Err(FaultSpecError::Value {
                    spec: spec.to_owned(),
                    modifier: "bit".into(),
                    why: format!(
                        "{bit} is above {max}, the highest bit {} flips",
                        self.kind.name()
                    ),
                });
            }
        }
        if let Some(reg) = self.reg {
            if !takes_reg(self.kind) || kernel {
                return Err(not_for("reg="));
            }
            if self.kind == FaultKind::MsgCorrupt && !reg.is_payload() {
                return Err(FaultSpecError::Value {
                    spec: spec.to_owned(),
                    modifier: "reg".into(),
                    why: format!(
                        "{} carries no message: the label is in rsi, the words in rdx, r8, r9, r10, r12, r13",
                        reg.name()
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn specs_parse_and_print_back() {
        let s = FaultSpec::parse("kv:null-deref@500").expect("valid");
        assert_eq!(
            (s.server(), s.kind, s.message),
            (Some("kv"), FaultKind::NullDeref, 500)
        );
        assert_eq!(s.to_string(), "kv:null-deref@500");
        let p = FaultSpec::parse("fs:hang@10+1000").expect("valid");
        assert_eq!((p.message, p.period), (10, 1000));
        let a = FaultSpec::parse("bank:panic@10:after-send").expect("valid");
        assert!(a.after_send && !p.after_send);
        let c = FaultSpec::parse("kv:flip-branch@200:at=0x4401a3:permanent").expect("valid");
        assert_eq!(
            (c.at, c.persistence, c.permanent()),
            (Some(0x4401a3), Some(Persistence::Permanent), true)
        );
        assert_eq!(c.to_string(), "kv:flip-branch@200:permanent:at=0x4401a3");
        let r = FaultSpec::parse("kv:reg-flip@7:bit=63:reg=r15").expect("valid");
        assert_eq!((r.bit, r.reg.map(Reg::name)), (Some(63), Some("r15")));
        let k = FaultSpec::parse("kernel:text-flip@30:at=2097152").expect("valid");
        assert_eq!((k.target.clone(), k.at), (Target::Kernel, Some(0x20_0000)));
        assert_eq!(k.to_string(), "kernel:text-flip@30:at=0x200000");
        for kind in FaultKind::ALL {
            let spec = format!("fs:{}@1", kind.name());
            assert_eq!(FaultSpec::parse(&spec).map(|s| s.kind), Ok(kind));
        }
    }

    #[test]
    fn malformed_specs_get_one_line_errors_naming_the_input() {
        let cases = [
            ("kv", "expected SERVER:KIND@N"),
            ("kv:panic", "expected SERVER:KIND@N"),
            (":panic@3", "expected SERVER:KIND@N"),
            ("kv:@3", "expected SERVER:KIND@N"),
            ("kv:panic@1@2", "expected SERVER:KIND@N"),
            (
                "kv:melt@3",
                "unknown fault kind \"melt\", expected one of null-deref,",
            ),
            ("kv:panic@0", "message number \"0\" must be"),
            ("kv:panic@-1", "message number \"-1\""),
            ("kv:panic@+3", "message number \"\""),
            ("kv:panic@x", "message number \"x\""),
            ("kv:panic@3+0", "repeat period \"0\""),
            ("kv:panic@3+", "repeat period \"\""),
            (
                "kv:panic@3:aftersend",
                "unknown modifier \"aftersend\", expected after-send",
            ),
            ("kv:panic@3:", "unknown modifier \"\""),
            ("kv:panic@3:after-send:after-send", "after-send given twice"),
            (
                "kv:nop@3:transient:permanent",
                "transient/permanent given twice",
            ),
            ("kv:nop@3:at=1:at=2", "at= given twice"),
            ("kv:nop@3:at=zz", "at: \"zz\" is not an address"),
            ("kv:nop@3:at=0x", "at: \"0x\" is not an address"),
            ("kv:nop@3:at", "at: needs a value"),
            ("kv:nop@3:permanent=1", "permanent: takes no value"),
            ("kv:reg-flip@3:bit=64", "bit: 64 is above 63"),
            ("kv:state-flip@3:bit=8", "bit: 8 is above 7"),
            (
                "kv:reg-flip@3:reg=eax",
                "reg: \"eax\": name the whole 64-bit register, rax",
            ),
            ("kv:reg-flip@3:reg=R9D", "64-bit register, r9"),
            ("kv:reg-flip@3:reg=sil", "64-bit register, rsi"),
            ("kv:reg-flip@3:reg=dh", "64-bit register, rdx"),
            (
                "kv:reg-flip@3:reg=xmm0",
                "\"xmm0\" is not a general register",
            ),
            (
                "kv:panic@99999999999999999999",
                "must be a whole number from 1 to 18446744073709551615",
            ),
            (
                "kernel:text-flip@3:transient",
                "transient does not apply to text-flip in the kernel",
            ),
            ("kv:msg-corrupt@3:reg=rax", "rax carries no message"),
            ("kv:nop@3:after-send", "after-send does not apply to nop"),
            ("kv:panic@3:permanent", "permanent does not apply to panic"),
            ("kv:reg-flip@3:at=0x10", "at= does not apply to reg-flip"),
            ("kv:nop@3:bit=1", "bit= does not apply to nop"),
            ("kv:panic@3:reg=rax", "reg= does not apply to panic"),
            (
                "kernel:panic@3",
                "the kernel takes text-flip and state-flip faults only",
            ),
            (
                "kernel:nop@3",
                "the kernel takes text-flip and state-flip faults only",
            ),
        ];
        for (spec, want) in cases {
            let e = FaultSpec::parse(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec}: {e}");
            assert!(e.contains(&format!("{spec:?}")), "{spec}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    /// Specs built from the grammar's parts, modifiers in any order.
    fn spec_text() -> impl Strategy<Value = String> {
        let kinds: Vec<&'static str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
        let modifiers = prop::sample::subsequence(
            vec![
                "after-send".to_owned(),
                "transient".to_owned(),
                "permanent".to_owned(),
                "at=0x401000".to_owned(),
                "at=77".to_owned(),
                "bit=3".to_owned(),
                "bit=70".to_owned(),
                "reg=rdx".to_owned(),
                "reg=rax".to_owned(),
            ],
            0..4,
        )
        .prop_shuffle();
        (
            prop::sample::select(vec!["kv", "kernel", "bank"]),
            prop::sample::select(kinds),
            1u64..1000,
            prop::option::of(1u64..50),
            modifiers,
        )
            .prop_map(|(target, kind, n, p, mods)| {
                let mut s = format!("{target}:{kind}@{n}");
                if let Some(p) = p {
                    s.push_str(&format!("+{p}"));
                }
                for m in mods {
                    s.push(':');
                    s.push_str(&m);
                }
                s
            })
    }

    proptest! {
        /// Any text: parsed or refused with one line naming the input, never a panic.
        #[test]
        fn arbitrary_specs_never_panic(spec in ".{0,60}") {
            if let Err(e) = FaultSpec::parse(&spec) {
                let line = e.to_string();
                prop_assert!(!line.contains('\n') || spec.contains('\n'));
                prop_assert!(line.starts_with("--fault "));
            }
        }

        /// Grammar-shaped specs: a valid one prints in canonical form and reads back as
        /// itself; the order of its modifiers does not matter; an invalid one says why.
        #[test]
        fn grammar_shaped_specs_round_trip(text in spec_text()) {
            match FaultSpec::parse(&text) {
                Ok(spec) => {
                    let canonical = spec.to_string();
                    prop_assert_eq!(FaultSpec::parse(&canonical), Ok(spec.clone()));
                    let mut parts: Vec<&str> = text.split(':').collect();
                    let head = parts.drain(..2).collect::<Vec<_>>().join(":");
                    parts.reverse();
                    let reordered = std::iter::once(head.as_str())
                        .chain(parts)
                        .collect::<Vec<_>>()
                        .join(":");
                    prop_assert_eq!(FaultSpec::parse(&reordered), Ok(spec));
                }
                Err(e) => {
                    let quoted = format!("{text:?}");
                    prop_assert!(e.to_string().contains(&quoted));
                }
            }
        }
    }

    /// A share of the grammar-shaped specs is valid, so the round trip is exercised.
    #[test]
    fn the_generator_makes_valid_specs_too() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = spec_text();
        let valid = (0..400)
            .filter(|_| {
                let text = strategy.new_tree(&mut runner).expect("tree").current();
                FaultSpec::parse(&text).is_ok()
            })
            .count();
        assert!(valid >= 80, "only {valid} of 400 valid");
    }
}
