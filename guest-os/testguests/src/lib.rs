//! What the test guests share: command-line numbers, the serial flood and the plain guest's
//! whole program (booted as `plainguest` at 0x100000 and as `plainlow` at 0x10000).
//!
//! Same rules as every ring-0 crate here: no `core::fmt`, no floats, no panics on paths the
//! command line controls, a `// SAFETY:` comment on every `unsafe` block.
#![cfg_attr(not(test), no_std)]

pub mod plain;

use bare::{cmdline, serial};

/// `key=N` from the command line; a value that is not a decimal number is reported on COM1 as
/// `<program>: ignoring bad <key>=<value>` and counts as absent.
pub fn number_arg(program: &[u8], cmdline: &[u8], key: &[u8]) -> Option<u64> {
    match cmdline::dec_arg(cmdline, key)? {
        Ok(n) => Some(n),
        Err(bad) => {
            serial::write(program);
            serial::write(b": ignoring bad ");
            serial::write(key);
            serial::write(b"=");
            serial::line(bad);
            None
        }
    }
}

/// Prints `lines` numbered lines of about 60 characters:
/// `flood line <i> abcdefghijklmnopqrstuvwxyz0123456789 ...`.
pub fn flood(lines: u64) {
    for i in 0..lines {
        serial::write(b"flood line ");
        serial::write_dec(i);
        serial::line(b" abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN");
    }
}
