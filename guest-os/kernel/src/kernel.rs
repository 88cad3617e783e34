//! The kernel's state: the task table, run queues, timers and the tick count, and the three
//! ways in (system call, timer tick, exception). Pure logic: the architecture layer saves the
//! registers into the current task's [`SavedRegs`](crate::task::SavedRegs), calls one of these,
//! carries out the returned [`Effect`] and resumes whatever [`Kernel::schedule`] picks.

use crate::sched::RunQueues;
use crate::task::{StartContext, State, Task};
use crate::timer::Timers;
use crate::umem::{CheckedSlice, Regions};
use abi::ipc::TaskId;
use abi::manifest::MAX_SERVERS;
use abi::monitor::{FaultRecord, StepRecord, WorkloadReport};

/// Priority levels.
pub const PRIORITIES: usize = 4;
/// Default per-message budget of a server, in ticks it ran (100 Hz): 2 s of its own CPU time.
pub const DEFAULT_BUDGET: u32 = 200;

/// What the architecture layer must do after a kernel entry. Small on purpose (records stay
/// where they are, in the kernel or with its platform): it is returned on every trap, and every
/// byte moved costs in ring 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing.
    None,
    /// Write these bytes of the current task to the console.
    Console(CheckedSlice),
    /// A task stopped: hand [`Kernel::last_fault`] to the VMM (and print the task's panic
    /// message, checked, if any).
    Fault(Option<CheckedSlice>),
    /// Hand [`Kernel::report`], the workload's figures, to the VMM.
    Report,
    /// Publish `Kernel::progress` of this server task (its clients' figures so far).
    Progress(usize),
    /// Server `task` reached a message boundary that needs a snapshot (its `snapshots`-th),
    /// closing request `label` (0: none): the VMM snapshots it.
    Boundary {
        /// The server.
        task: usize,
        /// The label of the request the boundary closed, if it fits 16 bits (else `u16::MAX`).
        label: u16,
    },
    /// Stop the VM with this status.
    Exit(u8),
}

/// How a task is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskSetup {
    /// Name (NUL-padded).
    pub name: [u8; 16],
    /// Priority (0 first).
    pub priority: u8,
    /// Servers get a per-message budget.
    pub server: bool,
    /// May stop the VM and report.
    pub may_exit: bool,
    /// Its memory.
    pub regions: Regions,
    /// Entry point.
    pub entry: u64,
    /// Initial stack pointer.
    pub stack_top: u64,
    /// Passed in rsi and rdx (rdi holds the task's own id).
    pub args: [u64; 2],
}

/// What the kernel needs of the machine under it: a word of the current task's memory at an
/// address it checked (its state canaries, at every boundary), the labels of a task's requests
/// whose boundary needs no snapshot (on the machine, the VMM keeps them in its monitor page:
/// the image declares which requests are read-only, and the VMM checks it), and the place its
/// fault record goes (the monitor page: written there in place, not built and then copied), and
/// the INJECT call and step record of faults the VMM injects ([`crate::inject`]). A type
/// parameter, not a function pointer: on KVM-PVM an indirect call in emulated
/// ring 0 costs more than its instructions (the call, the return and the callee's frame are all
/// emulated).
pub trait Platform {
    /// The `u64` at `addr`: aligned, inside the current task's state arena (checked when it was
    /// declared), whose address space is loaded.
    fn read_u64(&self, addr: u64) -> u64;
    /// Bit `l` set: a boundary of task `task` that closes a request with label `l` needs no
    /// snapshot.
    fn read_only(&self, task: usize) -> u64;
    /// The last fault record.
    fn fault_record(&self) -> &FaultRecord;
    /// The last fault record, to write the next one.
    fn fault_record_mut(&mut self) -> &mut FaultRecord;
    /// An INJECT call about `task` (`abi::monitor::KERNEL_TARGET` for the kernel) in `phase`, for the plan's
    /// `word` at message `message`; `regs`: the task's registers, which the VMM may change
    /// (`None` for `END` and the kernel).
    fn inject(
        &mut self,
        task: u32,
        phase: u32,
        word: u64,
        message: u64,
        regs: Option<&mut crate::task::SavedRegs>,
    ) -> InjectReply;
    /// How the stepping stands (written where the VMM reads it).
    fn step_outcome(&mut self, step: StepRecord);
}

