//! Tasks: the saved register frame (the task's context record), its IPC state, its regions and
//! its bookkeeping (generation, messages handled, time budget), and what recovery needs: the
//! restart context (entry, fresh stack, arguments), its recovery window since its last
//! boundary ([`crate::window`]), its activity count and its planned faults.

use crate::umem::Regions;
use crate::window::Window;
use abi::fault::AFTER_SEND;
use abi::ipc::{MSG_WORDS, TaskId};

/// A task's registers as the trap entry saves them: the general registers the entry pushes,
/// the vector and error code, then the frame the CPU pushed. Lowest address first; the trap
/// entry writes it in place (the TSS's RSP0 points just past it), so it is never copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SavedRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// Interrupt vector (pushed by the entry stub).
    pub vector: u64,
    /// Error code (the CPU's, or 0).
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl SavedRegs {
    /// All zero.
    pub const ZERO: SavedRegs = SavedRegs {
        rax: 0,
        rbx: 0,
        rcx: 0,
        rdx: 0,
        rsi: 0,
        rdi: 0,
        rbp: 0,
        r8: 0,
        r9: 0,
        r10: 0,
        r11: 0,
        r12: 0,
        r13: 0,
        r14: 0,
        r15: 0,
        vector: 0,
        error: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };
}

/// Bytes of [`SavedRegs`]: a multiple of 16, as the CPU aligns RSP0 to 16 bytes.
pub const SAVED_REGS_SIZE: usize = core::mem::size_of::<SavedRegs>();
const _: () = assert!(SAVED_REGS_SIZE.is_multiple_of(16));

impl SavedRegs {
    /// The message words (rdx, r8, r9, r10, r12, r13).
    pub fn words(&self) -> [u64; MSG_WORDS] {
        [self.rdx, self.r8, self.r9, self.r10, self.r12, self.r13]
    }

    /// Sets the message words.
    pub fn set_words(&mut self, w: [u64; MSG_WORDS]) {
        [self.rdx, self.r8, self.r9, self.r10, self.r12, self.r13] = w;
    }

    /// Delivers a message: status 0, sender in rdi, label in rsi, words.
    pub fn deliver(&mut self, sender: TaskId, label: u64, words: [u64; MSG_WORDS]) {
        self.rax = 0;
        self.rdi = sender.0;
        self.rsi = label;
        self.set_words(words);
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Ready or running.
    Runnable,
    /// Waiting for task `to` to receive its message; `call` when a reply is wanted too.
    Sending { to: u16, call: bool },
    /// Waiting in receive.
    Receiving,
    /// Its call was received by `from`; waiting for the reply.
    AwaitingReply { from: u16 },
    /// Stopped by a fault.
    Crashed,
    /// Restored after a crash, waiting for its restart tick (`Task::restart_at`): not run, but
    /// messages to it queue as for a busy task.
    Restarting,
}

/// Faults a task can have planned ([`Task::faults`]): four from the VMM's plan, and one slot
/// kept for the end of an injected fault's message ([`INJECT_END`]).
pub const PLANNED_FAULTS: usize = 5;

/// The kind of a [`PlannedFault`] the kernel plans itself: the message after one a fault was
/// injected into, at whose delivery the kernel tells the VMM the faulted message is over
/// (INJECT `END`). Not a fault kind.
pub const INJECT_END: u32 = 0xff;

/// What is due for a task at the message just delivered ([`Task::take_due_fault`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// The fault word handed to the task in rcx (a kind it executes), or 0.
    pub handed: u64,
    /// A kind the VMM injects (its plan's word), or 0.
    pub inject: u32,
    /// The message of an injected fault is over.
    pub end: bool,
}

/// A fault planned for a task's `message`-th message (then every `period` more, if not 0).
/// With [`AFTER_SEND`] in its kind it stays armed from that message on, handed over with every
/// message, until the task crashes while holding it ([`Task::take_due_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedFault {
    /// The message it strikes next (an after-send fault: from which it is armed).
    pub message: u64,
    /// An `abi::fault::FaultKind` number, maybe with [`AFTER_SEND`].
    pub kind: u32,
    /// Messages until it strikes again (0: once).
    pub period: u64,
}

