//! Scenario tests of the kernel's state machine: tasks issue system calls by setting their
//! saved registers, as the trap entry would leave them.

use crate::kernel::{Effect, Kernel, Platform, TaskSetup};
use crate::task::{PlannedFault, State};
use crate::umem::Regions;
use abi::fault::FaultCause;
use abi::fault::{AFTER_SEND, FaultKind};
use abi::ipc::{Error, NOTIFICATION_LABEL, STATE_CANARY, Sys, TaskId};
use abi::manifest::Range;
use abi::monitor::{
    CrashContext, FaultRecord, NO_CALLER, SentRecord, SentWindow, VerdictAction, WINDOW_MAX,
};

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

/// The tests' kernel: four tasks, task memory whose canaries read intact except at `corrupted`.
type K = Kernel<4, TestPlatform>;

/// The platform of the tests: every canary reads intact but the one at `corrupted` (0: none).
#[derive(Clone, Copy, Debug, Default)]
struct TestPlatform {
    corrupted: u64,
    read_only: [u64; 4],
    record: FaultRecord,
    /// Every INJECT call: task, phase, word, message (at most 8 kept).
    injects: [(u32, u32, u64, u64); 8],
    inject_count: usize,
    /// The answer to a START; a register the VMM flips (index in rax.. order, bit) with it.
    reply: crate::kernel::InjectReply,
    flip_rbx: u64,
    step: abi::monitor::StepRecord,
}

impl TestPlatform {
    fn injection(
        &mut self,
        task: u32,
        phase: u32,
        word: u64,
        message: u64,
        regs: Option<&mut crate::task::SavedRegs>,
    ) -> crate::kernel::InjectReply {
        if let Some(slot) = self.injects.get_mut(self.inject_count) {
            *slot = (task, phase, word, message);
        }
        self.inject_count += 1;
        if let Some(regs) = regs {
            regs.rbx ^= self.flip_rbx;
            regs.rcx ^= self.flip_rbx;
        }
        if phase == abi::monitor::InjectRecord::START {
            self.reply
        } else {
            crate::kernel::InjectReply::default()
        }
    }
}

impl Platform for TestPlatform {
    fn inject(
        &mut self,
        task: u32,
        phase: u32,
        word: u64,
        message: u64,
        regs: Option<&mut crate::task::SavedRegs>,
    ) -> crate::kernel::InjectReply {
        self.injection(task, phase, word, message, regs)
    }

    fn step_outcome(&mut self, step: abi::monitor::StepRecord) {
        self.step = step;
    }

    fn read_u64(&self, addr: u64) -> u64 {
        if addr != 0 && addr == self.corrupted {
            0
        } else {
            STATE_CANARY
        }
    }

    fn read_only(&self, task: usize) -> u64 {
        self.read_only.get(task).copied().unwrap_or(0)
    }

    fn fault_record(&self) -> &FaultRecord {
        &self.record
    }

    fn fault_record_mut(&mut self) -> &mut FaultRecord {
        &mut self.record
    }
}

/// Server (priority 1), client and another client (priority 2).
fn kernel() -> K {
    let mut k = Kernel::on(TestPlatform::default());
    k.add_task(&setup(1, true));
    k.add_task(&setup(2, false));
    k.add_task(&setup(2, false));
    k
}

/// Task `t` makes call `sys` with target `rdi`, label and words; returns the effect.
fn sys(k: &mut K, t: usize, sys: Sys, rdi: u64, label: u64, words: [u64; 6]) -> Effect {
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

fn server_receives(k: &mut K) {
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
    assert_eq!(r.rdi, server, "the reply names the replier");
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
    // An app's REPORT hands its figures to the kernel (ops, errors, retries, lost, then
    // mismatches in r12).
    k.tasks[CLIENT].regs.rax = 99;
    let e = sys(&mut k, CLIENT, Sys::Report, 0, 0, [40, 1, 2, 3, 4, 77]);
    assert_eq!((e, k.tasks[CLIENT].regs.rax), (Effect::Report, 0));
    assert_eq!(
        (
            k.report.ops,
            k.report.errors,
            k.report.retries,
            k.report.lost,
            k.report.mismatches
        ),
        (40, 1, 2, 3, 4)
    );
    k.tasks[CLIENT].regs.rax = 99;
    assert_eq!(sys(&mut k, CLIENT, Sys::Null, 0, 0, [0; 6]), Effect::None);
    assert_eq!(k.tasks[CLIENT].regs.rax, 0, "NULL succeeds");
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
    let record = k.last_fault();
    assert_eq!(record.cause, FaultCause::PageFault as u32);
    assert_eq!((record.task, record.rip, record.messages), (0, 0xbad, 1));
    assert_eq!(k.tasks[SERVER].state, State::Crashed);
    // Nothing is decided before the VMM's verdict; the VMM says: leave it stopped.
    assert_eq!(
        k.tasks[CLIENT].state,
        State::AwaitingReply {
            from: SERVER as u16
        }
    );
    k.recover(SERVER, VerdictAction::Stop, 0);
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
    let record = k.last_fault();
    assert_eq!(record.cause, FaultCause::BudgetOverrun as u32);
    k.recover(SERVER, VerdictAction::Stop, 0);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::PeerCrashed as u64);
}

