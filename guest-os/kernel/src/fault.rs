//! Confining faults and recovering from them.
//!
//! A task that takes a CPU exception, panics, overruns its per-message budget or (a server)
//! fails its state-canary check at a boundary is stopped at once ([`Kernel::crash`]): never
//! scheduled again, and a [`FaultRecord`] plus its [`CrashContext`] go to the VMM. Nothing else
//! is decided until the VMM answers with a verdict ([`Kernel::recover`]). With the record goes
//! the task's recovery window, what it sent since its boundary ([`Kernel::fill_window`]), so
//! that the VMM can tell which peers hold effects of messages the rollback makes it forget.
//!
//! Verdicts:
//!
//! ```text
//!  Stop          the task stays stopped: its timer and notifications are dropped, the tasks
//!                whose calls or sends it held get PeerCrashed (and so do later sends to it)
//!  Rollback      the VMM restored its state arena to its last boundary. Generation + 1,
//!                registers of a fresh start at its entry (fresh stack, rcx = 1), runnable.
//!                The caller of the request in flight gets PeerRestarted (its client retries:
//!                the request was not applied); callers queued on it stay queued; notifications
//!                it consumed since the boundary are posted again; a timer it set since the
//!                boundary is put back as it was; a late reply to its old generation is dropped
//!  Replay        as Rollback, but the request in flight is queued again at the task (at most
//!                once: a request that crashes its server on its replay is answered as Rollback)
//!  (any restart)  may wait some ticks first (a policy's backoff): the task is Restarting,
//!                messages to it queue, it runs from the tick given
//!  RestartFresh  the VMM restored its boot image: as Rollback, but the caller in flight and
//!                the callers queued on it get StateLost (unless it never reached a boundary:
//!                then it had no state to lose), and so does every later call or send with an
//!                id made before this restart; its timer is cancelled
//! ```
//!
//! Any restart also closes the task's recovery window (nothing sent) and counts as activity
//! (a peer that was restarted is never reported quiet).

use crate::kernel::{Effect, Kernel, Platform};
use crate::task::State;
use crate::umem::{CheckedSlice, UserSlice};
use abi::fault::{FaultCause, NO_VECTOR};
use abi::ipc::Error;
use abi::monitor::{CrashContext, FaultRecord, NO_CALLER, SentRecord, SentWindow, VerdictAction};

impl<const N: usize, M: Platform> Kernel<N, M> {
    /// Stops task `t` for `cause`; its record becomes [`Kernel::last_fault`] (written where the
    /// platform keeps it: on the machine, straight into the monitor page). What happens to the
    /// tasks it held waits for [`Kernel::recover`].
    #[inline(always)]
    pub fn crash(&mut self, t: usize, cause: FaultCause, vector: u32, error: u64, addr: u64) {
        let task = &self.tasks[t];
        let was = task.state;
        self.faults += 1;
        *self.platform.fault_record_mut() = FaultRecord {
            seq: self.faults,
            task: t as u32,
            generation: task.generation,
            cause: cause as u32,
            vector,
            rip: task.regs.rip,
            addr,
            error_code: error,
            messages: task.messages,
            entry_tsc: 0,
        };
        self.block(t, State::Crashed);
        let task = &mut self.tasks[t];
        task.in_message = false;
        task.restarted = false; // a crash cancels an announcement not made yet
        task.crashed_holding_fault();
        self.stop_stepping(t, abi::monitor::StepRecord::CRASHED);
        if let State::Sending { to, .. } = was
            && let Some(target) = self.tasks.get_mut(usize::from(to))
        {
            target.senders &= !(1 << t);
        }
    }

    /// What the VMM needs besides the fault record of crashed task `t`.
    pub fn crash_context(&self, t: usize) -> CrashContext {
        let mut context = CrashContext {
            boundary: 0,
            label: 0,
            caller: 0,
            flags: 0,
            text_addr: 0,
            text_len: 0,
        };
        self.write_crash_context(t, None, &mut context);
        context
    }

