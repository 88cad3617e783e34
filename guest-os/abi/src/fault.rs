//! Faults: what can stop a task (its cause, as the kernel records it), the faults a server can
//! be made to take (`vmm run --fault SERVER:KIND@N`), and their names: one vocabulary used by
//! the kernel, the VMM's lines and reports, and `--fault`. A leaf module: the monitor page's
//! records and the fault plan use it, it uses nothing.
//!
//! The VMM writes the plan into the monitor page before boot ([`crate::monitor::FaultPlan`]);
//! the kernel keeps it in its own task table (outside every state arena, so a rollback cannot
//! re-arm a fault). When it delivers the planned message, a crash kind ([`Family::Crash`]) is
//! handed to the task in `rcx` ([`crate::ipc`]) and userlib's task loop executes it in the
//! server's own text: a real CPU exception (or panic, hang, wild write), never a "crash me"
//! request. The other kinds come from outside ([`Executor::Vmm`]): the kernel tells the VMM
//! (an INJECT hypercall, [`crate::monitor::InjectRecord`]) just before the server runs with the
//! message, and the VMM rewrites an instruction or flips a bit of its memory or registers; the
//! server runs on, and may crash, hang, answer wrongly, or not notice.

/// Why a task was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum FaultCause {
    /// #DE: integer divide by zero or overflow.
    DivideError = 1,
    /// #UD: illegal instruction.
    InvalidOpcode = 2,
    /// #GP: general protection (privileged instruction, non-canonical address, ...).
    GeneralProtection = 3,
    /// #PF outside the stack guard page.
    PageFault = 4,
    /// #PF in the guard page below the task's stack.
    StackOverflow = 5,
    /// Another CPU exception (vector in the record).
    OtherException = 6,
    /// The task's own panic (userlib's panic handler asked the kernel to stop it).
    Panic = 7,
    /// The task ran past its per-message time budget: a hang.
    BudgetOverrun = 8,
    /// #MF / #XM: x87 or SIMD floating-point exception.
    FloatingPoint = 9,
    /// A canary of the task's declared state was overwritten (checked at its boundary, before
    /// its reply was released).
    Corruption = 10,
}

impl FaultCause {
    /// The cause with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::DivideError,
            2 => Self::InvalidOpcode,
            3 => Self::GeneralProtection,
            4 => Self::PageFault,
            5 => Self::StackOverflow,
            6 => Self::OtherException,
            7 => Self::Panic,
            8 => Self::BudgetOverrun,
            9 => Self::FloatingPoint,
            10 => Self::Corruption,
            _ => return None,
        })
    }

    /// Its name in the fault vocabulary: the name of the `--fault` kind that produces it where
    /// one does (`div-zero`, `illegal-insn`, `gp`, `stack-overflow`, `panic`, `hang`,
    /// `corrupt-state`), else its own (`page-fault`, `floating-point`, `exception`). A page
    /// fault in the null page is `null-deref`: see [`FaultRecord::cause_name`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::DivideError => "div-zero",
            Self::InvalidOpcode => "illegal-insn",
            Self::GeneralProtection => "gp",
            Self::PageFault => "page-fault",
            Self::StackOverflow => "stack-overflow",
            Self::OtherException => "exception",
            Self::Panic => "panic",
            Self::BudgetOverrun => "hang",
            Self::FloatingPoint => "floating-point",
            Self::Corruption => "corrupt-state",
        }
    }

    /// The cause of CPU exception `vector`; `guard_hit` tells a #PF in the stack guard page.
    pub const fn from_exception(vector: u64, guard_hit: bool) -> Self {
        match vector {
            0 => Self::DivideError,
            6 => Self::InvalidOpcode,
            13 => Self::GeneralProtection,
            14 if guard_hit => Self::StackOverflow,
            14 => Self::PageFault,
            16 | 19 => Self::FloatingPoint,
            _ => Self::OtherException,
        }
    }
}

/// `FaultRecord::vector` of faults that are not CPU exceptions (panics, hangs, corruption).
pub const NO_VECTOR: u32 = u32::MAX;

/// Page faults below this address are null-pointer dereferences (`null-deref`).
pub const NULL_PAGE_END: u64 = 4096;