/// A hang ends the hung server's slice without a rotation: restarted, it runs first, as after
/// any other fault, even with a peer of its priority ready (the recovery latency of a hang is
/// the same path as an exception's).
#[test]
fn a_hung_server_restarted_runs_first_like_after_any_fault() {
    let mut k = Kernel::on(TestPlatform::default());
    k.add_task(&setup(1, true));
    k.add_task(&setup(2, false));
    k.add_task(&setup(1, true));
    k.queues.remove(OTHER);
    k.budget = 1;
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.current, Some(SERVER));
    k.queues.insert(OTHER);
    assert_eq!(
        k.tick(true),
        (Effect::None, true),
        "a plain tick ends the slice"
    );
    let (effect, rotate) = k.tick(true);
    assert_eq!(effect, Effect::Fault(None));
    k.recover(SERVER, VerdictAction::Rollback, 0);
    assert_eq!(
        k.schedule(rotate),
        Some(SERVER),
        "the restarted server runs first"
    );
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::PeerRestarted as u64);
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

/// The server (task 0) has received CLIENT's call (message 1) after one boundary, and crashes
/// on it; OTHER is queued behind it.
fn crashed_on_a_call() -> K {
    let mut k = kernel();
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 5, [1; 6]);
    k.current = Some(OTHER);
    sys(&mut k, OTHER, Sys::Call, server, 6, [2; 6]);
    k.current = Some(SERVER);
    k.exception(0, 0, 0, false);
    k
}

#[test]
fn boundaries_are_counted_and_reported_to_the_vmm() {
    let mut k = kernel();
    assert_eq!(k.schedule(false), Some(SERVER));
    assert_eq!(
        sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]),
        Effect::Boundary {
            task: SERVER,
            label: 0
        }
    );
    assert_eq!(k.tasks[SERVER].boundaries, 1);
    // Apps have no boundaries.
    let other = k.id(OTHER).0;
    k.current = Some(CLIENT);
    assert_eq!(
        sys(&mut k, CLIENT, Sys::Send, other, 1, [0; 6]),
        Effect::None
    );
    k.current = Some(OTHER);
    assert_eq!(sys(&mut k, OTHER, Sys::Recv, 0, 0, [0; 6]), Effect::None);
    assert_eq!(k.tasks[OTHER].boundaries, 0);
}

#[test]
fn a_rollback_restarts_the_server_and_tells_the_caller_in_flight() {
    let mut k = crashed_on_a_call();
    let ctx = k.crash_context(SERVER);
    assert_eq!(
        ctx,
        CrashContext {
            boundary: 1,
            label: 5,
            caller: CLIENT as u32,
            flags: CrashContext::SERVER,
            text_addr: 0,
            text_len: 0,
        }
    );
    k.recover(SERVER, VerdictAction::Rollback, 0);
    let s = &k.tasks[SERVER];
    assert_eq!(
        (s.state, s.generation, s.restarted),
        (State::Runnable, 1, true)
    );
    assert_eq!((s.regs.rip, s.regs.rsp, s.regs.rcx), (0x1000, 0x21000, 1));
    assert_eq!((s.regs.rsi, s.regs.rdx), (7, 8), "its start arguments");
    assert_eq!(s.regs.rdi, k.id(SERVER).0);
    let c = k.tasks[CLIENT].regs;
    assert_eq!(
        (c.rax, c.rdi),
        (Error::PeerRestarted as u64, k.id(SERVER).0)
    );
    assert_eq!(k.tasks[CLIENT].state, State::Runnable);
    assert_eq!(
        k.tasks[OTHER].state,
        State::Sending {
            to: SERVER as u16,
            call: true
        },
        "queued callers stay queued"
    );
    // The restarted server gets OTHER's call at its first receive, then CLIENT's retry.
    assert_eq!(k.schedule(false), Some(SERVER));
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!((k.tasks[SERVER].regs.rsi, k.tasks[SERVER].messages), (6, 2));
    assert_eq!(k.tasks[SERVER].boundaries, 2);
}

#[test]
fn a_replay_delivers_the_request_again_once() {
    let mut k = crashed_on_a_call();
    k.recover(SERVER, VerdictAction::Replay, 0);
    assert_eq!(
        k.tasks[CLIENT].state,
        State::Sending {
            to: SERVER as u16,
            call: true
        }
    );
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(
        k.tasks[SERVER].regs.rsi, 5,
        "the replayed request comes first"
    );
    assert_eq!(k.tasks[SERVER].regs.words(), [1; 6]);
    k.current = Some(SERVER);
    k.exception(6, 0, 0, false);
    let ctx = k.crash_context(SERVER);
    assert_eq!(ctx.flags, CrashContext::SERVER | CrashContext::REPLAY);
    // A second replay is refused: the caller is answered as for a rollback.
    k.recover(SERVER, VerdictAction::Replay, 0);
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::PeerRestarted as u64);
    assert_eq!(k.tasks[CLIENT].state, State::Runnable);
    assert!(!k.tasks[CLIENT].replaying);
}

#[test]
fn a_fresh_restart_tells_everyone_waiting_that_state_is_lost() {
    let mut k = crashed_on_a_call();
    k.recover(SERVER, VerdictAction::RestartFresh, 0);
    for t in [CLIENT, OTHER] {
        assert_eq!(k.tasks[t].regs.rax, Error::StateLost as u64);
        assert_eq!(k.tasks[t].regs.rdi, k.id(SERVER).0);
    }
    assert_eq!(k.tasks[SERVER].senders, 0);
}

