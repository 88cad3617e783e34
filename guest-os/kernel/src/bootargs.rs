//! The guest command line, checked at boot: `ops=N` and `seed=N` (the workload's), and
//! `NAME=VALUE` for each task that takes a value ([`sysmap::Arg`]: a load client's ticks, the
//! crasher's mode). `ops` and a load client's ticks may also be [`FOREVER`]: the load runs until
//! the VM is stopped (`vmm demo`). Anything else stops the boot with one console line: a mistyped key or value
//! would otherwise run something other than what was asked for.

use abi::fault::FaultKind;
use sysmap::{Arg, TASKS};

/// Keys of the workload.
const WORKLOAD_KEYS: [&[u8]; 2] = [b"ops", b"seed"];
/// The value of `ops` or of a load client's ticks that never runs out.
pub const FOREVER: &[u8] = b"forever";

/// Longest value a task gets (packed into two registers).
const MAX_VALUE: usize = 16;

/// Why a key is refused; the boot line goes on with the names of the tasks that take a value
/// (the system map's), so it names every key there is.
pub const UNKNOWN_KEY: &str =
    "unknown key: expected ops, seed or the name of a task that takes a value:";

/// A token of the command line that is not accepted, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadArg<'a> {
    /// The token.
    pub token: &'a [u8],
    /// Why, in words.
    pub why: &'static str,
}

/// Checks every token of `cmdline` (separated by ASCII whitespace, as `bare::cmdline` reads
/// them; this library stays off `bare`, whose runtime symbols clash with std in host tests).
pub fn check(cmdline: &[u8]) -> Result<(), BadArg<'_>> {
    let mut tokens = cmdline
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty());
    tokens.try_for_each(|token| {
        let bad = |why| Err(BadArg { token, why });
        let Some(eq) = token.iter().position(|&b| b == b'=') else {
            return bad("expected KEY=VALUE");
        };
        let (key, value) = (&token[..eq], &token[eq + 1..]);
        // At most 16 digits: always a u64, and what a task's two registers carry.
        let number =
            !value.is_empty() && value.len() <= MAX_VALUE && value.iter().all(u8::is_ascii_digit);
        let endless = value == FOREVER;
        if WORKLOAD_KEYS.contains(&key) {
            return if number || (endless && key == b"ops") {
                Ok(())
            } else if key == b"ops" {
                bad("expected a whole number or forever")
            } else {
                bad("expected a whole number")
            };
        }
        match TASKS
            .iter()
            .find(|t| t.name.as_bytes() == key)
            .map(|t| t.arg)
        {
            Some(Arg::Number) if number || endless => Ok(()),
            Some(Arg::Number) => {
                bad("expected a whole number of 10 ms ticks (16 digits at most) or forever")
            }
            Some(Arg::FaultOr(words))
                if words.iter().any(|w| w.as_bytes() == value)
                    || FaultKind::CRASHES
                        .iter()
                        .any(|k| k.name().as_bytes() == value) =>
            {
                Ok(())
            }
            Some(Arg::FaultOr(_)) => {
                bad("unknown mode: expected a fault kind, init, bench or misdeclare")
            }
            Some(Arg::None) | None => bad(UNKNOWN_KEY),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_arguments_pass() {
        for line in [
            &b""[..],
            b"ops=2000 seed=7",
            b"  ops=0\tkvload=300 fsload=300 namesload=1 bankload=600 ",
            b"crasher=null-deref",
            b"crasher=bench ops=10",
            b"crasher=init",
            b"ops=forever kvload=forever fsload=forever bankload=10",
        ] {
            assert_eq!(check(line), Ok(()), "{}", String::from_utf8_lossy(line));
        }
        for kind in FaultKind::CRASHES {
            let line = format!("crasher={}", kind.name());
            assert_eq!(check(line.as_bytes()), Ok(()), "{line}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for bad in [
            "ops=abc",
            "ops=-5",
            "seed=xyz",
            "ops=99999999999999999999999",
            "foo=1",
            "kv=1",
            "workload=1",
            "kvload=3s",
            "kvload=00000000000000000300",
            "crasher=bogus",
            "crasher=page-fault",
            "crasher=",
            "ops",
            "ops=",
            "seed=forever",
            "crasher=forever",
            "ops=Forever",
            "kvload=forevermore",
        ] {
            // Among good tokens, the bad one is the one named.
            let line = format!("seed=3 {bad} ops=2");
            let e = check(line.as_bytes()).expect_err(&line);
            assert_eq!(e.token, bad.as_bytes(), "{line}");
            assert!(!e.why.is_empty());
        }
    }
}
