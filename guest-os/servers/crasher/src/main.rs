//! The crasher: a test server that takes one deliberate fault on command, so that tests can
//! check the kernel confines it; and the trap benchmark of docs/kernel.md.
//!
//! Its mode comes from the command line, `crasher=MODE` (the kernel packs the value into its
//! arguments): `page-fault`, `illegal`, `divide`, `gp`, `stack`, `panic` or `hang` take that
//! fault while handling a message (so the fault record counts it): the workload's POKE call at
//! the midpoint of its run (the kernel then fails that call with `PeerCrashed`), or else a
//! timer's notification [`FALLBACK_TICKS`] after boot. `bench` times the null system call
//! through `int3`, the `ud2` stub and `int 0x80` and prints the results. Without a fault mode it
//! answers every POKE (interface: `crasher-api`).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::entry!(main);

use abi::ipc::{Message, REPLY_OK};
use userlib::console::Line;
use userlib::{TaskId, inject, ipc, sys};

/// Ticks between boot and the fault when nobody pokes the crasher first (a workload of zero
/// requests).
const FALLBACK_TICKS: u64 = 100;
/// Null calls per trap kind in `bench`.
const BENCH_CALLS: u64 = 2000;

fn main(_me: TaskId, a0: u64, a1: u64) -> ! {
    let mode = abi::ipc::unpack_name([a0, a1]);
    let len = mode.iter().position(|&b| b == 0).unwrap_or(16);
    let mode = &mode[..len];
    if mode == b"bench" {
        bench();
    } else if !mode.is_empty() && ipc::timer(FALLBACK_TICKS, 1).is_err() {
        userlib::console::println(b"crasher: no timer");
    }
    let faults = !mode.is_empty() && mode != b"bench";
    let mut incoming = ipc::recv();
    loop {
        if faults {
            fault(mode);
        }
        let reply = match incoming.msg.label {
            crasher_api::op::POKE => Message::new(REPLY_OK, [0; 6]),
            _ => Message::new(1, [0; 6]),
        };
        incoming = match incoming.notification() {
            Some(_) => ipc::recv(),
            None => ipc::reply_recv(incoming.sender, &reply),
        };
    }
}

fn fault(mode: &[u8]) {
    match mode {
        b"page-fault" => {
            let _ = inject::null_read();
        }
        b"illegal" => inject::illegal_instruction(),
        b"divide" => {
            let _ = inject::divide_by_zero(ipc::ticks());
        }
        b"gp" => inject::privileged_instruction(),
        b"stack" => inject::stack_overflow(),
        b"panic" => panic!("deliberate"),
        b"hang" => loop {
            core::hint::spin_loop();
        },
        _ => {
            let mut l = Line::new();
            l.push(b"crasher: unknown mode ").push(mode);
            l.print();
        }
    }
}

/// `crasher: trap int3: 2000 null calls in 40 ms = 200 us/call`, and the same for the others.
fn bench() {
    type Trap = fn() -> u64;
    let kinds: [(&[u8], Trap); 3] = [
        (b"int3", || {
            sys::call(abi::ipc::Sys::Null, 0, 0, [0; 6]).status
        }),
        (b"ud2 stub", sys::null_via_ud2),
        // Last: on KVM-PVM this one raises #UD, which stops the crasher.
        (b"int 0x80", sys::null_via_int80),
    ];
    for (name, trap) in kinds {
        let start = ipc::ticks();
        let mut failures = 0;
        for _ in 0..BENCH_CALLS {
            if trap() != 0 {
                failures += 1;
            }
        }
        let ms = (ipc::ticks() - start) * 10;
        let mut l = Line::new();
        l.push(b"crasher: trap ")
            .push(name)
            .push(b": ")
            .push_dec(BENCH_CALLS);
        l.push(b" null calls in ").push_dec(ms).push(b" ms = ");
        l.push_dec(ms * 1000 / BENCH_CALLS)
            .push(b" us/call, failures ")
            .push_dec(failures);
        l.print();
    }
}
