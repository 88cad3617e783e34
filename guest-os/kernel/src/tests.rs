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

/// PROGRESS adds a client's figures to its server's (what the VMM shows while the VM runs);
/// an id that is no server is refused and changes nothing.
#[test]
fn progress_adds_up_per_server() {
    let mut k = kernel();
    let server = k.id(SERVER).0;
    for (t, words) in [(CLIENT, [10, 1, 2, 3, 4, 0]), (OTHER, [5, 0, 1, 0, 0, 9])] {
        k.current = Some(t);
        let e = sys(&mut k, t, Sys::Progress, server, 0, words);
        assert_eq!((e, k.tasks[t].regs.rax), (Effect::Progress(SERVER), 0));
    }
    let p = k.progress[SERVER];
    assert_eq!(
        (p.ops, p.errors, p.retries, p.lost, p.mismatches),
        (15, 1, 3, 3, 4)
    );
    // Saturating: a client's figures are anything it likes.
    k.current = Some(CLIENT);
    let e = sys(
        &mut k,
        CLIENT,
        Sys::Progress,
        server,
        0,
        [u64::MAX, 0, 0, 0, 0, 0],
    );
    assert_eq!(e, Effect::Progress(SERVER));
    assert_eq!(k.progress[SERVER].ops, u64::MAX);
    for bad in [k.id(CLIENT).0, TaskId::new(9, 0).0] {
        k.current = Some(CLIENT);
        let e = sys(&mut k, CLIENT, Sys::Progress, bad, 0, [1; 6]);
        assert_eq!(
            (e, k.tasks[CLIENT].regs.rax),
            (Effect::None, Error::NoSuchTask as u64)
        );
    }
    assert_eq!(k.progress[CLIENT], abi::monitor::WorkloadReport::ZERO);
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

mod inject;
mod window;