#[test]
fn notifications_consumed_since_the_boundary_come_back_and_new_timers_go() {
    let mut k = kernel();
    server_receives(&mut k);
    k.current = Some(SERVER);
    // A timer set before the boundary (in the first message) survives; a notification arrives.
    k.tasks[SERVER].state = State::Runnable;
    sys(&mut k, SERVER, Sys::Timer, 0, 0, [50, 0b10, 0, 0, 0, 0]);
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    let boundary = k.tasks[SERVER].boundaries;
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Notify, server, 0, [0b1, 0, 0, 0, 0, 0]);
    assert_eq!(k.tasks[SERVER].regs.rdx, 0b1, "delivered");
    // Handling it, the server re-arms its timer, then crashes before its next boundary.
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Timer, 0, 0, [2, 0b100, 0, 0, 0, 0]);
    k.current = Some(SERVER);
    k.exception(13, 0, 0, false);
    assert_eq!(k.crash_context(SERVER).caller, NO_CALLER);
    assert_eq!(k.crash_context(SERVER).boundary, boundary);
    k.recover(SERVER, VerdictAction::Rollback, 0);
    assert_eq!(k.tasks[SERVER].notifications, 0b1, "posted again");
    assert_eq!(
        k.timers.get(SERVER).1,
        0b10,
        "the timer it had at its boundary"
    );
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(k.tasks[SERVER].regs.rdx, 0b1);
}

#[test]
fn a_delayed_restart_keeps_callers_queued_until_its_tick() {
    let mut k = crashed_on_a_call();
    k.recover(SERVER, VerdictAction::Rollback, 3);
    assert_eq!(k.tasks[SERVER].state, State::Restarting);
    assert!(!k.queues.contains(SERVER));
    // The caller in flight is told at once and retries: it queues like OTHER.
    assert_eq!(k.tasks[CLIENT].regs.rax, Error::PeerRestarted as u64);
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 5, [1; 6]);
    assert_eq!(
        k.tasks[CLIENT].state,
        State::Sending {
            to: SERVER as u16,
            call: true
        }
    );
    // Three whole tick periods at least: the period the crash fell in does not count.
    for _ in 0..3 {
        k.tick(false);
        assert_eq!(k.tasks[SERVER].state, State::Restarting);
    }
    k.tick(false);
    assert_eq!(k.tasks[SERVER].state, State::Runnable);
    assert!(k.queues.contains(SERVER));
    assert_eq!(k.next_restart, u64::MAX);
    assert_eq!(k.schedule(false), Some(SERVER));
}

#[test]
fn a_late_reply_to_a_restarted_caller_is_dropped() {
    let mut k = kernel();
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    let old_client = k.id(CLIENT).0;
    // The caller is stopped and restarted while the server holds its call.
    k.crash(CLIENT, FaultCause::Panic, 0, 0, 0);
    k.recover(CLIENT, VerdictAction::Rollback, 0);
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Reply, old_client, 0, [9; 6]);
    assert_eq!(k.tasks[SERVER].regs.rax, Error::NoReplyPending as u64);
    assert_ne!(k.tasks[CLIENT].regs.words(), [9; 6]);
}

#[test]
fn a_corrupted_state_is_caught_before_the_reply_is_released() {
    let mut k = kernel();
    assert_eq!(k.schedule(false), Some(SERVER));
    // Canaries must be aligned and inside the state arena.
    sys(
        &mut k,
        SERVER,
        Sys::DeclareState,
        0,
        0,
        [0x10004, 0x10ff8, 0, 0, 0, 0],
    );
    assert_eq!(k.tasks[SERVER].regs.rax, Error::BadArgument as u64);
    sys(
        &mut k,
        SERVER,
        Sys::DeclareState,
        0,
        0,
        [0x10000, 0x11000, 0, 0, 0, 0],
    );
    assert_eq!(k.tasks[SERVER].regs.rax, Error::BadArgument as u64);
    sys(
        &mut k,
        SERVER,
        Sys::DeclareState,
        0,
        0,
        [0x10000, 0x10ff8, 0, 0, 0, 0],
    );
    assert_eq!(k.tasks[SERVER].regs.rax, 0);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    k.platform.corrupted = 0x10ff8;
    let client = k.id(CLIENT).0;
    let e = sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [9; 6]);
    assert_eq!(e, Effect::Fault(None));
    assert_eq!(k.last_fault().cause, FaultCause::Corruption as u32);
    assert_eq!(k.last_fault().addr, 0x10ff8);
    assert_eq!(
        k.tasks[CLIENT].state,
        State::AwaitingReply {
            from: SERVER as u16
        },
        "the reply was not released"
    );
    assert_eq!(
        k.tasks[SERVER].boundaries, 1,
        "no boundary: nothing to snapshot"
    );
}

#[test]
fn planned_faults_are_handed_over_with_their_message_once() {
    let mut k = kernel();
    let plan = |message, kind, period| PlannedFault {
        message,
        kind,
        period,
    };
    assert!(k.tasks[SERVER].plan_fault(plan(3, 7, 0)));
    assert!(k.tasks[SERVER].plan_fault(plan(2, 1, 0)));
    assert!(k.tasks[SERVER].plan_fault(plan(4, 5, 3)));
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    let mut seen = Vec::new();
    for _ in 0..8 {
        k.current = Some(CLIENT);
        sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
        seen.push(k.tasks[SERVER].regs.rcx);
        let client = k.id(CLIENT).0;
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    }
    assert_eq!(
        seen,
        [0, 1, 7, 5, 0, 0, 5, 0],
        "once, once, then every 3 from 4"
    );
    let t = &mut k.tasks[SERVER];
    assert!(t.plan_fault(plan(10, 1, 0)));
    assert!(t.plan_fault(plan(11, 1, 0)));
    assert!(t.plan_fault(plan(12, 1, 0)));
    assert!(!t.plan_fault(plan(20, 1, 0)), "the plan is full");
}

