//! The crasher: a test server that takes one deliberate fault on command, so that tests can
//! check the kernel confines it; and the trap benchmark of docs/kernel.md.
//!
//! Its mode comes from the command line, `crasher=MODE` (the kernel packs the value into its
//! arguments): a fault kind (`null-deref`, `illegal-insn`, `div-zero`, `gp`, `stack-overflow`,
//! `panic`, `hang`, `corrupt-state`: the names `--fault` takes) takes that fault while handling
//! a message (so the fault record counts it): the workload's POKE call at the midpoint of its
//! run (the kernel then fails that call with `PeerCrashed`), or else a timer's notification
//! [`FALLBACK_TICKS`] after boot. `bench` times the null system call
//! through `int3`, the `ud2` stub and `int 0x80` and prints the results. Without a fault mode it
//! answers every POKE (interface: `crasher-api`), counting them in its state.
//!
//! `init` crashes it while it initialises, before its first boundary. `misdeclare` makes its
//! read-only PING write its state (a broken declaration, for the VMM to catch). After a restart (the VMM
//! recovered it) the mode's fault is not taken again: the crasher then answers like one without
//! a mode. Faults planned by `vmm run --fault crasher:KIND@N` are taken
//! by userlib's loop like in any server.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::entry!(main);
userlib::requests_note!(crasher_api::REQUESTS);

use abi::ipc::{Message, REPLY_OK};
use userlib::console::Line;
use userlib::server::{Server, serve};
use userlib::state::StaticCell;
use userlib::{TaskId, inject, ipc, sys};
use zerocopy::FromZeros;

/// Ticks between boot and the fault when nobody pokes the crasher first (a workload of zero
/// requests).
const FALLBACK_TICKS: u64 = 100;
/// Null calls per trap kind in `bench`.
const BENCH_CALLS: u64 = 2000;

/// The crasher's state (in its state arena).
#[derive(Debug, FromZeros)]
#[repr(C)]
struct Pokes {
    /// POKEs answered.
    count: u64,
    /// PINGs answered, counted only with `crasher=misdeclare` (a read-only request that
    /// writes, on purpose).
    pings: u64,
}

static STATE: StaticCell<Pokes> = StaticCell::new();

struct Crasher {
    state: &'static mut Pokes,
    /// The fault mode of the command line (empty: none), `None` once it no longer applies.
    mode: Option<[u8; 16]>,
    /// `crasher=misdeclare`: PING writes the state it is declared not to change.
    misdeclare: bool,
}

impl Crasher {
    fn take_fault(&self) {
        if let Some(mode) = &self.mode {
            let len = mode.iter().position(|&b| b == 0).unwrap_or(16);
            fault(&mode[..len]);
        }
    }
}

impl Server for Crasher {
    fn handle(&mut self, _: TaskId, msg: &Message) -> Option<Message> {
        self.take_fault();
        Some(match msg.label {
            crasher_api::op::POKE => {
                self.state.count += 1;
                Message::new(REPLY_OK, [self.state.count, 0, 0, 0, 0, 0])
            }
            crasher_api::op::PING => {
                if self.misdeclare {
                    self.state.pings += 1;
                }
                Message::new(REPLY_OK, [self.state.count, 0, 0, 0, 0, 0])
            }
            _ => Message::new(1, [0; 6]),
        })
    }

    fn notified(&mut self, _: u64) {
        self.take_fault();
    }
}

fn main(_me: TaskId, a0: u64, a1: u64) -> ! {
    let Some(state) = STATE.take() else {
        ipc::panic(b"crasher state taken twice")
    };
    let packed = abi::ipc::unpack_name([a0, a1]);
    let len = packed.iter().position(|&b| b == 0).unwrap_or(16);
    let mode = &packed[..len];
    let restarted = userlib::start::restarted();
    // Once only: after a restart (the VMM recovered it) the crasher answers like one without a
    // mode. (The bench's last trap stops it on KVM-PVM.)
    let per_message =
        !mode.is_empty() && !matches!(mode, b"bench" | b"init" | b"misdeclare") && !restarted;
    if !restarted {
        match mode {
            b"bench" => bench(),
            // Crash while initialising, before the first boundary.
            b"init" => {
                let _ = inject::null_read();
            }
            _ => {}
        }
    }
    if per_message && ipc::timer(FALLBACK_TICKS, 1).is_err() {
        userlib::console::println(b"crasher: no timer");
    }
    let mut crasher = Crasher {
        state,
        mode: per_message.then_some(packed),
        misdeclare: mode == b"misdeclare",
    };
    serve(&mut crasher)
}

/// Takes the fault of `mode`, a fault kind's name (the kernel refuses any other at boot), the
/// way userlib takes a planned one.
fn fault(mode: &[u8]) {
    let kind = core::str::from_utf8(mode)
        .ok()
        .and_then(abi::fault::FaultKind::from_name);
    match kind {
        Some(kind) => inject::planned(kind as u64),
        None => {
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
