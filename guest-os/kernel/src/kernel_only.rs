//! State only the kernel, on its one CPU with interrupts masked, ever touches: the kernel's
//! statics (its task table, the machine's per-task state, the monitor protocol's state).

use core::cell::UnsafeCell;

/// State only the kernel, on its one CPU with interrupts masked, ever touches.
pub struct KernelOnly<T>(UnsafeCell<T>);

// SAFETY: one CPU; the kernel runs with interrupts masked and is never re-entered (the ring-0
// interrupt path, `from_kernel`, touches only `PENDING_TICKS`), so accesses never overlap.
unsafe impl<T> Sync for KernelOnly<T> {}

impl<T> KernelOnly<T> {
    /// Holds `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// The value. Callers keep the reference within one kernel entry and never hold two.
    #[allow(clippy::mut_from_ref)]
    pub fn get(&self) -> &mut T {
        // SAFETY: see the `Sync` impl: no other reference is live while the kernel runs.
        unsafe { &mut *self.0.get() }
    }
}