/// A crash on a message that came with a planned fault reports that fault's kind as injected;
/// a crash on any other message, or before the restarted task's next message, reports none.
#[test]
fn a_crash_reports_the_fault_planned_for_its_message() {
    let mut k = kernel();
    let planned = PlannedFault {
        message: 2,
        kind: FaultKind::DivZero as u32,
        period: 0,
    };
    assert!(k.tasks[SERVER].plan_fault(planned));
    server_receives(&mut k);
    let server = k.id(SERVER).0;
    let injected = |k: &mut K| {
        k.current = Some(SERVER);
        k.exception(0, 0, 0, false);
        let injected = k.crash_context(SERVER).injected();
        k.recover(SERVER, VerdictAction::Rollback, 0);
        injected
    };
    k.current = Some(CLIENT);
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(injected(&mut k), None, "message 1 had no plan");
    assert_eq!(
        injected(&mut k),
        None,
        "nor does the restarted task before its next message"
    );
    k.schedule(false);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.tasks[SERVER].messages, 2);
    assert_eq!(injected(&mut k), Some(FaultKind::DivZero));
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
                1 if k.current.is_some() => {
                    let t = k.current.unwrap_or_default();
                    k.exception(13, 0, 0, false);
                    let action = VerdictAction::from_number(u32::from(call as u8 % 4));
                    k.recover(t, action.unwrap_or(VerdictAction::Stop), generation);
                    k.schedule(false);
                }
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

// Recovery windows, after-send plans, stale ids after a fresh restart.

/// A second server, priority 1: the peer the server talks to.
const PEER: usize = 3;

/// SERVER, CLIENT, OTHER as in [`kernel`], plus PEER (a server); both servers wait in receive.
fn two_servers() -> K {
    let mut k = kernel();
    k.add_task(&setup(1, true));
    for s in [SERVER, PEER] {
        k.current = Some(s);
        sys(&mut k, s, Sys::Recv, 0, 0, [0; 6]);
        assert_eq!(k.tasks[s].state, State::Receiving);
    }
    k
}

/// CLIENT calls SERVER with `label`; SERVER runs.
fn client_calls_server(k: &mut K, label: u64) {
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(k, CLIENT, Sys::Call, server, label, [0; 6]);
    assert_eq!(k.current, Some(SERVER));
}

/// SERVER calls PEER with `label` and PEER answers at once (its boundary).
fn server_calls_peer(k: &mut K, label: u64) {
    k.current = Some(SERVER);
    let peer = k.id(PEER).0;
    sys(k, SERVER, Sys::Call, peer, label, [0; 6]);
    k.current = Some(PEER);
    let server = k.id(SERVER).0;
    sys(k, PEER, Sys::ReplyRecv, server, 0, [0; 6]);
    assert_eq!(k.tasks[PEER].state, State::Receiving);
    assert_eq!(
        k.tasks[SERVER].regs.rdi,
        k.id(PEER).0,
        "the reply names the replier"
    );
}

fn window_of(k: &K, t: usize) -> SentWindow {
    let mut w = SentWindow {
        count: 99,
        ..Default::default()
    };
    w.sent[WINDOW_MAX - 1].label = 77;
    k.fill_window(t, &mut w);
    w
}

fn crash_server(k: &mut K) {
    k.current = Some(SERVER);
    assert_eq!(k.exception(14, 4, 0, false), Effect::Fault(None));
}

#[test]
fn a_crashed_server_reports_what_it_sent_and_whether_the_peer_stayed_quiet() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    let before = k.tasks[PEER].boundaries;
    server_calls_peer(&mut k, 9);
    server_calls_peer(&mut k, 10);
    // An app's sends are not recorded.
    assert_eq!(k.tasks[CLIENT].window.sent_count(), 0);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count, 2);
    let both = SentRecord::PEER_SERVER | SentRecord::PEER_QUIET;
    assert_eq!(
        w.listed(),
        [
            SentRecord {
                to: PEER as u32,
                flags: both,
                label: 9,
                peer_boundary: before,
            },
            SentRecord {
                to: PEER as u32,
                flags: both,
                label: 10,
                peer_boundary: before + 1,
            },
        ]
    );
    assert_eq!(
        w.sent[WINDOW_MAX - 1].label,
        77,
        "entries past the count are left as they were (the VMM reads only the listed ones)"
    );
    // The peer now handles another task's message: it is no longer quiet, even once it is
    // back in receive.
    k.current = Some(OTHER);
    let peer = k.id(PEER).0;
    sys(&mut k, OTHER, Sys::Call, peer, 1, [0; 6]);
    assert_eq!(window_of(&k, SERVER).sent[1].flags, SentRecord::PEER_SERVER);
    k.current = Some(PEER);
    let other = k.id(OTHER).0;
    sys(&mut k, PEER, Sys::ReplyRecv, other, 0, [0; 6]);
    let w = window_of(&k, SERVER);
    assert!(
        w.listed()
            .iter()
            .all(|r| r.flags == SentRecord::PEER_SERVER),
        "{w:?}"
    );
}