/// The CPU's name of exception `vector` (Intel SDM vol. 3, table 6-1), lower-case; `None` past
/// the architectural ones.
pub const fn exception_name(vector: u32) -> Option<&'static str> {
    Some(match vector {
        0 => "divide-error",
        1 => "debug",
        2 => "nmi",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound-range",
        6 => "invalid-opcode",
        7 => "device-not-available",
        8 => "double-fault",
        10 => "invalid-tss",
        11 => "segment-not-present",
        12 => "stack-segment",
        13 => "general-protection",
        14 => "page-fault",
        16 => "x87-floating-point",
        17 => "alignment-check",
        18 => "machine-check",
        19 => "simd-floating-point",
        20 => "virtualization",
        21 => "control-protection",
        _ => return None,
    })
}

/// Bit of a planned fault's kind (in [`crate::monitor::FaultPlan::kind`] and in the `rcx` a task
/// receives with a message): take the fault *after* handling the message, before its reply,
/// and only if the task sent a message (`send` or `call`) while handling it. The kernel keeps
/// such a plan armed from the `message`-th message on until the task crashes with it, so it
/// strikes the first message that made the server talk to a peer: the case dependency tracking
/// is about (`vmm run --fault bank:panic@10:after-send`).
pub const AFTER_SEND: u32 = 1 << 16;

/// Splits the fault word a task receives with a message into its kind number and whether it
/// is an [`AFTER_SEND`] fault.
pub const fn split(word: u64) -> (u64, bool) {
    (word & !(AFTER_SEND as u64), word & AFTER_SEND as u64 != 0)
}

/// Who carries a fault out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Executor {
    /// The server itself: userlib's loop executes it in the server's own text when the kernel
    /// hands it over with the message (a clean fail-stop by construction).
    Server,
    /// The VMM, from outside: it corrupts the server's code, data or registers when the kernel
    /// tells it the message has come (an INJECT hypercall), and the server runs on.
    Vmm,
}

/// What a fault corrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// A crash the server executes (the first eight kinds).
    Crash,
    /// One instruction of the code, rewritten.
    Code,
    /// A bit of memory or of a register.
    Data,
}

/// A fault a server can take (`vmm run --fault SERVER:KIND@N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum FaultKind {
    /// Read address 0: #PF at 0.
    NullDeref = 1,
    /// `ud2`: #UD.
    IllegalInsn = 2,
    /// `div` by zero: #DE.
    DivZero = 3,
    /// The server's own panic.
    Panic = 4,
    /// An endless loop: caught by the per-message budget.
    Hang = 5,
    /// Unbounded pushes: #PF in the stack guard page.
    StackOverflow = 6,
    /// A wild write over the state's canary: caught at the next boundary, before the reply.
    CorruptState = 7,
    /// A privileged instruction (`hlt`) in ring 3: #GP.
    GeneralProtection = 8,
    /// One bit of one instruction flipped.
    TextFlip = 9,
    /// One instruction replaced by NOPs.
    Nop = 10,
    /// A conditional jump's condition inverted.
    FlipBranch = 11,
    /// A jump (conditional or not) removed: execution falls through.
    DropBranch = 12,
    /// A register source operand replaced by another register.
    CorruptSrc = 13,
    /// A register destination operand replaced by another register.
    CorruptDst = 14,
    /// The address computation of a memory access changed (a displacement bit, or the base).
    CorruptPtr = 15,
    /// A store to memory removed.
    NoStore = 16,
    /// One bit of the server's state arena flipped.
    StateFlip = 17,
    /// One bit of the server's live stack flipped.
    StackFlip = 18,
    /// One bit of a general register flipped as the server resumes with the message.
    RegFlip = 19,
    /// One bit of the message's payload registers (label or words) flipped as delivered.
    MsgCorrupt = 20,
}

impl FaultKind {
    /// Every kind, in number order.
    pub const ALL: [FaultKind; 20] = [
        Self::NullDeref,
        Self::IllegalInsn,
        Self::DivZero,
        Self::Panic,
        Self::Hang,
        Self::StackOverflow,
        Self::CorruptState,
        Self::GeneralProtection,
        Self::TextFlip,
        Self::Nop,
        Self::FlipBranch,
        Self::DropBranch,
        Self::CorruptSrc,
        Self::CorruptDst,
        Self::CorruptPtr,
        Self::NoStore,
        Self::StateFlip,
        Self::StackFlip,
        Self::RegFlip,
        Self::MsgCorrupt,
    ];

    /// The kinds a server executes itself ([`Executor::Server`]): crashes.
    pub const CRASHES: [FaultKind; 8] = [
        Self::NullDeref,
        Self::IllegalInsn,
        Self::DivZero,
        Self::Panic,
        Self::Hang,
        Self::StackOverflow,
        Self::CorruptState,
        Self::GeneralProtection,
    ];

