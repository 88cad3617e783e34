//! The only way a ring-3 task (server or app) talks to the kernel.
//!
//! - [`sys`]: the system-call trap (`int3`) and the register convention of [`abi::ipc`];
//! - [`ipc`]: typed wrappers: send, receive, call, reply, reply-and-receive, notifications,
//!   timers, the console, the workload report, stopping the VM;
//! - [`server`]: the task loop `receive -> handle -> reply` every server runs;
//! - [`state`]: [`state::StaticCell`], which hands a server its state in its state arena;
//! - [`console`]: text and numbers on the console (no `core::fmt` needed);
//! - [`inject`]: deliberate faults: the ones the kernel hands a task with a message
//!   (`vmm run --fault`), executed here in the task's own code, and the test server's;
//! - [`start`]: whether this start of the task is a restart after a crash;
//! - the `_start` entry ([`entry!`]) and a panic handler that reports the panic to the kernel,
//!   which stops the task and tells the VMM (fault cause "panic").
//!
//! Rules: servers and apps hold no `unsafe`; every `unsafe` here says why it holds; nothing
//! here allocates.
#![cfg_attr(not(test), no_std)]

pub mod console;
pub mod inject;
pub mod ipc;
pub mod server;
pub mod start;
pub mod state;
pub mod sys;

#[doc(hidden)]
pub use abi;
pub use abi::ipc::{Error, MSG_WORDS, Message, TaskId};
pub use ipc::Received;

/// Defines the task's `_start`: clears the frame pointer and calls `$main(me, arg0, arg1)`
/// (`fn(TaskId, u64, u64) -> !`) with the values the kernel put in rdi, rsi and rdx, after
/// noting whether this is a restart (rcx = 1, see [`start`]); the stack pointer is already at
/// the top of the task's scratch region, a fresh stack. The only `unsafe` a task needs is in
/// this expansion (allowed there, so tasks can `#![deny(unsafe_code)]`).
#[macro_export]
macro_rules! entry {
    ($main:ident) => {
        #[allow(unsafe_code)]
        mod userlib_start {
            /// The task's entry point (first in its text area).
            #[unsafe(no_mangle)]
            #[unsafe(naked)]
            #[unsafe(link_section = ".text._start")]
            pub unsafe extern "C" fn _start() -> ! {
                ::core::arch::naked_asm!(
                    "xor ebp, ebp",
                    "call {main}",
                    "ud2",
                    // Text base + 16: the `ud2` system-call stub (`userlib::sys::null_via_ud2`).
                    ".balign 16",
                    "ud2",
                    "ret",
                    main = sym userlib_entry_main,
                )
            }

            extern "C" fn userlib_entry_main(me: u64, arg0: u64, arg1: u64, restart: u64) -> ! {
                $crate::start::entered(restart != 0);
                super::$main($crate::TaskId(me), arg0, arg1)
            }
        }
    };
}

/// Puts the server's request table (`$table`, its `*-api` crate's `REQUESTS`) into the binary as
/// a note in section `.crashmon.requests`; the image build copies it into the kernel image,
/// where the VMM reads it ([`abi::requests`]). One per server binary ([`server_main!`] does it).
#[macro_export]
macro_rules! requests_note {
    ($table:expr) => {
        #[used]
        #[allow(unsafe_code)]
        #[unsafe(link_section = ".crashmon.requests")]
        static USERLIB_REQUESTS_NOTE: $crate::abi::requests::RequestsNote =
            $crate::abi::requests::RequestsNote::new($table);
    };
}

/// A whole server task: its entry, its request table `$requests` (its `*-api` crate's
/// `REQUESTS`, carried in the image), its state of type `$state` in the state arena, and the
/// loop answering every message with `$handle(&mut state, sender, &msg) -> Option<Message>`;
/// prints `<$name>: ready` first. With `init = $init`, `$init(&mut state)` runs first, at every
/// start and restart, before the first receive ([`server::run_with`]).
#[macro_export]
macro_rules! server_main {
    ($name:literal, $state:ty, $requests:expr, init = $init:expr, $handle:expr) => {
        $crate::entry!(userlib_server_main);
        $crate::requests_note!($requests);

        static USERLIB_SERVER_STATE: $crate::state::StaticCell<$state> =
            $crate::state::StaticCell::new();

        fn userlib_server_main(_me: $crate::TaskId, _arg0: u64, _arg1: u64) -> ! {
            $crate::server::run_with(&USERLIB_SERVER_STATE, $name, $init, $handle)
        }
    };
    // After the arm with `init =`: an `expr` fragment would swallow `init = ...` as an
    // assignment.
    ($name:literal, $state:ty, $requests:expr, $handle:expr) => {
        $crate::server_main!($name, $state, $requests, init = |_| {}, $handle);
    };
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut text = console::Line::new();
    text.push(b"panicked at ");
    if let Some(loc) = info.location() {
        text.push(loc.file().as_bytes());
        text.push(b":");
        text.push_dec(u64::from(loc.line()));
    }
    ipc::panic(text.as_bytes())
}
