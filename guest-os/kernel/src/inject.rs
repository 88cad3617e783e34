//! Faults the VMM injects from outside ([`abi::fault::Executor::Vmm`]): the kernel tells the
//! VMM when one is due, and single-steps the faulted task toward an injected instruction when
//! the VMM asks, to tell whether it was used.
//!
//! ```text
//!  message N of task T delivered, a VMM kind planned for it
//!        ─► INJECT START (T, word, N, T's registers): the VMM corrupts T's code, memory or
//!           registers (the kernel takes the general registers back) and answers: watch an
//!           address (single-step T toward it), be told when the message is over
//!  T runs ─► with TF set: a #DB after each instruction; the kernel counts the steps and stops
//!           when T is about to execute the watched address (reached), after `budget` steps,
//!           when T crashes, or when its next message comes
//!  message N+1 delivered ─► INJECT END: the VMM puts a transient fault back
//!  `kernel:KIND@N` ─► at the N-th message delivered to any task, INJECT START for the kernel
//! ```
//!
//! Nothing here runs on a message without a plan: the check is the one comparison
//! [`crate::task::Task::next_due`] (and one for the kernel's own plan).

use crate::kernel::{Kernel, Platform};
use crate::stepping::Stepping;
use crate::task::{NO_FAULT, PlannedFault};
use abi::monitor::{InjectRecord, KERNEL_TARGET, StepRecord};

impl<const N: usize, M: Platform> Kernel<N, M> {
    /// Something of `task`'s plan may be due at the message just delivered (the caller found
    /// [`crate::task::Task::next_due`] reached): the word the task gets in rcx set, then the
    /// VMM told (which may change any register, rcx too, as the task resumes).
    #[inline(never)]
    pub(crate) fn fault_due(&mut self, task: usize) {
        let due = self.tasks[task].take_due_fault();
        self.tasks[task].regs.rcx = due.handed;
        if due.end {
            self.end_injected(task);
        }
        if due.inject != 0 {
            self.start_injected(task, due.inject);
        }
    }

    fn start_injected(&mut self, task: usize, word: u32) {
        let t = &mut self.tasks[task];
        let message = t.messages;
        let reply = self.platform.inject(
            task as u32,
            InjectRecord::START,
            u64::from(word),
            message,
            Some(&mut t.regs),
        );
        // The VMM hears of the end only if there is room to plan it.
        let ends = reply.notify_end && t.plan_end(message.saturating_add(1));
        if reply.watch != 0 && ends && self.stepping.is_none() {
            let s = Stepping {
                task,
                watch: reply.watch,
                budget: reply.budget,
                steps: 0,
            };
            // A #DB comes after an instruction: the one it resumes at is checked here.
            if t.regs.rip == reply.watch {
                self.platform.step_outcome(s.record(StepRecord::REACHED));
                return;
            }
            t.regs.rflags |= crate::stepping::TRAP_FLAG;
            self.stepping = Some(s);
            self.platform.step_outcome(s.record(StepRecord::STEPPING));
        }
    }

    fn end_injected(&mut self, task: usize) {
        self.stop_stepping(task, StepRecord::ENDED);
        let message = self.tasks[task].messages;
        self.platform
            .inject(task as u32, InjectRecord::END, 0, message, None);
    }

    /// Ends the stepping of `task`, if it is stepped, with `outcome`.
    pub(crate) fn stop_stepping(&mut self, task: usize, outcome: u32) {
        if let Some(s) = self.stepping.filter(|s| s.task == task) {
            self.tasks[task].regs.rflags &= !crate::stepping::TRAP_FLAG;
            self.stepping = None;
            self.platform.step_outcome(s.record(outcome));
        }
    }

    /// The task being single-stepped, if any.
    pub fn stepped(&self) -> Option<usize> {
        self.stepping.map(|s| s.task)
    }

    /// A debug trap (#DB) from task `task`: true when it is a step of the stepping (the task
    /// goes on), false when it is not ours (a fault of the task).
    pub fn single_step(&mut self, task: usize) -> bool {
        let Some(s) = self.stepping.as_mut().filter(|s| s.task == task) else {
            return false;
        };
        if self.tasks[task].regs.rip == s.watch {
            self.stop_stepping(task, StepRecord::REACHED);
        } else {
            s.steps += 1;
            if s.steps >= u64::from(s.budget) {
                self.stop_stepping(task, StepRecord::BUDGET);
            }
        }
        true
    }

    /// A live fault request from the VMM (`abi::monitor::LiveRequest`): `kind` for server
    /// `task`'s next message, or [`abi::monitor::LiveRequest::CANCEL`]; returns the result code.
    pub fn live_request(&mut self, task: usize, kind: u32) -> u32 {
        use crate::task::Live;
        use abi::monitor::LiveRequest as R;
        if task >= self.count || !self.tasks[task].server {
            return R::NO_TASK;
        }
        let live = if kind == R::CANCEL {
            self.tasks[task].cancel_live()
        } else if abi::fault::FaultKind::from_number(u64::from(kind)).is_none() {
            return R::BAD_KIND;
        } else {
            self.tasks[task].plan_live(kind)
        };
        match live {
            Live::Planned => R::PLANNED,
            Live::Cancelled => R::CANCELLED,
            Live::NothingPending => R::NOTHING_PENDING,
            Live::Full => R::FULL,
        }
    }

    /// Plans a fault for the kernel itself: at the `message`-th message delivered to any task.
    pub fn plan_kernel_fault(&mut self, fault: PlannedFault) -> bool {
        if self.kernel_fault != NO_FAULT {
            return false;
        }
        self.kernel_fault = fault;
        true
    }

    /// The kernel's own fault is due (`delivered` reached its message).
    #[inline(never)]
    pub(crate) fn kernel_fault_due(&mut self) {
        let f = self.kernel_fault;
        if f.message != self.delivered {
            return;
        }
        self.kernel_fault = if f.period != 0 {
            PlannedFault {
                message: f.message.saturating_add(f.period),
                ..f
            }
        } else {
            NO_FAULT
        };
        self.platform.inject(
            KERNEL_TARGET,
            InjectRecord::START,
            u64::from(f.kind),
            self.delivered,
            None,
        );
    }
}
