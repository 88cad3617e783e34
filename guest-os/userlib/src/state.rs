//! A server's state in its state arena, without `unsafe` in the server.
//!
//! A server declares `static STATE: StaticCell<MyState> = StaticCell::new();` and takes
//! `&'static mut MyState` once with [`StaticCell::take`]. The cell is all zeros until then, so it
//! lies in `.bss`, which the task's linker script places in its state arena; the state type must
//! be valid as all zeros ([`FromZeros`]), which also keeps it free of pointers: plain data that
//! a snapshot of the arena captures whole.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};
use zerocopy::FromZeros;

/// A zero-initialised static handed out once as `&'static mut T`.
#[derive(Debug)]
pub struct StaticCell<T> {
    taken: AtomicBool,
    value: UnsafeCell<MaybeUninit<T>>,
}

// SAFETY: the value is reachable only through the one `&mut` that `take` hands out.
unsafe impl<T: Send> Sync for StaticCell<T> {}

impl<T: FromZeros> StaticCell<T> {
    /// An untaken cell holding all zeros.
    pub const fn new() -> Self {
        Self {
            taken: AtomicBool::new(false),
            value: UnsafeCell::new(MaybeUninit::zeroed()),
        }
    }

    /// The value, the first time; `None` afterwards.
    // The flag makes the returned `&mut` unique, which is what the lint cannot see.
    #[allow(clippy::mut_from_ref)]
    pub fn take(&'static self) -> Option<&'static mut T> {
        if self.taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: all-zero bytes are a valid `T` (`FromZeros`), and the flag makes this the
        // only reference ever created to the value.
        Some(unsafe { (*self.value.get()).assume_init_mut() })
    }
}

impl<T: FromZeros> Default for StaticCell<T> {
    fn default() -> Self {
        Self::new()
    }
}