/// An unused entry of [`Task::faults`].
pub const NO_FAULT: PlannedFault = PlannedFault {
    message: u64::MAX,
    kind: 0,
    period: 0,
};

/// Where a task starts, and restarts after a crash: entry point, top of a fresh stack, the
/// arguments it gets. Its state pointer needs no saving: a task's state lies at fixed addresses
/// in its state arena (linked there), which the VMM restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartContext {
    /// Entry point.
    pub entry: u64,
    /// Initial stack pointer.
    pub stack_top: u64,
    /// Passed in rsi and rdx (rdi holds the task's own id, rcx 1 on a restart).
    pub args: [u64; 2],
}

/// RFLAGS of a task: interrupts on, IOPL 0, bit 1 set.
pub const USER_RFLAGS: u64 = 0x202;

/// One task. Its fields are the kernel's own (its modules keep their invariants: IPC state and
/// senders in `ipc`, the recovery window in [`Window`], planned faults here); the binary sees
/// the context record, the regions and the snapshot count, and goes through methods for the
/// rest.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct Task {
    /// The context record. First field: the trap entry finds it at the task's address.
    pub regs: SavedRegs,
    /// IPC state.
    pub(crate) state: State,
    /// Current generation (the kernel owns it; a restart bumps it).
    pub(crate) generation: u32,
    /// Scheduling priority (0 first).
    pub(crate) priority: u8,
    /// Servers have a per-message budget; apps do not.
    pub(crate) server: bool,
    /// May stop the VM and report workload figures.
    pub(crate) may_exit: bool,
    /// Between a receive's return and the next receive.
    pub(crate) in_message: bool,
    /// Ticks run since the last message boundary.
    pub(crate) budget_used: u32,
    /// Pending notification bits.
    pub(crate) notifications: u64,
    /// Bitmask of tasks blocked sending to this one.
    pub(crate) senders: u32,
    /// Message boundaries passed (receives completed).
    pub(crate) messages: u64,
    /// Memory the task may hand the kernel pointers into.
    pub regions: Regions,
    /// Name (NUL-padded).
    pub(crate) name: [u8; 16],
    /// Where it (re)starts.
    pub(crate) start: StartContext,
    /// Boundaries passed (a server's receives).
    pub(crate) boundaries: u64,
    /// Boundaries at which the VMM snapshotted it: the sequence number of its newest snapshot.
    /// Only boundaries that close a state-changing request (or a notification, or a receive
    /// without a reply) are snapshotted ([`crate::ipc`]).
    pub snapshots: u64,
    /// As a caller: its call is being delivered again after the server crashed on it.
    pub(crate) replaying: bool,
    /// What it did since its last snapshotted boundary ([`Window`]).
    pub(crate) window: Window,
    /// Addresses of its two state canaries (0: none declared).
    pub(crate) canaries: [u64; 2],
    /// Restarted and not yet run: its first instruction is next ([`Task::take_restarted`]).
    pub(crate) restarted: bool,
    /// While `Restarting`: the tick from which it runs.
    pub(crate) restart_at: u64,
    /// Planned faults, by ascending message; unused entries are [`NO_FAULT`].
    pub(crate) faults: [PlannedFault; PLANNED_FAULTS],
    /// The fault word the message being handled came with ([`Task::take_due_fault`]; 0: none):
    /// a crash now reports its kind as injected, and consumes an after-send plan. Cleared by
    /// the next message and by a restart.
    pub(crate) held_fault: u32,
    /// Things it did that may have touched others or changed what it does next: messages and
    /// notifications it began, sends, calls and notifies it made, timers it set, restarts.
    /// Only differences matter (a recovery window's `PEER_QUIET`).
    pub(crate) activity: u64,
    /// It was restarted fresh (from its boot image, after reaching a boundary) at least once.
    pub(crate) lost_state: bool,
    /// The generation it got at its last such fresh restart: ids of older generations are
    /// answered `StateLost`.
    pub(crate) lost_generation: u32,
    /// The fault the VMM planned while the VM runs ([`Task::plan_live`]), as it sits in
    /// `faults` until it strikes: what a cancel removes.
    pub(crate) live: Option<PlannedFault>,
}

