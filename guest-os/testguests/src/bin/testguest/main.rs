//! The test guest of our kind (region manifest, hypercalls). The command line picks what it does;
//! the integration tests check what it prints and how `vmm` exits.
//!
//! `flood=N` is checked first and wins over any mode: N lines `flood line <i> ...`, then exit 0.
//! Otherwise `mode=`:
//!
//! ```text
//!  hello (default)  testguest: hello / cmdline=.. / backend=.. / memmap=<entries> /
//!                   server <name> state=<base>+<size> scratch=<base>+<size> (hex, per server);
//!                   LOG "testguest log line"; EXIT with exit=N (default 0)
//!  echo             ready; read COM1 up to '\n'; got: <line>; EXIT 0
//!  regions          write and read back (server index + 1) in every page of every server
//!                   region; regions ok; EXIT 0
//!  spin             spinning; busy loop forever
//!  halt             halting; cli; hlt forever
//!  triple-fault     empty IDT, then ud2
//!  sse              xorps in ring 0 (stops a VM on KVM-PVM); sse ok; EXIT 0
//!  bad-hypercall    hypercall number 0xdead
//!  bad-exit         EXIT with status 200
//!  bad-log          LOG of 16 bytes at 0xffff_ffff_0000
//!  long-log         LOG of 100000 bytes
//!  evil-log         LOG with an escape sequence, a newline and U+202E; EXIT 0
//!  byte-hypercall   1-byte write to the hypercall port
//!  read-hypercall   4-byte read of the hypercall port
//!  user-hypercall   EXIT 0 from ring 3
//!  unknown-port     1-byte write to port 0x99
//!  chaos            chaos=SEED: up to 200 random hypercalls and garbage in the monitor page
//! ```
//!
//! The guest's own exit statuses: 0 success, [`BAD_BOOT_INFO`], [`BAD_MODE`], [`CHECK_FAILED`],
//! and [`NOT_STOPPED`] when the VMM resumed the guest after something it must refuse.
#![no_std]
#![no_main]

mod chaos;
mod faults;
mod manifest;
mod modes;

use bare::{boot, cmdline, hypercall, serial};

bare::entry!(main);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    bare::panic::exit_with_status()
}

/// No valid boot-info block at entry.
pub const BAD_BOOT_INFO: u64 = 1;
/// The command line names a mode that does not exist.
pub const BAD_MODE: u64 = 2;
/// A check in the guest failed (e.g. `regions` read back the wrong byte).
pub const CHECK_FAILED: u64 = 3;
/// The VMM resumed the guest after a request it must refuse.
pub const NOT_STOPPED: u64 = 4;

fn main(boot_info: u64, _rsi: u64) -> ! {
    let Some(info) = boot::boot_info(boot_info) else {
        serial::line(b"testguest: no valid boot-info block (another abi version?)");
        hypercall::exit(BAD_BOOT_INFO)
    };
    let cmdline = boot::cmdline(info);
    if let Some(lines) = testguests::number_arg(b"testguest", cmdline, b"flood") {
        testguests::flood(lines);
        hypercall::exit(0)
    }
    match cmdline::arg(cmdline, b"mode").unwrap_or(b"hello") {
        b"hello" => modes::hello(info, cmdline),
        b"echo" => modes::echo(),
        b"regions" => modes::regions(info),
        b"spin" => modes::spin(),
        b"halt" => modes::halt(),
        b"triple-fault" => faults::triple_fault(),
        b"sse" => faults::sse(),
        b"bad-hypercall" => faults::bad_hypercall(),
        b"bad-exit" => faults::bad_exit(),
        b"bad-log" => faults::bad_log(),
        b"long-log" => faults::long_log(),
        b"evil-log" => faults::evil_log(),
        b"byte-hypercall" => faults::byte_hypercall(),
        b"read-hypercall" => faults::read_hypercall(),
        b"user-hypercall" => faults::user_hypercall(),
        b"unknown-port" => faults::unknown_port(),
        b"chaos" => match cmdline::dec_arg(cmdline, b"chaos") {
            Some(Ok(seed)) => chaos::chaos(seed),
            _ => chaos::chaos(1),
        },
        other => {
            serial::write(b"testguest: unknown mode ");
            serial::line(other);
            hypercall::exit(BAD_MODE)
        }
    }
}
