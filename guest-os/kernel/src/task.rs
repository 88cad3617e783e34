//! Tasks: the saved register frame (the task's context record), its IPC state, its regions and
//! its bookkeeping (generation, messages handled, time budget).

use crate::umem::Regions;
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
}

/// One task.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct Task {
    /// The context record. First field: the trap entry finds it at the task's address.
    pub regs: SavedRegs,
    /// IPC state.
    pub state: State,
    /// Current generation (the kernel owns it; a restart bumps it).
    pub generation: u32,
    /// Scheduling priority (0 first).
    pub priority: u8,
    /// Servers have a per-message budget; apps do not.
    pub server: bool,
    /// May stop the VM and report workload figures.
    pub may_exit: bool,
    /// Between a receive's return and the next receive.
    pub in_message: bool,
    /// Ticks run since the last message boundary.
    pub budget_used: u32,
    /// Pending notification bits.
    pub notifications: u64,
    /// Bitmask of tasks blocked sending to this one.
    pub senders: u32,
    /// Message boundaries passed (receives completed).
    pub messages: u64,
    /// Memory the task may hand the kernel pointers into.
    pub regions: Regions,
    /// Name (NUL-padded).
    pub name: [u8; 16],
}

impl Task {
    /// A task that has not been set up.
    pub const EMPTY: Task = Task {
        regs: SavedRegs {
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
        },
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
    };

    /// This task's id as task `index`.
    pub fn id(&self, index: usize) -> TaskId {
        TaskId::new(index as u16, self.generation)
    }
}