    /// Writes [`Kernel::crash_context`] of `t`, with its panic message `text` if any, into
    /// `out` (field by field: it is the monitor page's, written in emulated ring 0).
    #[inline(always)]
    pub fn write_crash_context(
        &self,
        t: usize,
        text: Option<CheckedSlice>,
        out: &mut CrashContext,
    ) {
        let task = &self.tasks[t];
        let caller = self.in_flight_caller(t);
        // The kind of a fault planned for this message (its low byte; the after-send bit is
        // above it): the crash was injected.
        let mut flags = (task.held_fault & 0xff) << CrashContext::INJECTED_SHIFT;
        if task.server {
            flags |= CrashContext::SERVER;
        }
        out.boundary = task.boundaries;
        match caller {
            Some(c) => {
                if task.window.is_replay() {
                    flags |= CrashContext::REPLAY;
                }
                // The caller's registers still hold its request until it is answered.
                out.label = self.tasks[c].regs.rsi;
                out.caller = c as u32;
            }
            None => {
                out.label = 0;
                out.caller = NO_CALLER;
            }
        }
        out.flags = flags;
        (out.text_addr, out.text_len) = text.map_or((0, 0), |s| (s.addr, s.len));
    }

    /// Writes crashed task `t`'s recovery window into `window` (in place: it is the monitor
    /// page's, and the kernel copies no more than it must: entries past `count` are left as
    /// they were, the VMM reads only the listed ones). For each message listed: the
    /// receiver, the label, the receiver's boundary at the delivery, and its flags:
    /// `PEER_SERVER` for a server, `PEER_QUIET` when the receiver now waits in receive, outside
    /// any message, and has done nothing since this message but handle the later messages of
    /// `t` listed here (its activity grew by exactly their number). Messages past the listed
    /// ones are not known here: a receiver that got some of them is not reported quiet.
    #[inline(always)]
    pub fn fill_window(&self, t: usize, window: &mut SentWindow) {
        let task = &self.tasks[t];
        window.count = task.window.sent_count();
        window.reserved = 0;
        // Usually empty (a crash at the start of a message): only the count is written.
        if window.count != 0 {
            self.fill_sent(t, window);
        }
    }

    fn fill_sent(&self, t: usize, window: &mut SentWindow) {
        let sent = self.tasks[t].window.sent();
        for (i, (slot, s)) in window.sent.iter_mut().zip(sent).enumerate() {
            let to = usize::from(s.to);
            let mut flags = 0;
            if let Some(peer) = self.tasks.get(to) {
                if peer.server {
                    flags |= SentRecord::PEER_SERVER;
                }
                let later = sent[i + 1..].iter().filter(|l| l.to == s.to).count() as u64;
                let idle = peer.state == State::Receiving && !peer.in_message;
                if idle && peer.activity.wrapping_sub(s.mark) == later {
                    flags |= SentRecord::PEER_QUIET;
                }
            }
            *slot = SentRecord {
                to: u32::from(s.to),
                flags,
                label: s.label,
                peer_boundary: s.peer_boundary,
            };
        }
    }

    /// The task waiting for the reply to the call `t` received since its boundary.
    #[inline(always)]
    pub(crate) fn in_flight_caller(&self, t: usize) -> Option<usize> {
        let c = self.tasks[t].window.caller()?;
        let waiting = self.tasks.get(c)?.state == State::AwaitingReply { from: t as u16 };
        waiting.then_some(c)
    }

    /// Carries out the VMM's verdict on crashed task `t` (see the module doc); a restart waits
    /// `delay` ticks first (its callers stay queued): `delay` whole tick periods at least, so
    /// it runs at the `delay + 1`-th tick from now (the current period has partly gone).
    #[inline(always)]
    pub fn recover(&mut self, t: usize, action: VerdictAction, delay: u64) {
        if self
            .tasks
            .get(t)
            .is_none_or(|task| task.state != State::Crashed)
        {
            return;
        }
        if action == VerdictAction::Stop {
            return self.abandon(t);
        }
        self.restart(t, action);
        if delay > 0 {
            self.queues.remove(t);
            let task = &mut self.tasks[t];
            task.state = State::Restarting;
            task.restart_at = self.ticks.saturating_add(delay).saturating_add(1);
            self.next_restart = self.next_restart.min(task.restart_at);
        }
    }

    /// Makes the `Restarting` tasks whose tick has come runnable.
    pub(crate) fn restart_due(&mut self) {
        let mut next = u64::MAX;
        for t in 0..self.count {
            let task = &mut self.tasks[t];
            if task.state != State::Restarting {
                continue;
            }
            if task.restart_at <= self.ticks {
                task.state = State::Runnable;
                self.queues.insert(t);
            } else {
                next = next.min(task.restart_at);
            }
        }
        self.next_restart = next;
    }

