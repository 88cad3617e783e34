//! vmm's own lines on stderr, written so that they can neither kill nor stall the monitor.
//!
//! `std`'s `eprintln!` panics when stderr is gone (a closed pipe: `vmm run 2>&1 | head -1`), which
//! with `panic = "abort"` would kill the VMM, and blocks forever when stderr is a full pipe, which
//! would make the VMM deaf to Ctrl-C and `--timeout`. This crate-local `eprintln!` (declared
//! before every other module, so it shadows the standard one crate-wide) drops the line instead:
//! on an error, and on an interrupted write once the VM is being stopped ([`crate::kick::kicked`]).

use std::io::Write;

/// Writes a whole buffer to `out`; gives up (returning false) on an error, or once the VM is
/// being stopped (a kick interrupts a blocked write; `kick::stop_thread` repeats the kick). Used for stderr here and for the guest console in `devices::serial`.
pub fn write_unless_stopping(out: &mut impl Write, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        if crate::kick::kicked() {
            return false;
        }
        match out.write(buf) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if crate::kick::kicked() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Writes one formatted line to stderr, never panicking or blocking past a stop request.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut line = args.to_string();
    line.push('\n');
    let _ = write_unless_stopping(&mut std::io::stderr().lock(), line.as_bytes());
}

/// `eprintln!` that never panics (see the module doc).
macro_rules! eprintln {
    ($($arg:tt)*) => {
        $crate::log::stderr_line(format_args!($($arg)*))
    };
}