#[test]
fn a_peer_that_took_a_notification_or_set_a_timer_is_not_quiet() {
    for what in ["notification", "timer", "send", "restart"] {
        let mut k = two_servers();
        client_calls_server(&mut k, 5);
        server_calls_peer(&mut k, 9);
        let peer = k.id(PEER).0;
        match what {
            "notification" => {
                k.current = Some(OTHER);
                sys(&mut k, OTHER, Sys::Notify, peer, 0, [1, 0, 0, 0, 0, 0]);
                k.current = Some(PEER);
                sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
            }
            "timer" | "send" => {
                // The peer is handling OTHER's send when it does this.
                k.current = Some(OTHER);
                sys(&mut k, OTHER, Sys::Send, peer, 1, [0; 6]);
                let mark = k.tasks[PEER].activity;
                k.current = Some(PEER);
                if what == "timer" {
                    sys(&mut k, PEER, Sys::Timer, 0, 0, [50, 1, 0, 0, 0, 0]);
                } else {
                    let client = k.id(CLIENT).0;
                    sys(&mut k, PEER, Sys::Notify, client, 0, [1, 0, 0, 0, 0, 0]);
                }
                assert_eq!(k.tasks[PEER].activity, mark + 1);
                k.current = Some(PEER);
                sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
            }
            _ => {
                k.current = Some(PEER);
                k.tasks[PEER].state = State::Runnable;
                k.exception(6, 0, 0, false);
                k.recover(PEER, VerdictAction::Rollback, 0);
                k.current = Some(PEER);
                sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
            }
        }
        assert_eq!(k.tasks[PEER].state, State::Receiving, "{what}");
        crash_server(&mut k);
        let w = window_of(&k, SERVER);
        assert_eq!(
            (w.count, w.sent[0].flags),
            (1, SentRecord::PEER_SERVER),
            "{what}"
        );
    }
}

#[test]
fn a_peer_still_handling_the_message_is_not_quiet_and_apps_are_not_servers() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    // A plain send: delivered, and the peer has not finished with it when the server crashes.
    let peer = k.id(PEER).0;
    sys(&mut k, SERVER, Sys::Send, peer, 3, [0; 6]);
    assert_eq!(k.tasks[PEER].state, State::Runnable);
    // And a send to an app waiting in receive.
    k.current = Some(OTHER);
    k.tasks[OTHER].state = State::Runnable;
    sys(&mut k, OTHER, Sys::Recv, 0, 0, [0; 6]);
    k.current = Some(SERVER);
    let other = k.id(OTHER).0;
    sys(&mut k, SERVER, Sys::Send, other, 4, [0; 6]);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count, 2);
    assert_eq!(
        (w.sent[0].flags, w.sent[0].label),
        (SentRecord::PEER_SERVER, 3)
    );
    assert_eq!((w.sent[1].to, w.sent[1].flags), (OTHER as u32, 0));
    assert_eq!(w.sent[1].peer_boundary, 0, "apps have no boundaries");
}

#[test]
fn the_window_closes_at_the_boundary_and_at_a_restart() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    server_calls_peer(&mut k, 9);
    assert_eq!(k.tasks[SERVER].window.sent_count(), 1);
    let client = k.id(CLIENT).0;
    sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    assert_eq!(
        k.tasks[SERVER].window.sent_count(),
        0,
        "closed at the boundary"
    );
    client_calls_server(&mut k, 5);
    crash_server(&mut k);
    assert_eq!(window_of(&k, SERVER).count, 0);
    assert!(window_of(&k, SERVER).listed().is_empty());
    // Sent, then restarted: the restarted task's window starts empty.
    k.recover(SERVER, VerdictAction::Rollback, 0);
    client_calls_server(&mut k, 5);
    server_calls_peer(&mut k, 9);
    crash_server(&mut k);
    assert_eq!(window_of(&k, SERVER).count, 1);
    k.recover(SERVER, VerdictAction::Rollback, 0);
    assert_eq!(k.tasks[SERVER].window.sent_count(), 0);
}

#[test]
fn the_window_counts_past_what_it_lists() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    let first = k.tasks[PEER].boundaries;
    for label in 0..WINDOW_MAX as u64 + 2 {
        server_calls_peer(&mut k, 100 + label);
    }
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count as usize, WINDOW_MAX + 2);
    assert!(w.overflowed());
    for (i, r) in w.listed().iter().enumerate() {
        assert_eq!(
            (r.label, r.peer_boundary),
            (100 + i as u64, first + i as u64)
        );
        // Two more messages went to the peer than are listed: nobody can say it was quiet.
        assert_eq!(r.flags, SentRecord::PEER_SERVER, "record {i}");
    }
}

#[test]
fn after_send_faults_stay_armed_until_the_task_crashes_holding_one() {
    let panic = abi::fault::FaultKind::Panic as u32;
    let hang = abi::fault::FaultKind::Hang as u32;
    let after = |kind: u32| u64::from(kind | AFTER_SEND);
    let mut k = kernel();
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 2,
        kind: panic | AFTER_SEND,
        period: 3,
    }));
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 4,
        kind: hang,
        period: 0,
    }));
    server_receives(&mut k);
    let mut seen = Vec::new();
    for n in 1..=10u64 {
        k.current = Some(CLIENT);
        let id = k.id(SERVER).0;
        sys(&mut k, CLIENT, Sys::Call, id, 1, [0; 6]);
        let word = k.tasks[SERVER].regs.rcx;
        seen.push(word);
        k.current = Some(SERVER);
        if n == 5 {
            // Crashes holding the after-send fault: consumed, armed again from 5 + 3.
            k.exception(6, 0, 0, false);
            k.recover(SERVER, VerdictAction::Rollback, 0);
            k.current = Some(SERVER);
            sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
            // The client's call was answered PeerRestarted; it runs on.
            continue;
        }
        let client = k.id(CLIENT).0;
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    }
    assert_eq!(
        seen,
        [
            0,
            after(panic),
            after(panic),
            u64::from(hang), // a plain fault due now comes first, once
            after(panic),    // crashed holding it
            0,
            0,
            after(panic),
            after(panic),
            after(panic),
        ]
    );
    // A crash on a message without an after-send fault consumes nothing.
    let f = k.tasks[SERVER].faults[0];
    assert_eq!((f.message, f.kind), (8, panic | AFTER_SEND));
    k.current = Some(SERVER);
    k.tasks[SERVER].held_fault = 0;
    k.exception(6, 0, 0, false);
    assert_eq!(k.tasks[SERVER].faults[0].message, 8);
    // Once, without a period: removed when it strikes.
    let mut t = crate::task::Task::EMPTY;
    t.plan_fault(PlannedFault {
        message: 1,
        kind: panic | AFTER_SEND,
        period: 0,
    });
    t.messages = 1;
    assert_eq!(t.take_due_fault().handed, after(panic));
    t.crashed_holding_fault();
    t.messages = 2;
    assert_eq!(t.take_due_fault().handed, 0);
    assert_eq!(
        t.faults,
        [crate::task::NO_FAULT; crate::task::PLANNED_FAULTS]
    );
}