/// The VMM's answer to an INJECT `START`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectReply {
    /// Single-step the task until it is about to execute this address (0: no).
    pub watch: u64,
    /// Most steps.
    pub budget: u32,
    /// Tell the VMM when the task's next message is delivered.
    pub notify_end: bool,
}

/// A kernel with no machine under it (tests of everything else): every canary reads intact,
/// the read-only masks and the fault record are kept here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Intact {
    /// Per task: its read-only labels (see [`Platform::read_only`]).
    pub read_only: [u64; MAX_SERVERS],
    /// The last fault record.
    pub record: FaultRecord,
    /// The last INJECT call: task, phase, word, message.
    pub injected: (u32, u32, u64, u64),
    /// INJECT calls made.
    pub inject_calls: u32,
    /// What every INJECT call is answered.
    pub reply: InjectReply,
    /// The stepping record, as last written.
    pub step: abi::monitor::StepRecord,
}

impl Intact {
    /// No fault recorded, nothing read-only.
    pub const fn new() -> Self {
        Self {
            read_only: [0; MAX_SERVERS],
            record: FaultRecord::ZERO,
            injected: (0, 0, 0, 0),
            inject_calls: 0,
            reply: InjectReply {
                watch: 0,
                budget: 0,
                notify_end: false,
            },
            step: abi::monitor::StepRecord {
                task: 0,
                outcome: 0,
                watch: 0,
                steps: 0,
            },
        }
    }
}

impl Platform for Intact {
    fn inject(
        &mut self,
        task: u32,
        phase: u32,
        word: u64,
        message: u64,
        _regs: Option<&mut crate::task::SavedRegs>,
    ) -> InjectReply {
        self.injected = (task, phase, word, message);
        self.inject_calls += 1;
        self.reply
    }

    fn step_outcome(&mut self, step: StepRecord) {
        self.step = step;
    }