/// What became of a live fault request (`abi::monitor::LiveRequest::result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Live {
    /// Planned for the task's next message.
    Planned,
    /// The pending one was removed.
    Cancelled,
    /// Nothing was pending to cancel (it struck already, or none was planned).
    NothingPending,
    /// The task's plan has no room.
    Full,
}

impl Task {
    /// A task that has not been set up.
    pub const EMPTY: Task = Task {
        regs: SavedRegs::ZERO,
        state: State::Crashed,
        generation: 0,
        priority: 0,
        server: false,
        may_exit: false,
        in_message: false,
        budget_used: 0,
        notifications: 0,
        senders: 0,
        messages: 0,
        regions: Regions::EMPTY,
        name: [0; 16],
        start: StartContext {
            entry: 0,
            stack_top: 0,
            args: [0; 2],
        },
        boundaries: 0,
        snapshots: 0,
        replaying: false,
        window: Window::EMPTY,
        canaries: [0; 2],
        restarted: false,
        restart_at: 0,
        faults: [NO_FAULT; PLANNED_FAULTS],
        held_fault: 0,
        activity: 0,
        lost_state: false,
        lost_generation: 0,
        live: None,
    };

    /// True, once, when the task was restarted and has not run since: the caller announces its
    /// first instruction (the flag is cleared here, and only here, so it is announced once).
    #[inline(always)]
    pub fn take_restarted(&mut self) -> bool {
        core::mem::take(&mut self.restarted)
    }

    /// This task's id as task `index`.
    pub fn id(&self, index: usize) -> TaskId {
        TaskId::new(index as u16, self.generation)
    }

    /// Registers of a fresh start (as task `index`; `restart` sets rcx to 1).
    pub fn start_regs(&self, index: usize, restart: bool) -> SavedRegs {
        let s = &self.start;
        SavedRegs {
            rip: s.entry,
            rsp: s.stack_top,
            rflags: USER_RFLAGS,
            cs: u64::from(abi::layout::USER_CS),
            ss: u64::from(abi::layout::USER_DS),
            rdi: self.id(index).0,
            rsi: s.args[0],
            rdx: s.args[1],
            rcx: u64::from(restart),
            ..SavedRegs::ZERO
        }
    }

    /// Plans `fault`; false when its plan is full (the last slot is kept for
    /// [`Task::plan_end`]).
    pub fn plan_fault(&mut self, fault: PlannedFault) -> bool {
        // Unused entries sort last: the plan is full when the one before the kept slot is used.
        if self.faults[PLANNED_FAULTS - 2] != NO_FAULT {
            return false;
        }
        self.faults[PLANNED_FAULTS - 1] = fault;
        self.sort_faults();
        true
    }

    /// Plans a fault of `kind` (an `abi::fault::FaultKind` number) for the task's next message,
    /// while the VM runs; it stays pending, and cancellable, until that message comes. A live
    /// fault still pending is replaced. Costs nothing on delivery: the entry joins the sorted
    /// plan that every delivery already compares against.
    pub fn plan_live(&mut self, kind: u32) -> Live {
        self.cancel_live();
        let fault = PlannedFault {
            message: self.messages.saturating_add(1),
            kind,
            period: 0,
        };
        if !self.plan_fault(fault) {
            return Live::Full;
        }
        self.live = Some(fault);
        Live::Planned
    }