#[test]
fn ids_made_before_a_fresh_restart_get_state_lost_and_later_ones_peer_restarted() {
    let mut k = crashed_on_a_call();
    // Generations wrap: start the server just below the wrap.
    k.tasks[SERVER].generation = u32::MAX;
    let gen_max = k.id(SERVER).0;
    k.recover(SERVER, VerdictAction::RestartFresh, 0);
    assert_eq!(k.tasks[SERVER].generation, 0);
    let call = |k: &mut K, id: u64| {
        k.current = Some(CLIENT);
        sys(k, CLIENT, Sys::Call, id, 1, [0; 6]);
        let r = k.tasks[CLIENT].regs;
        (r.rax, r.rdi)
    };
    let current = k.id(SERVER).0;
    assert_eq!(call(&mut k, gen_max), (Error::StateLost as u64, current));
    assert_eq!(
        k.tasks[OTHER].regs.rax,
        Error::StateLost as u64,
        "queued: told"
    );
    // The server reaches a boundary, takes a call, crashes on it and is rolled back (plain).
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]);
    let after_fresh = k.id(SERVER).0;
    client_calls_server(&mut k, 5);
    k.exception(0, 0, 0, false);
    k.recover(SERVER, VerdictAction::Rollback, 0);
    let current = k.id(SERVER).0;
    assert_eq!(k.tasks[SERVER].generation, 1);
    assert_eq!(call(&mut k, gen_max), (Error::StateLost as u64, current));
    assert_eq!(
        call(&mut k, after_fresh),
        (Error::PeerRestarted as u64, current),
        "made after the fresh restart: only rolled back"
    );
    assert_eq!(
        call(&mut k, TaskId::new(SERVER as u16, 7).0),
        (Error::PeerRestarted as u64, current),
        "not older, never made: no claim of loss"
    );
    // A fresh restart before any boundary lost nothing: stale ids are only restarted.
    let mut k = kernel();
    k.schedule(false);
    let first = k.id(SERVER).0;
    k.exception(0, 0, 0, false);
    k.recover(SERVER, VerdictAction::RestartFresh, 0);
    let current = k.id(SERVER).0;
    assert_eq!(call(&mut k, first), (Error::PeerRestarted as u64, current));
}

/// Request labels of the tests' server: GET is read-only (when its platform says so).
const PUT: u64 = 1;
const GET: u64 = 2;
const DELETE: u64 = 3;

/// A server is snapshotted only at the boundaries that close a state-changing request: after a
/// request whose label the platform marks read-only the reply is released without a BOUNDARY
/// (nothing its clients saw is missing from the last snapshot), and its recovery window stays
/// open. The boundary names the request it closed.
#[test]
fn read_only_requests_skip_the_snapshot_and_keep_the_window_open() {
    let mut k = two_servers();
    k.platform.read_only[SERVER] = 1 << GET;
    let (passed, snaps) = (k.tasks[SERVER].boundaries, k.tasks[SERVER].snapshots);
    let client = k.id(CLIENT).0;
    // A PUT that also sends something to the peer: snapshotted, window closed.
    client_calls_server(&mut k, PUT);
    server_calls_peer(&mut k, 9);
    k.current = Some(SERVER);
    assert_eq!(
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]),
        Effect::Boundary {
            task: SERVER,
            label: PUT as u16
        }
    );
    assert_eq!(k.tasks[SERVER].snapshots, snaps + 1);
    assert_eq!(k.tasks[SERVER].window.sent_count(), 0);
    // A GET that sends to the peer: the reply goes out without a snapshot, the window stays.
    client_calls_server(&mut k, GET);
    server_calls_peer(&mut k, 9);
    k.current = Some(SERVER);
    assert_eq!(
        sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]),
        Effect::None
    );
    assert_eq!(k.tasks[CLIENT].regs.rax, 0, "the reply was delivered");
    assert_eq!(k.tasks[SERVER].snapshots, snaps + 1, "no snapshot");
    assert_eq!(
        k.tasks[SERVER].boundaries,
        passed + 2,
        "but a boundary passed"
    );
    assert_eq!(
        k.tasks[SERVER].window.sent_count(),
        1,
        "the window stays open"
    );
    assert_eq!(k.tasks[SERVER].window.caller(), None);
    // A crash now reports the last snapshot's window and the peer's snapshot number.
    client_calls_server(&mut k, DELETE);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(w.count, 1);
    assert_eq!(w.listed()[0].peer_boundary, k.tasks[PEER].snapshots - 1);
    // A receive without a reply (e.g. after a notification) always snapshots.
    let mut k = two_servers();
    k.platform.read_only[SERVER] = 1 << GET;
    let snaps = k.tasks[SERVER].snapshots;
    k.current = Some(SERVER);
    k.tasks[SERVER].state = State::Runnable;
    assert_eq!(
        sys(&mut k, SERVER, Sys::Recv, 0, 0, [0; 6]),
        Effect::Boundary {
            task: SERVER,
            label: 0
        }
    );
    assert_eq!(k.tasks[SERVER].snapshots, snaps + 1);
}