    /// The kind with this number, if any.
    pub const fn from_number(n: u64) -> Option<Self> {
        if n == 0 || n > Self::ALL.len() as u64 {
            return None;
        }
        Some(Self::ALL[n as usize - 1])
    }

    /// Its name on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::NullDeref => "null-deref",
            Self::IllegalInsn => "illegal-insn",
            Self::DivZero => "div-zero",
            Self::Panic => "panic",
            Self::Hang => "hang",
            Self::StackOverflow => "stack-overflow",
            Self::CorruptState => "corrupt-state",
            Self::GeneralProtection => "gp",
            Self::TextFlip => "text-flip",
            Self::Nop => "nop",
            Self::FlipBranch => "flip-branch",
            Self::DropBranch => "drop-branch",
            Self::CorruptSrc => "corrupt-src",
            Self::CorruptDst => "corrupt-dst",
            Self::CorruptPtr => "corrupt-ptr",
            Self::NoStore => "no-store",
            Self::StateFlip => "state-flip",
            Self::StackFlip => "stack-flip",
            Self::RegFlip => "reg-flip",
            Self::MsgCorrupt => "msg-corrupt",
        }
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What it corrupts.
    pub const fn family(self) -> Family {
        match self as u32 {
            1..=8 => Family::Crash,
            9..=16 => Family::Code,
            _ => Family::Data,
        }
    }

    /// Who carries it out.
    pub const fn executor(self) -> Executor {
        match self.family() {
            Family::Crash => Executor::Server,
            Family::Code | Family::Data => Executor::Vmm,
        }
    }

    /// The cause the kernel records when a crash kind strikes (a null dereference is a page
    /// fault in the null page; its name is the kind's own name); `None` for the kinds the VMM
    /// injects, whose effect is whatever the corrupted server does.
    pub const fn cause(self) -> Option<FaultCause> {
        Some(match self {
            Self::NullDeref => FaultCause::PageFault,
            Self::IllegalInsn => FaultCause::InvalidOpcode,
            Self::DivZero => FaultCause::DivideError,
            Self::Panic => FaultCause::Panic,
            Self::Hang => FaultCause::BudgetOverrun,
            Self::StackOverflow => FaultCause::StackOverflow,
            Self::CorruptState => FaultCause::Corruption,
            Self::GeneralProtection => FaultCause::GeneralProtection,
            _ => return None,
        })
    }
}

/// The word a planned fault of the VMM's kinds is handed over with: the plan's kind word with
/// the number in bits 0-7 ([`split`] takes off [`AFTER_SEND`]). True when the kernel must tell
/// the VMM (INJECT) rather than hand the fault to the task.
pub const fn injected_by_vmm(word: u64) -> bool {
    match FaultKind::from_number(word & 0xff) {
        Some(k) => matches!(k.executor(), Executor::Vmm),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_number_and_name() {
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::from_number(k as u64), Some(k));
            assert_eq!(FaultKind::from_name(k.name()), Some(k));
        }
        assert_eq!(FaultKind::from_number(0), None);
        assert_eq!(FaultKind::from_number(21), None);
        assert!(
            FaultKind::CRASHES
                .iter()
                .all(|k| k.executor() == Executor::Server)
        );
        let by_vmm = FaultKind::ALL
            .iter()
            .filter(|k| k.executor() == Executor::Vmm);
        assert_eq!(by_vmm.count(), 12);
        assert!(injected_by_vmm(FaultKind::StateFlip as u64));
        assert!(!injected_by_vmm(
            FaultKind::Panic as u64 | u64::from(AFTER_SEND)
        ));
        assert!(!injected_by_vmm(0) && !injected_by_vmm(0xff));
        assert_eq!(FaultKind::from_name("nope"), None);
    }

    /// One name per fault: the cause a kind produces is recorded under the kind's name.
    #[test]
    fn each_kind_is_recorded_under_its_own_name() {
        use crate::monitor::FaultRecord;
        for k in FaultKind::CRASHES {
            let cause = k.cause().expect("a crash kind has a cause");
            let record = FaultRecord {
                cause: cause as u32,
                ..FaultRecord::ZERO
            };
            assert_eq!(record.cause_name(), Some(k.name()), "{k:?}");
        }
        let far = FaultRecord {
            cause: FaultCause::PageFault as u32,
            addr: 0x5000,
            ..FaultRecord::ZERO
        };
        assert_eq!(far.cause_name(), Some("page-fault"));
        let unknown = FaultRecord {
            cause: 99,
            ..FaultRecord::ZERO
        };
        assert_eq!(unknown.cause_name(), None);
    }
}