    /// Cancels the pending live fault, if it has not struck yet.
    pub fn cancel_live(&mut self) -> Live {
        let Some(live) = self.live.take() else {
            return Live::NothingPending;
        };
        match self.faults.iter_mut().find(|f| **f == live) {
            Some(f) => {
                *f = NO_FAULT;
                self.sort_faults();
                Live::Cancelled
            }
            None => Live::NothingPending,
        }
    }

    /// Plans the end of an injected fault's message: at the delivery of message `message`
    /// ([`INJECT_END`]); false when there is no room.
    pub fn plan_end(&mut self, message: u64) -> bool {
        let Some(last) = self.faults.last_mut() else {
            return false;
        };
        if *last != NO_FAULT {
            return false;
        }
        *last = PlannedFault {
            message,
            kind: INJECT_END,
            period: 0,
        };
        self.sort_faults();
        true
    }

    /// The messages it has received.
    #[inline(always)]
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The first message at which something of its plan may be due.
    #[inline(always)]
    pub fn next_due(&self) -> u64 {
        self.faults[0].message
    }

    /// Insertion sort by message (four entries; only at boot and when a periodic fault fires).
    fn sort_faults(&mut self) {
        for i in 1..PLANNED_FAULTS {
            let mut j = i;
            while j > 0 && self.faults[j - 1].message > self.faults[j].message {
                self.faults.swap(j - 1, j);
                j -= 1;
            }
        }
    }

    /// What is due at the message just delivered (`messages`), once a plan may be (`messages`
    /// reached [`Task::next_due`]: the caller checks that first, on every message). The end of
    /// an injected fault's message is taken; then a plain fault due now is consumed (or moved
    /// on by its period): a kind the task executes is handed to it, a kind the VMM injects is
    /// returned to be injected; otherwise an armed after-send fault (`message` reached) is
    /// handed over, `kind | AFTER_SEND`, and stays armed: it is consumed only when the task
    /// crashes while holding it ([`Task::crashed_holding_fault`]). A crash now reports the
    /// kind handed over or injected as planned for its message.
    pub fn take_due_fault(&mut self) -> Due {
        let m = self.messages;
        let mut due = Due::default();
        if let Some(f) = self
            .faults
            .iter_mut()
            .find(|f| f.kind == INJECT_END && f.message == m)
        {
            *f = NO_FAULT;
            due.end = true;
            self.sort_faults();
        }
        let plain =
            |f: &PlannedFault| f.kind & AFTER_SEND == 0 && f.kind != INJECT_END && f.message == m;
        if let Some(f) = self.faults.iter_mut().find(|f| plain(f)) {
            let kind = f.kind;
            if f.period != 0 {
                f.message = f.message.saturating_add(f.period);
            } else {
                *f = NO_FAULT;
            }
            self.sort_faults();
            self.held_fault = kind;
            if abi::fault::injected_by_vmm(u64::from(kind)) {
                due.inject = kind;
            } else {
                due.handed = u64::from(kind);
            }
            return due;
        }
        if let Some(i) = self.armed_after_send() {
            self.held_fault = self.faults[i].kind;
            due.handed = u64::from(self.faults[i].kind);
        }
        due
    }

    /// The first after-send fault armed at the current message.
    fn armed_after_send(&self) -> Option<usize> {
        let m = self.messages;
        (self.faults.iter()).position(|f| f.kind & AFTER_SEND != 0 && f.message <= m)
    }

    /// The task crashed: if it held an after-send fault, that plan is consumed (armed again
    /// `period` messages after this one, or removed).
    #[inline]
    pub fn crashed_holding_fault(&mut self) {
        if self.held_fault & AFTER_SEND != 0 {
            self.consume_after_send();
        }
    }

    #[inline(always)]
    fn consume_after_send(&mut self) {
        let Some(i) = self.armed_after_send() else {
            return;
        };
        let f = &mut self.faults[i];
        if f.period != 0 {
            f.message = self.messages.saturating_add(f.period);
        } else {
            *f = NO_FAULT;
        }
        self.sort_faults();
    }
}
