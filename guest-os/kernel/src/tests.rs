//! Scenario tests of the kernel's state machine: tasks issue system calls by setting their
//! saved registers, as the trap entry would leave them.

use crate::kernel::{Effect, Kernel, TaskSetup};
use crate::task::State;
use crate::umem::Regions;
use abi::ipc::{Error, NOTIFICATION_LABEL, Sys, TaskId};
use abi::manifest::Range;
use abi::monitor::FaultCause;

const SERVER: usize = 0;
const CLIENT: usize = 1;
const OTHER: usize = 2;

fn setup(priority: u8, server: bool) -> TaskSetup {
    TaskSetup {
        name: *b"t\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        priority,
        server,
        may_exit: !server,
        regions: Regions {
            text: Range::new(0x1000, 0x1000),
            state: Range::new(0x10000, 0x1000),
            stack: Range::new(0x20000, 0x1000),
        },
        entry: 0x1000,
        stack_top: 0x21000,
        args: [7, 8],
    }
}

/// Server (priority 1), client and another client (priority 2).
fn kernel() -> Kernel<4> {
    let mut k = Kernel::new();
    k.add_task(&setup(1, true));
    k.add_task(&setup(2, false));
    k.add_task(&setup(2, false));
    k
}

/// Task `t` makes call `sys` with target `rdi`, label and words; returns the effect.
fn sys(k: &mut Kernel<4>, t: usize, sys: Sys, rdi: u64, label: u64, words: [u64; 6]) -> Effect {
    assert_eq!(k.current, Some(t), "task {t} is not running");
    let r = &mut k.tasks[t].regs;
    r.rax = sys as u64;
    r.rdi = rdi;
    r.rsi = label;
    r.set_words(words);
    let e = k.syscall();
    k.schedule(false);
    e
}

fn server_receives(k: &mut Kernel<4>) {
    assert_eq!(k.schedule(false), Some(SERVER));
    sys(k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(k.tasks[SERVER].state, State::Receiving);
}

#[test]
fn a_call_is_delivered_and_answered_in_registers() {
    let mut k = kernel();
    server_receives(&mut k);
    assert_eq!(k.current, Some(CLIENT));
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 42, [1, 2, 3, 4, 5, 6]);
    assert_eq!(k.current, Some(SERVER), "the server runs first");
    let r = k.tasks[SERVER].regs;
    assert_eq!((r.rax, r.rdi, r.rsi), (0, k.id(CLIENT).0, 42));
    assert_eq!(r.words(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(k.tasks[SERVER].messages, 1);
    let client = k.id(CLIENT).0;
    sys(&mut k, SERVER, Sys::ReplyRecv, client, 99, [9; 6]);
    assert_eq!(k.tasks[SERVER].state, State::Receiving);
    assert!(matches!(k.current, Some(CLIENT | OTHER)));
    assert_eq!(k.tasks[CLIENT].state, State::Runnable);
    let r = k.tasks[CLIENT].regs;
    assert_eq!((r.rax, r.rsi, r.words()), (0, 99, [9; 6]));
}

#[test]
fn senders_queue_until_the_server_receives() {
    let mut k = kernel();
    k.schedule(false);
    // The server has not received yet: it is runnable. Let the clients run first.
    k.block(SERVER, State::Runnable);
    k.queues.remove(SERVER);
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    sys(&mut k, OTHER, Sys::Send, server, 2, [0; 6]);
    assert_eq!(k.current, None, "everyone is blocked");
    k.queues.insert(SERVER);
    k.schedule(false);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(k.tasks[SERVER].regs.rsi, 1);
    assert_eq!(
        k.tasks[CLIENT].state,
        State::AwaitingReply {
            from: SERVER as u16
        }
    );
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(k.tasks[SERVER].regs.rsi, 2);
    assert_eq!(
        k.tasks[OTHER].state,
        State::Runnable,
        "a plain send needs no reply"
    );
    assert_eq!(k.tasks[SERVER].messages, 2);
}

#[test]
fn bad_targets_fail_with_their_error() {
    let mut k = kernel();
    server_receives(&mut k);
    let stale = TaskId::new(SERVER as u16, 5).0;
    sys(&mut k, CLIENT, Sys::Call, stale, 1, [0; 6]);
    let r = k.tasks[CLIENT].regs;
    assert_eq!(
        (r.rax, r.rdi),
        (Error::PeerRestarted as u64, k.id(SERVER).0)
    );
    sys(&mut k, CLIENT, Sys::Call, TaskId::new(9, 0).0, 1, [0; 6]);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::NoSuchTask as u64);
    let me = k.id(CLIENT).0;
    sys(&mut k, CLIENT, Sys::Send, me, 1, [0; 6]);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::SelfSend as u64);
    let other = k.id(OTHER).0;
    sys(&mut k, CLIENT, Sys::Reply, other, 1, [0; 6]);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::NoReplyPending as u64);
    sys(&mut k, CLIENT, Sys::Report, 0, 0, [0; 6]);
    sys(&mut k, CLIENT, Sys::Null, 0, 0, [0; 6]);
    k.tasks[CLIENT].regs.rax = 77;
    assert_eq!(k.syscall(), Effect::None);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::UnknownCall as u64);
}