/// A peer that released a deferred reply to another task while it handled the crashed
/// server's message answered someone else: it is not reported quiet (rolling it back would take
/// back what that task was told).
#[test]
fn a_peer_that_replied_to_someone_else_is_not_quiet() {
    let mut k = two_servers();
    client_calls_server(&mut k, 5);
    // OTHER calls PEER; PEER defers the reply (receives again without answering).
    k.current = Some(OTHER);
    let peer = k.id(PEER).0;
    sys(&mut k, OTHER, Sys::Call, peer, 1, [0; 6]);
    k.current = Some(PEER);
    sys(&mut k, PEER, Sys::Recv, 0, 0, [0; 6]);
    assert_eq!(
        k.tasks[OTHER].state,
        State::AwaitingReply { from: PEER as u16 }
    );
    // SERVER calls PEER; PEER answers OTHER first (explicit reply), then SERVER.
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::Call, peer, 9, [0; 6]);
    k.current = Some(PEER);
    let other = k.id(OTHER).0;
    sys(&mut k, PEER, Sys::Reply, other, 0, [0; 6]);
    assert_ne!(
        k.tasks[OTHER].state,
        State::AwaitingReply { from: PEER as u16 },
        "OTHER answered"
    );
    k.current = Some(PEER);
    let server = k.id(SERVER).0;
    sys(&mut k, PEER, Sys::ReplyRecv, server, 0, [0; 6]);
    crash_server(&mut k);
    let w = window_of(&k, SERVER);
    assert_eq!(
        w.listed()[0].flags & SentRecord::PEER_QUIET,
        0,
        "PEER answered OTHER: {w:?}"
    );
}

/// The client calls the server (which waits in receive) and the server answers: one message.
fn one_message(k: &mut K) {
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(k, CLIENT, Sys::Call, server, 1, [0; 6]);
    let client = k.id(CLIENT).0;
    sys(k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
}

/// A kind the VMM injects is not handed to the task: the kernel makes an INJECT call with the
/// task's registers (the VMM's changes are kept), and a crash in that message reports it.
#[test]
fn a_vmm_fault_is_announced_to_the_vmm_not_handed_to_the_task() {
    use abi::fault::FaultKind;
    use abi::monitor::InjectRecord;
    let mut k = kernel();
    k.platform.flip_rbx = 1 << 5;
    let state_flip = FaultKind::StateFlip as u32;
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 2,
        kind: state_flip,
        period: 0,
    }));
    server_receives(&mut k);
    one_message(&mut k);
    assert_eq!(k.platform.inject_count, 0, "nothing due at message 1");
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    let rbx = k.tasks[SERVER].regs.rbx;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.platform.inject_count, 1);
    assert_eq!(
        k.platform.injects[0],
        (SERVER as u32, InjectRecord::START, u64::from(state_flip), 2)
    );
    assert_eq!(
        k.tasks[SERVER].regs.rbx,
        rbx ^ (1 << 5),
        "the VMM's registers kept"
    );
    assert_eq!(
        k.tasks[SERVER].regs.rcx,
        1 << 5,
        "not handed over (0), and the VMM's change of rcx kept"
    );
    k.current = Some(SERVER);
    k.exception(13, 0, 0, false);
    assert_eq!(
        k.crash_context(SERVER).injected(),
        Some(FaultKind::StateFlip),
        "the crash reports the fault planned for its message"
    );
}

