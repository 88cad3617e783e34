//! System-call dispatch: the call number in the current task's rax picks the handler; the
//! result goes back into its registers (or another task's, for IPC).

use crate::kernel::{Effect, Kernel, Platform};
use crate::umem::UserSlice;
use abi::ipc::{Error, Sys, TaskId};
use abi::monitor::WorkloadReport;
use abi::status::GUEST_MAX;

impl<const N: usize, M: Platform> Kernel<N, M> {
    /// Handles the system call of the current task.
    #[inline(always)]
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
            Sys::Recv => return self.recv_call(me),
            Sys::Reply => self.reply(me),
            Sys::ReplyRecv => return self.reply_recv(me),
            Sys::Notify => self.notify(me),
            Sys::Timer => {
                let deadline = self.ticks.saturating_add(regs.rdx.max(1));
                let t = &mut self.tasks[me];
                t.activity = t.activity.wrapping_add(1);
                // Recovery puts this timer back if the task rolls back past this call.
                let timers = &self.timers;
                t.window.timer_set(|| timers.get(me));
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
            Sys::DeclareState => self.declare_state(me, [regs.rdx, regs.r8]),
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
            Sys::Progress => {
                let delta = WorkloadReport {
                    ops: regs.rdx,
                    errors: regs.r8,
                    retries: regs.r9,
                    lost: regs.r10,
                    mismatches: regs.r12,
                };
                let server = usize::from(TaskId(regs.rdi).index());
                if server >= self.count || !self.tasks[server].server {
                    self.fail(me, (Error::NoSuchTask, regs.rdi));
                    return Effect::None;
                }
                ok(self);
                self.progress[server] = self.progress[server].plus(delta);
                return Effect::Progress(server);
            }
        }
        Effect::None
    }

    /// Records task `me`'s state canaries after checking each is an aligned `u64` inside its
    /// state arena.
    fn declare_state(&mut self, me: usize, addrs: [u64; 2]) {
        let t = &mut self.tasks[me];
        let state = t.regions.state;
        let inside =
            |a: u64| a.is_multiple_of(8) && state.contains_range(&abi::manifest::Range::new(a, 8));
        if addrs.iter().all(|&a| inside(a)) {
            t.canaries = addrs;
            t.regs.rax = 0;
        } else {
            t.regs.rax = Error::BadArgument as u64;
        }
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
            crate::task::State::Restarting => abi::ipc::TaskState::Blocked,
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
