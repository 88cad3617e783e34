//! System-call dispatch: the call number in the current task's rax picks the handler; the
//! result goes back into its registers (or another task's, for IPC).

use crate::kernel::{Effect, Kernel};
use crate::umem::UserSlice;
use abi::ipc::{Error, Sys, TaskId};
use abi::monitor::WorkloadReport;
use abi::status::GUEST_MAX;

impl<const N: usize> Kernel<N> {
    /// Handles the system call of the current task.
    pub fn syscall(&mut self) -> Effect {
        let Some(me) = self.current else {
            return Effect::None;
        };
        let regs = self.tasks[me].regs;
        let Some(sys) = Sys::from_number(regs.rax) else {
            self.tasks[me].regs.rax = Error::UnknownCall as u64;
            return Effect::None;
        };
        let ok = |k: &mut Self| k.tasks[me].regs.rax = 0;
        match sys {
            Sys::Null | Sys::Yield => ok(self),
            Sys::Send => self.send(me, false),
            Sys::Call => self.send(me, true),
            Sys::Recv => self.recv(me),
            Sys::Reply => self.reply(me),
            Sys::ReplyRecv => self.reply_recv(me),
            Sys::Notify => self.notify(me),
            Sys::Timer => {
                let deadline = self.ticks.saturating_add(regs.rdx.max(1));
                if self.timers.set(me, deadline, regs.r8) {
                    ok(self);
                } else {
                    self.tasks[me].regs.rax = Error::NoTimer as u64;
                }
            }
            Sys::Ticks => {
                self.tasks[me].regs.rdx = self.ticks;
                ok(self);
            }
            Sys::TaskInfo => self.task_info(me, regs.rdi),
            Sys::ConsoleWrite => {
                let slice = UserSlice::new(regs.rdx, regs.r8);
                return match self.tasks[me].regions.check(slice) {
                    Some(checked) => {
                        ok(self);
                        Effect::Console(checked)
                    }
                    None => {
                        self.tasks[me].regs.rax = Error::BadArgument as u64;
                        Effect::None
                    }
                };
            }
            Sys::Panic => return self.panicked(me),
            Sys::Report | Sys::VmExit if !self.tasks[me].may_exit => {
                self.tasks[me].regs.rax = Error::NotPermitted as u64;
            }
            Sys::Report => {
                ok(self);
                self.report = WorkloadReport {
                    ops: regs.rdx,
                    errors: regs.r8,
                    retries: regs.r9,
                    lost: regs.r10,
                    mismatches: regs.r12,
                };
                return Effect::Report;
            }
            Sys::VmExit => return Effect::Exit(regs.rdx.min(u64::from(GUEST_MAX)) as u8),
        }
        Effect::None
    }

    fn task_info(&mut self, me: usize, index: u64) {
        let Some(t) = usize::try_from(index).ok().filter(|&t| t < self.count) else {
            self.fail(me, (Error::NoSuchTask, index));
            return;
        };
        let task = &self.tasks[t];
        let name = abi::ipc::pack_name(&task.name);
        let state = match task.state {
            crate::task::State::Runnable => abi::ipc::TaskState::Runnable,
            crate::task::State::Crashed => abi::ipc::TaskState::Crashed,
            _ => abi::ipc::TaskState::Blocked,
        };
        let id: TaskId = self.id(t);
        let regs = &mut self.tasks[me].regs;
        regs.rax = 0;
        regs.rdi = id.0;
        regs.rdx = name[0];
        regs.r8 = name[1];
        regs.r9 = state as u64;
    }
}
