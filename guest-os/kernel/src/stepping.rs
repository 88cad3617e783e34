//! The single-stepping of a task toward an injected instruction: what the kernel keeps while it
//! steps (see [`crate::inject`]).

use abi::monitor::StepRecord;

/// RFLAGS.TF: a debug trap after each instruction.
pub const TRAP_FLAG: u64 = 1 << 8;

/// The single-stepping of a task toward an injected instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stepping {
    /// The task.
    pub task: usize,
    /// The address.
    pub watch: u64,
    /// Most steps.
    pub budget: u32,
    /// Steps so far.
    pub steps: u64,
}

impl Stepping {
    /// The monitor page's record of it, with `outcome`.
    pub fn record(&self, outcome: u32) -> StepRecord {
        StepRecord {
            task: self.task as u32,
            outcome,
            watch: self.watch,
            steps: self.steps,
        }
    }
}
