//! Confining faults: a task that takes a CPU exception, panics or overruns its per-message
//! budget is stopped (never scheduled again), the tasks whose messages or calls it held are
//! failed with `PeerCrashed`, and a [`FaultRecord`] for the VMM is made. Everything else keeps
//! running.

use crate::kernel::{Effect, Kernel};
use crate::task::State;
use crate::umem::{CheckedSlice, UserSlice};
use abi::ipc::Error;
use abi::monitor::{FaultCause, FaultRecord};

/// `FaultRecord::vector` for faults that are not CPU exceptions.
pub const NO_VECTOR: u32 = u32::MAX;

impl<const N: usize> Kernel<N> {
    /// Stops task `t` for `cause`; its record becomes [`Kernel::last_fault`].
    pub fn crash(&mut self, t: usize, cause: FaultCause, vector: u32, error: u64, addr: u64) {
        let task = &self.tasks[t];
        let was = task.state;
        self.faults += 1;
        self.last_fault = FaultRecord {
            seq: self.faults,
            task: t as u32,
            generation: task.generation,
            cause: cause as u32,
            vector,
            rip: task.regs.rip,
            addr,
            error_code: error,
            messages: task.messages,
            reserved: 0,
        };
        self.block(t, State::Crashed);
        self.timers.cancel(t);
        let task = &mut self.tasks[t];
        task.notifications = 0;
        task.in_message = false;
        let senders = core::mem::take(&mut task.senders);
        if let State::Sending { to, .. } = was
            && let Some(target) = self.tasks.get_mut(usize::from(to))
        {
            target.senders &= !(1 << t);
        }
        for s in 0..self.count {
            let held = senders & (1 << s) != 0
                || self.tasks[s].state == State::AwaitingReply { from: t as u16 };
            if held {
                self.wake(s, Error::PeerCrashed as u64);
            }
        }
    }

    /// The current task took CPU exception `vector` (error code, CR2); `guard_hit` when the
    /// address lies in its stack guard page.
    pub fn exception(&mut self, vector: u64, error: u64, cr2: u64, guard_hit: bool) -> Effect {
        let Some(t) = self.current else {
            return Effect::None;
        };
        let cause = FaultCause::from_exception(vector, guard_hit);
        let addr = if vector == 14 { cr2 } else { 0 };
        self.crash(t, cause, vector as u32, error, addr);
        Effect::Fault(None)
    }

    /// The current task panicked with the text at word 0 / word 1.
    pub(crate) fn panicked(&mut self, me: usize) -> Effect {
        let regs = self.tasks[me].regs;
        let text: Option<CheckedSlice> = self.tasks[me]
            .regions
            .check(UserSlice::new(regs.rdx, regs.r8));
        self.crash(me, FaultCause::Panic, NO_VECTOR, 0, 0);
        Effect::Fault(text)
    }

    /// Task `t` overran its per-message budget.
    pub(crate) fn hang(&mut self, t: usize) -> Effect {
        self.crash(t, FaultCause::BudgetOverrun, NO_VECTOR, 0, 0);
        Effect::Fault(None)
    }
}