/// Single-stepping toward an injected instruction: TF on the task, a step per #DB, reached
/// at the watched address; the message's end is reported at the next delivery, with TF off.
#[test]
fn an_injected_instruction_is_stepped_to_and_the_message_end_reported() {
    use crate::kernel::InjectReply;
    use crate::stepping::TRAP_FLAG;
    use abi::fault::FaultKind;
    use abi::monitor::{InjectRecord, StepRecord};
    let watch = 0x1234;
    let run = |outcome_at: Option<u32>| {
        let mut k = kernel();
        k.platform.reply = InjectReply {
            watch,
            budget: 5,
            notify_end: true,
        };
        assert!(k.tasks[SERVER].plan_fault(PlannedFault {
            message: 1,
            kind: FaultKind::FlipBranch as u32,
            period: 0,
        }));
        server_receives(&mut k);
        k.current = Some(CLIENT);
        let server = k.id(SERVER).0;
        sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
        assert_ne!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0, "stepped");
        assert_eq!(k.platform.step.outcome, StepRecord::STEPPING);
        assert_eq!(k.stepped(), Some(SERVER));
        assert!(
            !k.single_step(CLIENT),
            "another task's #DB is its own fault"
        );
        for step in 0..outcome_at.unwrap_or(3) {
            k.tasks[SERVER].regs.rip = 0x1000 + u64::from(step);
            assert!(k.single_step(SERVER));
        }
        (k, server)
    };
    // Reached on the fourth step.
    let (mut k, _) = run(Some(3));
    k.tasks[SERVER].regs.rip = watch;
    assert!(k.single_step(SERVER));
    assert_eq!(k.platform.step.outcome, StepRecord::REACHED);
    assert_eq!(k.platform.step.steps, 3);
    assert_eq!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0);
    assert_eq!(k.stepped(), None);
    // Out of budget.
    let (k, _) = run(Some(5));
    assert_eq!(k.platform.step.outcome, StepRecord::BUDGET);
    // The message ends first: END at the next delivery, TF off.
    let (mut k, _) = run(None);
    let client = k.id(CLIENT).0;
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    one_message(&mut k);
    assert_eq!(k.platform.step.outcome, StepRecord::ENDED);
    assert_eq!(k.platform.inject_count, 2);
    assert_eq!(
        k.platform.injects[1],
        (SERVER as u32, InjectRecord::END, 0, 2)
    );
    assert_eq!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0);
    one_message(&mut k);
    assert_eq!(k.platform.inject_count, 2, "one END");
    // The instruction it resumes at is the watched one: reached before any step.
    let mut k = kernel();
    k.platform.reply = InjectReply {
        watch: k.tasks[SERVER].regs.rip,
        budget: 5,
        notify_end: true,
    };
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 1,
        kind: FaultKind::Nop as u32,
        period: 0,
    }));
    server_receives(&mut k);
    k.platform.reply.watch = k.tasks[SERVER].regs.rip;
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.platform.step.outcome, StepRecord::REACHED);
    assert_eq!((k.platform.step.steps, k.stepped()), (0, None));
    assert_eq!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0);
    // A crash first.
    let (mut k, _) = run(None);
    k.current = Some(SERVER);
    k.exception(6, 0, 0, false);
    assert_eq!(k.platform.step.outcome, StepRecord::CRASHED);
    assert_eq!(k.stepped(), None);
}

/// A stepped server runs far slower: its per-message budget does not run out while stepped.
#[test]
fn a_stepped_server_is_not_taken_for_a_hang() {
    use crate::kernel::InjectReply;
    let mut k = kernel();
    k.budget = 2;
    k.platform.reply = InjectReply {
        watch: 0x9999,
        budget: 1000,
        notify_end: true,
    };
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 1,
        kind: abi::fault::FaultKind::Nop as u32,
        period: 0,
    }));
    server_receives(&mut k);
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    k.current = Some(SERVER);
    for _ in 0..10 {
        assert_eq!(k.tick(true).0, Effect::None);
    }
    k.stop_stepping(SERVER, abi::monitor::StepRecord::BUDGET);
    assert_eq!(
        k.tick(true).0,
        Effect::Fault(None),
        "the budget counts again"
    );
}

/// A fault planned for the kernel strikes at the N-th message delivered to any task, then
/// every period.
#[test]
fn a_kernel_fault_counts_every_task_s_messages() {
    use abi::monitor::{InjectRecord, KERNEL_TARGET};
    let mut k = kernel();
    let text_flip = abi::fault::FaultKind::TextFlip as u32;
    assert!(k.plan_kernel_fault(PlannedFault {
        message: 3,
        kind: text_flip,
        period: 4,
    }));
    assert!(!k.plan_kernel_fault(PlannedFault {
        message: 9,
        kind: text_flip,
        period: 0,
    }));
    server_receives(&mut k);
    one_message(&mut k);
    one_message(&mut k);
    assert_eq!(k.platform.inject_count, 0);
    one_message(&mut k);
    assert_eq!(
        k.platform.injects[0],
        (KERNEL_TARGET, InjectRecord::START, u64::from(text_flip), 3)
    );
    for _ in 0..4 {
        one_message(&mut k);
    }
    assert_eq!(k.platform.inject_count, 2);
    assert_eq!(k.platform.injects[1].3, 7);
}

/// A fault planned while the VM runs strikes the task's next message, stays pending (and
/// cancellable) while no message comes, replaces a pending one, and needs room in the plan.
#[test]
fn live_faults_strike_the_next_message_or_are_cancelled() {
    use crate::task::{Live, NO_FAULT, PLANNED_FAULTS, Task};
    let panic = FaultKind::Panic as u32;
    let hang = FaultKind::Hang as u32;
    let mut t = Task::EMPTY;
    t.messages = 5;
    assert_eq!(t.plan_live(panic), Live::Planned);
    // No message yet: still pending; a second request replaces it.
    assert_eq!(t.plan_live(hang), Live::Planned);
    assert_eq!(
        t.faults.iter().filter(|f| **f != NO_FAULT).count(),
        1,
        "one live fault at a time"
    );
    t.messages = 6;
    assert_eq!(
        t.take_due_fault().handed,
        u64::from(hang),
        "the next message"
    );
    assert_eq!(t.cancel_live(), Live::NothingPending, "it struck already");
    // Planned, then cancelled: the next message comes clean.
    assert_eq!(t.plan_live(panic), Live::Planned);
    assert_eq!(t.cancel_live(), Live::Cancelled);
    t.messages = 7;
    assert_eq!(t.take_due_fault().handed, 0);
    assert_eq!(t.faults, [NO_FAULT; PLANNED_FAULTS]);
    // A full plan has no room.
    for m in 100..104 {
        assert!(t.plan_fault(PlannedFault {
            message: m,
            kind: panic,
            period: 0,
        }));
    }
    assert_eq!(t.plan_live(panic), Live::Full);
    assert_eq!(t.cancel_live(), Live::NothingPending);
}
