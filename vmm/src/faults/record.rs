//! What a run reports of each fault it planned: the injection as it happened (the concrete
//! fault, whether the corrupted code or data was used, what detected it) and its class. One
//! shape from the injector to `--report`.

use super::classify::{Class, FaultFacts, RunFacts, classify, of_run};
use serde::Serialize;
use std::fmt;

/// Bytes (of code, or of memory), with their disassembly for code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bytes {
    /// Hex, two digits a byte, spaced.
    pub hex: String,
    /// Intel-syntax text, for code.
    pub asm: Option<String>,
}

impl Bytes {
    /// `bytes`, with `asm` for code.
    pub fn new(bytes: &[u8], asm: Option<String>) -> Self {
        Self {
            hex: hex(bytes),
            asm,
        }
    }
}

/// Two hex digits a byte, spaced.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What exactly a fault of the VMM's kinds corrupted: enough to do it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Concrete {
    /// The spec that replays it: every choice the seed made, pinned (`--fault` takes it).
    pub spec: String,
    /// The instruction or byte (code, `state-flip`, `stack-flip`).
    pub addr: Option<u64>,
    /// The bit flipped.
    pub bit: Option<u32>,
    /// The register flipped or put in.
    pub reg: Option<&'static str>,
    /// Before: the instruction (code), the byte (memory), the register's value (registers).
    pub before: Bytes,
    /// After, as the VMM read it back.
    pub after: Bytes,
}

/// One planned fault, as the run went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Injection {
    /// The `--fault` it came from (canonical form).
    pub spec: String,
    /// The server, or `kernel`.
    pub target: String,
    /// The kind.
    pub kind: &'static str,
    /// The message it struck (planned, for one that never fired).
    pub message: u64,
    /// Server faults of the VMM's kinds: where the server resumed with that message (its
    /// instruction pointer as the fault struck).
    pub rip: Option<u64>,
    /// What the VMM corrupted (its kinds; none for the kinds a server executes, and for a
    /// fault that never fired or found nothing to corrupt).
    pub concrete: Option<Concrete>,
    /// Whether the corrupted code or data was used: `true` (seen: the single-stepped task or
    /// the kernel reached the instruction; a server-executed kind always), `false` (provably
    /// not: a transient code fault whose message ended first), `null` (unknown).
    pub activated: Option<bool>,
    /// Server code faults: the instructions the kernel single-stepped toward it (null: not
    /// stepped).
    pub steps: Option<u64>,
    /// How it was detected: the cause of the target's first crash after it (the fault
    /// vocabulary's names), or null.
    pub detected_as: Option<String>,
    /// Transient code faults: put back (when the message ended or the target was restored).
    pub undone: bool,
    /// Why nothing was corrupted, when nothing was (e.g. no live stack).
    pub note: Option<String>,
    /// Its class (docs/fault-injection.md).
    pub class: Class,
}

impl fmt::Display for Injection {
    /// `inject: kv flip-branch at message 200: 0x4401a3 je ... [74 0b] -> jne ... [75 0b];
    /// replay: kv:flip-branch@200:at=0x4401a3`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "inject: {} {} at message {}",
            self.target, self.kind, self.message
        )?;
        match (&self.concrete, &self.note) {
            (Some(c), _) => {
                f.write_str(": ")?;
                if let Some(addr) = c.addr {
                    write!(f, "{addr:#x} ")?;
                }
                if let Some(reg) = c.reg {
                    write!(f, "{reg} ")?;
                }
                if let Some(bit) = c.bit {
                    write!(f, "bit {bit} ")?;
                }
                let side = |b: &Bytes| match &b.asm {
                    Some(asm) => format!("{asm} [{}]", b.hex),
                    None => format!("[{}]", b.hex),
                };
                write!(
                    f,
                    "{} -> {}; replay: {}",
                    side(&c.before),
                    side(&c.after),
                    c.spec
                )
            }
            (None, Some(note)) => write!(f, ": nothing corrupted ({note})"),
            (None, None) => Ok(()),
        }
    }
}

/// Sets the class of each of `injections` in a run of `run`'s facts; returns the run's class.
pub fn classify_all(run: &RunFacts, injections: &mut [super::record::Injection]) -> Option<Class> {
    for i in injections.iter_mut() {
        let facts = FaultFacts {
            // The injector records a fault that never fired as not triggered, and only those.
            triggered: i.class != Class::NotTriggered,
            activated: i.activated,
            detected: i.detected_as.is_some(),
            kernel: i.target == super::spec::KERNEL,
        };
        i.class = classify(run, &facts);
    }
    of_run(injections.iter().map(|i| i.class))
}
