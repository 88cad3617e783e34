//! Stopping a vCPU thread from another thread, promptly and without a race.
//!
//! The controller sets the vCPU's stop flag, then sends [`kick_signal`] to its thread. The
//! signal's handler sets `kvm_run.immediate_exit`, so `KVM_RUN` returns `EINTR` at once whether
//! the signal arrived before entry (KVM checks the flag on entry) or during guest execution (the
//! signal forces an exit), and marks the thread as [`kicked`], so that blocking host I/O it was
//! doing for the guest (a console write to a full pipe) gives up instead of retrying. A leaf:
//! the vCPU loop and the writers ([`crate::log`], the serial console) use it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, for the kick handler.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(std::ptr::null_mut()) };
}

thread_local! {
    /// Set by the kick handler on the kicked thread: it is being stopped, so blocking host I/O
    /// (a console write to a full pipe) interrupted by the kick gives up rather than retries.
    static KICKED: Cell<bool> = const { Cell::new(false) };
}

/// True once this thread has been kicked (its VM is stopping). Other threads are unaffected:
/// the main thread still prints its closing messages.
pub fn kicked() -> bool {
    KICKED.with(Cell::get)
}

/// Forgets a kick this thread took for a pause (not a stop): its host I/O goes on as before.
pub fn unkick() {
    KICKED.with(|k| k.set(false));
}

/// The real-time signal used to kick a vCPU thread out of `KVM_RUN`.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    KICKED.with(|k| k.set(true));
    let ptr = IMMEDIATE_EXIT.with(Cell::get);
    if !ptr.is_null() {
        // SAFETY: the pointer was set by this thread's `arm` (from `Vcpu::run`) to a byte of its own
        // mapped kvm_run page (KVM shares it with the kernel, which only reads it on entry) and is
        // cleared before that mapping can go away. The store is atomic, so it cannot tear
        // against kvm-ioctls' own write of the byte; an atomic byte store is async-signal-safe.
        unsafe { std::sync::atomic::AtomicU8::from_ptr(ptr) }.store(1, Ordering::Release);
    }
}

/// Stops a vCPU thread: sets its stop flag and kicks it until it has ended.
///
/// One kick is enough for `KVM_RUN`, but the thread may also be blocked in host I/O for the guest
/// (a console write to a full pipe): the kick interrupts it and the writer gives up, yet a kick
/// landing just before such a call would be lost, so the kick is repeated every few milliseconds
/// until the thread is gone.
pub fn stop_thread<T>(handle: &std::thread::JoinHandle<T>, stop: &AtomicBool) {
    use vmm_sys_util::signal::Killable;
    stop.store(true, Ordering::Release);
    while !handle.is_finished() {
        // A failed kick means the thread has already ended.
        let _ = handle.kill(kick_signal());
        std::thread::park_timeout(std::time::Duration::from_millis(5));
    }
}

/// Installs the kick handler (process-wide; call once before starting vCPU threads).
pub fn install_kick_handler() -> std::io::Result<()> {
    vmm_sys_util::signal::register_signal_handler(kick_signal(), on_kick)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

/// Arms the kick for this thread: its handler will set the byte at `immediate_exit` (this
/// thread's mapped `kvm_run.immediate_exit`, which must stay mapped until [`disarm`]).
pub fn arm(immediate_exit: &mut u8) {
    IMMEDIATE_EXIT.with(|p| p.set(immediate_exit));
}

/// Disarms the kick for this thread (before its `kvm_run` mapping can go away).
pub fn disarm() {
    IMMEDIATE_EXIT.with(|p| p.set(std::ptr::null_mut()));
}
