//! How this task was started. The kernel enters a task at its entry point twice over: at boot,
//! and after a crash from which the VMM recovered it (its state arena restored to its last
//! message boundary, or to its boot image), with a fresh stack and `rcx` = 1. A restarted server
//! picks its state up where it is ([`crate::state::StaticCell::take`] hands it out again) and
//! goes straight back to its receive loop.

use core::sync::atomic::{AtomicBool, Ordering};

/// This start is a restart.
static RESTARTED: AtomicBool = AtomicBool::new(false);
/// A restart whose state has not been taken up yet.
static RESUMABLE: AtomicBool = AtomicBool::new(false);

/// Records how the task was entered (the entry code calls it first).
pub fn entered(restart: bool) {
    RESTARTED.store(restart, Ordering::Relaxed);
    RESUMABLE.store(restart, Ordering::Relaxed);
}

/// True when this start of the task is a restart after a crash.
pub fn restarted() -> bool {
    RESTARTED.load(Ordering::Relaxed)
}

/// True once after a restart: the state a previous start took may be taken up again (the
/// reference it had died with its stack).
pub(crate) fn resume() -> bool {
    RESUMABLE.swap(false, Ordering::Relaxed)
}