    /// Leaves `t` stopped for good: everything it held fails with `PeerCrashed`.
    fn abandon(&mut self, t: usize) {
        self.timers.cancel(t);
        let task = &mut self.tasks[t];
        task.notifications = 0;
        task.window.end_call();
        let senders = core::mem::take(&mut task.senders);
        for s in 0..self.count {
            let held = senders & (1 << s) != 0
                || self.tasks[s].state == State::AwaitingReply { from: t as u16 };
            if held {
                self.wake(s, Error::PeerCrashed as u64);
            }
        }
    }

    /// Restarts `t` at its entry with a new generation (its state already restored by the VMM).
    #[inline(always)]
    fn restart(&mut self, t: usize, action: VerdictAction) {
        let caller = self.in_flight_caller(t);
        let task = &mut self.tasks[t];
        task.generation = task.generation.wrapping_add(1);
        task.regs = task.start_regs(t, true);
        task.budget_used = 0;
        task.held_fault = 0;
        task.restarted = true;
        // After the registers: what to undo is not held across their stores (on KVM-PVM each
        // reload of the task's address would be an emulated instruction).
        let undo = task.window.roll_back();
        task.notifications |= undo.notifications;
        task.activity = task.activity.wrapping_add(1);
        let fresh = action == VerdictAction::RestartFresh;
        if fresh && task.boundaries > 0 {
            // Ids made before now are answered StateLost ([`Kernel::target`]).
            task.lost_state = true;
            task.lost_generation = task.generation;
        }
        if fresh {
            self.timers.cancel(t);
        } else if let Some((deadline, bits)) = undo.timer {
            self.timers.set(t, deadline, bits);
        }
        self.tasks[t].state = State::Runnable;
        self.queues.insert(t);
        let id = self.id(t).0;
        if let Some(c) = caller {
            if action == VerdictAction::Replay && !undo.replayed {
                // Queued again, first in line for its restarted server.
                self.tasks[c].state = State::Sending {
                    to: t as u16,
                    call: true,
                };
                self.tasks[c].replaying = true;
                self.tasks[t].senders |= 1 << c;
            } else {
                self.answer_error(
                    c,
                    if fresh {
                        Error::StateLost
                    } else {
                        Error::PeerRestarted
                    },
                    id,
                );
            }
        }
        // A task that never reached a boundary had no state to lose: its callers stay queued.
        if fresh && self.tasks[t].boundaries > 0 {
            let senders = core::mem::take(&mut self.tasks[t].senders);
            for s in (0..self.count).filter(|s| senders & (1 << s) != 0) {
                self.answer_error(s, Error::StateLost, id);
            }
        }
    }

    /// Wakes `task` from its call or send with `error` and the target's current id in rdi.
    #[inline(always)]
    fn answer_error(&mut self, task: usize, error: Error, current: u64) {
        self.tasks[task].regs.rdi = current;
        self.wake(task, error as u64);
    }

    /// The current task took CPU exception `vector` (error code, CR2); `guard_hit` when the
    /// address lies in its stack guard page.
    pub fn exception(&mut self, vector: u64, error: u64, cr2: u64, guard_hit: bool) -> Effect {
        let Some(t) = self.current else {
            return Effect::None;
        };
        self.crash_on_exception(t, vector, error, cr2, guard_hit);
        Effect::Fault(None)
    }

    /// [`Kernel::exception`] of task `t` (the current one), for a caller that hands the record
    /// to the VMM itself.
    pub fn crash_on_exception(
        &mut self,
        t: usize,
        vector: u64,
        error: u64,
        cr2: u64,
        guard_hit: bool,
    ) {
        let cause = FaultCause::from_exception(vector, guard_hit);
        let addr = if vector == 14 { cr2 } else { 0 };
        self.crash(t, cause, vector as u32, error, addr);
    }

    /// The current task panicked with the text at word 0 / word 1.
    #[inline(always)]
    pub(crate) fn panicked(&mut self, me: usize) -> Effect {
        let regs = self.tasks[me].regs;
        let text: Option<CheckedSlice> = self.tasks[me]
            .regions
            .check(UserSlice::new(regs.rdx, regs.r8));
        self.crash(me, FaultCause::Panic, NO_VECTOR, 0, 0);
        Effect::Fault(text)
    }

    /// Task `t` overran its per-message budget.
    #[inline(always)]
    pub(crate) fn hang(&mut self, t: usize) -> Effect {
        self.crash(t, FaultCause::BudgetOverrun, NO_VECTOR, 0, 0);
        Effect::Fault(None)
    }
}
