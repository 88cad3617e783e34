//! Pausing a running VM (the control API's `PATCH /vm`): the vCPU thread, kicked out of
//! `KVM_RUN`, waits until resumed (or stopped); the time spent paused is kept, so that
//! `--timeout` counts only the time the guest ran.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct State {
    /// Since when it is paused.
    since: Option<Instant>,
    /// Paused time not yet given back to the timeout.
    owed: Duration,
    /// All paused time before the current pause.
    total: Duration,
    /// The vCPU thread, to kick out of `KVM_RUN` (0: not running yet).
    vcpu: libc::pthread_t,
}

/// A VM's pause switch.
#[derive(Debug, Default)]
pub struct Pause {
    state: Mutex<State>,
    changed: Condvar,
}

impl Pause {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The vCPU thread to kick when pausing.
    pub fn set_vcpu(&self, thread: libc::pthread_t) {
        self.lock().vcpu = thread;
    }

    /// Pauses (a no-op when paused); the vCPU stops at once.
    pub fn pause(&self) {
        let mut s = self.lock();
        if s.since.is_none() {
            s.since = Some(Instant::now());
            if s.vcpu != 0 {
                // SAFETY: pthread_kill(3) on the vCPU thread, which the VM joins only after the
                // API stops (so it is alive or a zombie not yet joined); the kick signal's
                // handler is installed before the vCPU thread starts.
                unsafe { libc::pthread_kill(s.vcpu, crate::kick::kick_signal()) };
            }
        }
    }

    /// Resumes (a no-op when running).
    pub fn resume(&self) {
        let mut s = self.lock();
        if let Some(since) = s.since.take() {
            let paused = since.elapsed();
            s.owed += paused;
            s.total += paused;
            self.changed.notify_all();
        }
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.lock().since.is_some()
    }

    /// All the time spent paused so far, the current pause included.
    pub fn paused_for(&self) -> Duration {
        let s = self.lock();
        s.total + s.since.map_or(Duration::ZERO, |since| since.elapsed())
    }

    /// Waits while paused, until resumed or `stopping()` says the VM is stopping (checked
    /// every 50 ms).
    pub fn wait_while_paused(&self, stopping: impl Fn() -> bool) {
        let mut s = self.lock();
        while s.since.is_some() && !stopping() {
            s = self
                .changed
                .wait_timeout(s, Duration::from_millis(50))
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
    }

    /// The paused time the timeout has not yet been given (and now is): `None` while paused.
    pub fn take_owed(&self) -> Option<Duration> {
        let mut s = self.lock();
        if s.since.is_some() {
            return None;
        }
        Some(std::mem::take(&mut s.owed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_time_is_owed_to_the_timeout_once_resumed() {
        let p = Pause::default();
        assert_eq!(p.take_owed(), Some(Duration::ZERO));
        p.pause();
        assert!(p.is_paused());
        assert_eq!(p.take_owed(), None, "still paused");
        p.resume();
        assert!(!p.is_paused());
        let owed = p.take_owed().expect("resumed");
        assert!(owed > Duration::ZERO);
        assert_eq!(p.take_owed(), Some(Duration::ZERO), "given once");
        // The paused time stays counted, and stops growing once resumed.
        let total = p.paused_for();
        assert_eq!(total, owed);
        assert_eq!(p.paused_for(), total);
        // Waiting while not paused returns at once; while paused, until stopping says so.
        p.wait_while_paused(|| false);
        p.pause();
        p.wait_while_paused(|| true);
        let first = p.paused_for();
        assert!(first >= total);
        let later = loop {
            let now = p.paused_for();
            if now > first {
                break now;
            }
            std::thread::yield_now();
        };
        p.resume();
        assert!(p.paused_for() >= later);
    }
}
