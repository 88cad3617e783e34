//! A server's state in its state arena, without `unsafe` in the server.
//!
//! A server declares `static STATE: StaticCell<MyState> = StaticCell::new();` and takes
//! `&'static mut MyState` once with [`StaticCell::take`]. The cell is all zeros until then, so it
//! lies in `.bss`, which the task's linker script places in its state arena; the state type must
//! be valid as all zeros ([`FromZeros`]), which also keeps it free of pointers: plain data that
//! a snapshot of the arena captures whole.
//!
//! The value sits between two canaries, set by `take` and declared to the kernel, which checks
//! them at every boundary of a server: a wild write over either stops the server as corrupted
//! before its reply is released, so a corrupted state is never snapshotted nor acknowledged.
//!
//! ```text
//!  head canary | taken | value: T | tail canary        (all in the state arena)
//! ```

use crate::ipc;
use abi::ipc::STATE_CANARY;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use zerocopy::FromZeros;

/// The tail canary of the state taken last (what an injected wild write hits).
static LAST_TAIL: AtomicU64 = AtomicU64::new(0);

/// A zero-initialised static handed out once as `&'static mut T`, between two canaries.
#[derive(Debug)]
#[repr(C)]
pub struct StaticCell<T> {
    head: UnsafeCell<u64>,
    taken: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
    tail: UnsafeCell<u64>,
}

// SAFETY: the value is reachable only through the one `&mut` that `take` hands out; the
// canaries are written only by `take` (before that reference exists) and by deliberate faults.
unsafe impl<T: Send> Sync for StaticCell<T> {}

impl<T: FromZeros> StaticCell<T> {
    /// An untaken cell holding all zeros.
    pub const fn new() -> Self {
        Self {
            head: UnsafeCell::new(0),
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::zeroed()),
            tail: UnsafeCell::new(0),
        }
    }

    /// The value, the first time (and once more after a restart: the task's previous start and
    /// its reference are gone); `None` otherwise. Sets the canaries and declares them.
    // The flag makes the returned `&mut` unique, which is what the lint cannot see.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        let resume = crate::start::resume();
        if self.taken.swap(true, Ordering::AcqRel) && !resume {
            return None;
        }
        let (head, tail) = (self.head.get(), self.tail.get());
        // SAFETY: the canaries are plain `u64`s of this static, touched by nothing else now.
        unsafe {
            head.write_volatile(STATE_CANARY);
            tail.write_volatile(STATE_CANARY);
        }
        LAST_TAIL.store(tail as u64, Ordering::Relaxed);
        // A kernel that refuses the canaries only means no corruption checks for this task.
        let _ = ipc::declare_state(head, tail);
        // SAFETY: all-zero bytes are a valid `T` (`FromZeros`), and the flag makes this the
        // only reference to the value (after a restart, the previous one died with its stack).
        Some(unsafe { (*self.value.get()).assume_init_mut() })
    }
}

impl<T: FromZeros> Default for StaticCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Overwrites the tail canary of the state taken last: the wild write of the injected fault
/// `corrupt-state` (the kernel catches it at the task's next boundary). Nothing when no state
/// was taken.
pub(crate) fn corrupt_last_canary() {
    let tail = LAST_TAIL.load(Ordering::Relaxed) as *mut u64;
    if !tail.is_null() {
        // SAFETY: the address is the tail canary of a `'static` cell of this task, a plain
        // `u64` that no reference covers.
        unsafe { tail.write_volatile(!STATE_CANARY) };
    }
}