    fn read_u64(&self, _: u64) -> u64 {
        abi::ipc::STATE_CANARY
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

/// The kernel of up to `N` tasks on platform `M`.
#[derive(Debug)]
pub struct Kernel<const N: usize, M = Intact> {
    /// The task table; entries past `count` are unused.
    pub tasks: [Task; N],
    /// Tasks in use.
    pub count: usize,
    /// Ready tasks.
    pub queues: RunQueues<PRIORITIES>,
    /// One-shot timers.
    pub timers: Timers<N>,
    /// Timer ticks since boot.
    pub ticks: u64,
    /// The task running, `None` when idle.
    pub current: Option<usize>,
    /// Fault records made so far.
    pub faults: u64,
    /// The workload's figures, as last reported.
    pub report: WorkloadReport,
    /// Per server task: the figures its clients published so far (`Sys::Progress`).
    pub progress: [WorkloadReport; N],
    /// Per-message budget of servers, in ticks.
    pub budget: u32,
    /// Reads the current task's memory at checked addresses (its state canaries) and holds
    /// the fault record.
    pub platform: M,
    /// The earliest `restart_at` of a `Restarting` task (`u64::MAX`: none).
    pub next_restart: u64,
    /// Messages delivered to any task (what a fault planned for the kernel counts).
    pub delivered: u64,
    /// The fault planned for the kernel itself ([`crate::task::NO_FAULT`]: none).
    pub kernel_fault: crate::task::PlannedFault,
    /// The single-stepping of a task toward an injected instruction.
    pub(crate) stepping: Option<crate::stepping::Stepping>,
}

impl<const N: usize> Kernel<N> {
    /// A kernel with no task, whose canaries always read intact.
    pub const fn new() -> Self {
        Self::on(Intact::new())
    }
}

impl<const N: usize, M: Platform> Kernel<N, M> {
    /// A kernel with no task on `platform`.
    pub const fn on(platform: M) -> Self {
        Self {
            tasks: [Task::EMPTY; N],
            count: 0,
            queues: RunQueues::new(),
            timers: Timers::new(),
            ticks: 0,
            current: None,
            faults: 0,
            report: WorkloadReport::ZERO,
            progress: [WorkloadReport::ZERO; N],
            budget: DEFAULT_BUDGET,
            platform,
            next_restart: u64::MAX,
            delivered: 0,
            kernel_fault: crate::task::NO_FAULT,
            stepping: None,
        }
    }

    /// The last fault record (kept by the platform).
    pub fn last_fault(&self) -> FaultRecord {
        *self.platform.fault_record()
    }

    /// Adds a task, ready to enter at `setup.entry`; returns its index.
    pub fn add_task(&mut self, setup: &TaskSetup) -> Option<usize> {
        let index = self.count;
        let task = self.tasks.get_mut(index)?;
        task.name = setup.name;
        task.priority = setup.priority;
        task.server = setup.server;
        task.may_exit = setup.may_exit;
        task.regions = setup.regions;
        task.state = State::Runnable;
        task.start = StartContext {
            entry: setup.entry,
            stack_top: setup.stack_top,
            args: setup.args,
        };
        task.regs = task.start_regs(index, false);
        self.count += 1;
        self.queues.set_priority(index, setup.priority);
        self.queues.insert(index);
        Some(index)
    }

    /// Picks the task to run next (`rotate`: the current one's time slice is over) and makes it
    /// current; `None` means idle.
    #[inline(always)]
    pub fn schedule(&mut self, rotate: bool) -> Option<usize> {
        let next = if rotate {
            self.queues.rotate(self.current)
        } else {
            self.queues.pick(self.current)
        };
        self.current = next;
        next
    }

    /// A timer tick. `running` is true when it interrupted a task (not the idle loop): that task
    /// is charged the tick. Returns the effect (a hang's fault record) and whether the current
    /// task's time slice is over. One comparison for the timers unless one is due: a hang is
    /// found here, and its recovery latency starts at this entry. A hang does not rotate: the
    /// hung task is stopped, and restarted (if it is) with a fresh slice, first in line as after
    /// any other fault.
    #[inline(always)]
    pub fn tick(&mut self, running: bool) -> (Effect, bool) {
        self.ticks += 1;
        if self.timers.due(self.ticks) {
            self.fire_timers();
        }
        if self.ticks >= self.next_restart {
            self.restart_due();
        }
        let Some(c) = self.current.filter(|_| running) else {
            return (Effect::None, true);
        };
        let task = &mut self.tasks[c];
        if task.server && task.in_message {
            task.budget_used += 1;
            // A task single-stepped runs a hundred times slower: its budget waits.
            if task.budget_used > self.budget && self.stepped() != Some(c) {
                return (self.hang(c), false);
            }
        }
        (Effect::None, true)
    }

    /// Posts the notification bits of every timer due now.
    fn fire_timers(&mut self) {
        let mut fired = [0u64; N];
        self.timers.expire(self.ticks, |task, bits| {
            if let Some(f) = fired.get_mut(task) {
                *f |= bits;
            }
        });
        for (task, bits) in fired.iter().enumerate() {
            if *bits != 0 {
                self.post(task, *bits);
            }
        }
    }

    /// ORs `bits` into `task`'s notifications, delivering them if it waits in receive.
    #[inline(always)]
    pub(crate) fn post(&mut self, task: usize, bits: u64) {
        let t = &mut self.tasks[task];
        if t.state == State::Crashed {
            return;
        }
        t.notifications |= bits;
        if t.state == State::Receiving {
            self.deliver_notification(task);
            self.queues.insert(task);
        }
    }

    /// Makes `task` runnable with status `rax` (it was blocked); a call it made is over.
    #[inline(always)]
    pub(crate) fn wake(&mut self, task: usize, rax: u64) {
        let t = &mut self.tasks[task];
        t.regs.rax = rax;
        t.state = State::Runnable;
        t.replaying = false;
        self.queues.insert(task);
    }

    /// Takes `task` off the run queues in `state`.
    #[inline(always)]
    pub(crate) fn block(&mut self, task: usize, state: State) {
        self.tasks[task].state = state;
        self.queues.remove(task);
    }

    /// The id of task `index` at its current generation.
    #[inline(always)]
    pub fn id(&self, index: usize) -> TaskId {
        TaskId::new(index as u16, self.tasks[index].generation)
    }
}

impl<const N: usize> Default for Kernel<N> {
    fn default() -> Self {
        Self::new()
    }
}