#[test]
fn a_crash_fails_the_calls_it_held_and_reports_the_cause() {
    let mut k = kernel();
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    // The server holds CLIENT's call; OTHER queues behind it.
    k.current = Some(OTHER);
    sys(&mut k, OTHER, Sys::Call, server, 2, [0; 6]);
    k.current = Some(SERVER);
    k.tasks[SERVER].regs.rip = 0xbad;
    let effect = k.exception(14, 4, 0, false);
    assert_eq!(effect, Effect::Fault(None));
    let record = k.last_fault;
    assert_eq!(record.cause, FaultCause::PageFault as u32);
    assert_eq!((record.task, record.rip, record.messages), (0, 0xbad, 1));
    assert_eq!(k.tasks[SERVER].state, State::Crashed);
    for t in [CLIENT, OTHER] {
        assert_eq!(k.tasks[t].state, State::Runnable);
        assert_eq!(k.tasks[t].regs.rax, Error::PeerCrashed as u64);
    }
    assert!(!k.queues.contains(SERVER));
    k.schedule(false);
    assert_ne!(k.current, Some(SERVER));
    let c = k.current.expect("a client runs");
    sys(&mut k, c, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.tasks[c].regs.rax, Error::PeerCrashed as u64);
}

#[test]
fn a_server_over_budget_is_a_hang_but_blocked_time_is_not_counted() {
    let mut k = kernel();
    k.budget = 3;
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.current, Some(SERVER));
    // Ticks that interrupt the idle loop or other tasks are not the server's.
    k.current = Some(OTHER);
    for _ in 0..10 {
        assert_eq!(k.tick(true).0, Effect::None);
    }
    k.current = Some(SERVER);
    for _ in 0..3 {
        assert_eq!(k.tick(true).0, Effect::None);
    }
    let (effect, _) = k.tick(true);
    assert_eq!(effect, Effect::Fault(None));
    let record = k.last_fault;
    assert_eq!(record.cause, FaultCause::BudgetOverrun as u32);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::PeerCrashed as u64);
}

#[test]
fn timers_and_notifications_wake_a_receiver() {
    let mut k = kernel();
    server_receives(&mut k);
    k.current = Some(SERVER);
    k.tasks[SERVER].state = State::Runnable;
    sys(&mut k, SERVER, Sys::Timer, 0, 0, [2, 0b100, 0, 0, 0, 0]);
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(k.tasks[SERVER].state, State::Receiving);
    k.tick(false);
    assert_eq!(k.tasks[SERVER].state, State::Receiving);
    k.tick(false);
    let r = k.tasks[SERVER].regs;
    assert_eq!(
        (r.rdi, r.rsi, r.rdx),
        (TaskId::KERNEL.0, NOTIFICATION_LABEL, 0b100)
    );
    assert_eq!(k.schedule(false), Some(SERVER));
    // A notification sent while it is busy waits for its next receive.
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Notify, server, 0, [1, 0, 0, 0, 0, 0]);
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(k.tasks[SERVER].regs.rdx, 1);
}

#[test]
fn console_pointers_are_checked_and_privileged_calls_refused() {
    let mut k = kernel();
    k.schedule(false);
    let e = sys(
        &mut k,
        SERVER,
        Sys::ConsoleWrite,
        0,
        0,
        [0x10000, 16, 0, 0, 0, 0],
    );
    assert!(matches!(e, Effect::Console(c) if c.addr == 0x10000 && c.len == 16));
    let e = sys(
        &mut k,
        SERVER,
        Sys::ConsoleWrite,
        0,
        0,
        [0x100000, 16, 0, 0, 0, 0],
    );
    assert_eq!(e, Effect::None);
    assert_eq!(k.tasks[SERVER].regs.rax, Error::BadArgument as u64);
    let e = sys(&mut k, SERVER, Sys::VmExit, 0, 0, [0; 6]);
    assert_eq!(e, Effect::None);
    assert_eq!(k.tasks[SERVER].regs.rax, Error::NotPermitted as u64);
    k.current = Some(CLIENT);
    assert_eq!(
        sys(&mut k, CLIENT, Sys::VmExit, 0, 0, [200, 0, 0, 0, 0, 0]),
        Effect::Exit(63)
    );
}

proptest::proptest! {
    /// Any sequence of system calls, ticks and faults keeps the kernel's books straight: a
    /// ready task is runnable, a sender is queued at its target, a crashed task stays out.
    #[test]
    fn random_calls_keep_invariants(
        ops in proptest::collection::vec((0u64..16, 0u16..4, 0u64..3, 0u8..10), 0..200),
    ) {
        let mut k = kernel();
        k.budget = 5;
        k.schedule(false);
        for (call, target, generation, extra) in ops {
            match extra {
                0 => { k.tick(true); k.schedule(true); }
                1 if k.current.is_some() => { k.exception(13, 0, 0, false); k.schedule(false); }
                _ => {
                    if let Some(t) = k.current {
                        let r = &mut k.tasks[t].regs;
                        r.rax = call;
                        r.rdi = TaskId::new(target, generation as u32).0;
                        r.rdx = 1;
                        r.r8 = 1;
                        k.syscall();
                        k.schedule(false);
                    } else {
                        k.tick(false);
                        k.schedule(false);
                    }
                }
            }
            for t in 0..k.count {
                let task = &k.tasks[t];
                if k.queues.contains(t) {
                    proptest::prop_assert_eq!(task.state, State::Runnable);
                }
                if task.state == State::Runnable {
                    proptest::prop_assert!(k.queues.contains(t));
                }
                if let State::Sending { to, .. } = task.state {
                    proptest::prop_assert!(k.tasks[usize::from(to)].senders & (1 << t) != 0);
                }
            }
            if let Some(c) = k.current {
                proptest::prop_assert_eq!(k.tasks[c].state, State::Runnable);
            }
        }
    }
}
