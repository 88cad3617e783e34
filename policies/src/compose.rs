//! Policies over policies: a crash-rate threshold, an escalation chain, exponential backoff.
//!
//! All three count this server's crashes in a sliding window `(now - window, now]`, this crash
//! included. Limits are clamped to [`MAX_CRASH_LIMIT`] and windows to [`MAX_WINDOW`], which is
//! what a [`crate::History`] can count.

use std::time::Duration;

use crate::action::{Action, Decision};
use crate::context::{Crash, MAX_CRASH_LIMIT, MAX_WINDOW};
use crate::policy::RecoveryPolicy;

/// "`n` crashes within `w` s", for reasons.
fn rate(n: u32, window: Duration) -> String {
    format!("{n} crashes within {} s", window.as_secs_f64())
}

/// At most `limit` crashes per `window` decided by `inner`; beyond that, `escalate` decides.
#[derive(Debug)]
pub struct Threshold {
    limit: u32,
    window: Duration,
    inner: Box<dyn RecoveryPolicy>,
    escalate: Box<dyn RecoveryPolicy>,
}

impl Threshold {
    /// `inner` for the first `limit` crashes in any `window`, `escalate` beyond.
    pub fn new(
        limit: u32,
        window: Duration,
        inner: impl RecoveryPolicy + 'static,
        escalate: impl RecoveryPolicy + 'static,
    ) -> Self {
        Self {
            limit: limit.min(MAX_CRASH_LIMIT),
            window: window.min(MAX_WINDOW),
            inner: Box::new(inner),
            escalate: Box::new(escalate),
        }
    }
}

impl RecoveryPolicy for Threshold {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        let n = crash.crashes_within(self.window);
        if n <= self.limit {
            return self.inner.decide(crash);
        }
        self.escalate.decide(crash).via(
            "threshold",
            format_args!("{} exceed {}", rate(n, self.window), self.limit),
        )
    }
}

/// Escalation as crashes accumulate: the first `limit` crashes in any `window` go to the first
/// stage, crash `limit + 1` to the second, crash `limit + 2` to the third, and so on; the last
/// stage takes every crash beyond. For example rollback, restart fresh, fail-stop: a server that
/// keeps crashing after a fresh restart stops the VM.
#[derive(Debug)]
pub struct EscalationChain {
    limit: u32,
    window: Duration,
    stages: Vec<Box<dyn RecoveryPolicy>>,
}

impl EscalationChain {
    /// A chain whose first stage is `first`; add stages with [`EscalationChain::then`].
    pub fn new(limit: u32, window: Duration, first: impl RecoveryPolicy + 'static) -> Self {
        Self {
            limit: limit.min(MAX_CRASH_LIMIT),
            window: window.min(MAX_WINDOW),
            stages: vec![Box::new(first)],
        }
    }

    /// The chain with `next` as its new last stage.
    pub fn then(mut self, next: impl RecoveryPolicy + 'static) -> Self {
        self.stages.push(Box::new(next));
        self
    }

    /// Index of the stage that decides the `n`-th crash in the window.
    fn stage(&self, n: u32) -> usize {
        let beyond = n.saturating_sub(self.limit) as usize;
        beyond.min(self.stages.len() - 1)
    }
}

impl RecoveryPolicy for EscalationChain {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        let n = crash.crashes_within(self.window);
        let stage = self.stage(n);
        let d = self.stages[stage].decide(crash);
        if stage == 0 {
            return d;
        }
        d.via(
            "escalation",
            format_args!(
                "{} exceed {}: stage {} of {}",
                rate(n, self.window),
                self.limit,
                stage + 1,
                self.stages.len()
            ),
        )
    }
}

/// Delays every restart `inner` decides by `base * 2^(n-1)` for the `n`-th crash in `window`,
/// at most `cap`. Fail-stops are not delayed.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    window: Duration,
    inner: Box<dyn RecoveryPolicy>,
}

impl Backoff {
    /// Backoff from `base` doubling up to `cap`, counting crashes in `window`.
    pub fn new(
        base: Duration,
        cap: Duration,
        window: Duration,
        inner: impl RecoveryPolicy + 'static,
    ) -> Self {
        Self {
            base,
            cap,
            window: window.min(MAX_WINDOW),
            inner: Box::new(inner),
        }
    }

    /// The delay for the `n`-th crash in the window.
    pub fn delay(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.base.saturating_mul(1 << doublings).min(self.cap)
    }
}

impl RecoveryPolicy for Backoff {
    fn decide(&self, crash: &Crash<'_>) -> Decision {
        let mut d = self.inner.decide(crash);
        if d.action == Action::FailStop {
            return d;
        }
        let delay = self.delay(crash.crashes_within(self.window));
        if delay.is_zero() {
            return d;
        }
        let delay = d.delay.map_or(delay, |inner| inner.max(delay));
        d.reason = format!("{}; back off {} ms", d.reason, delay.as_millis());
        d.with_delay(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::ActionKind;
    use crate::context::{History, PastCrash};
    use crate::fault::Micros;
    use crate::policy::tests::{fault, window};
    use crate::policy::{FailStop, RestartFresh, Rollback};

    /// Decides a crash at `now` (µs) after past crashes at `past`.
    fn decide_at(p: &dyn RecoveryPolicy, past: &[u64], now: u64) -> Decision {
        let mut h = History::new();
        for &t in past {
            h.record(PastCrash {
                at: Micros(t),
                cause: crate::Cause::Panic,
                action: ActionKind::Rollback,
            });
        }
        let (f, w) = (fault(), window());
        p.decide(&Crash {
            fault: &f,
            history: &h,
            window: &w,
            in_flight: None,
            now: Micros(now),
        })
    }

    const SEC: u64 = 1_000_000;

    #[test]
    fn threshold_escalates_past_the_limit_and_recovers_after_the_window() {
        let p = Threshold::new(2, Duration::from_secs(10), Rollback, FailStop);
        assert_eq!(decide_at(&p, &[], SEC).action, Action::Rollback);
        assert_eq!(decide_at(&p, &[SEC], 2 * SEC).action, Action::Rollback);
        let over = decide_at(&p, &[SEC, 2 * SEC], 3 * SEC);
        assert_eq!(over.action, Action::FailStop);
        assert_eq!(over.policy, "threshold>fail-stop");
        assert!(over.reason.starts_with("3 crashes within 10 s exceed 2"));
        assert_eq!(
            decide_at(&p, &[SEC, 2 * SEC], 11 * SEC + 1).action,
            Action::Rollback,
            "the first crash left the window"
        );
    }

    #[test]
    fn chain_walks_its_stages() {
        let p = EscalationChain::new(2, Duration::from_secs(60), Rollback)
            .then(RestartFresh)
            .then(FailStop);
        let kinds: Vec<_> = (0..6)
            .map(|i| {
                let past: Vec<u64> = (0..i).map(|k| k * SEC).collect();
                decide_at(&p, &past, i * SEC).action
            })
            .collect();
        assert_eq!(
            kinds,
            [
                Action::Rollback,
                Action::Rollback,
                Action::RestartFresh,
                Action::FailStop,
                Action::FailStop,
                Action::FailStop
            ]
        );
        let d = decide_at(&p, &[0, SEC], 2 * SEC);
        assert_eq!(d.policy, "escalation>restart");
        assert!(d.reason.contains("stage 2 of 3"), "{}", d.reason);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_never_delays_a_stop() {
        let p = Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(35),
            Duration::from_secs(60),
            Rollback,
        );
        assert_eq!(p.delay(1), Duration::from_millis(10));
        assert_eq!(p.delay(2), Duration::from_millis(20));
        assert_eq!(p.delay(3), Duration::from_millis(35));
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(35));
        let d = decide_at(&p, &[0], SEC);
        assert_eq!(d.delay, Some(Duration::from_millis(20)));
        assert!(d.reason.ends_with("back off 20 ms"), "{}", d.reason);
        let stop = Backoff::new(
            Duration::from_millis(10),
            Duration::from_secs(1),
            Duration::from_secs(1),
            FailStop,
        );
        assert_eq!(decide_at(&stop, &[], 0).delay, None);
        let zero = Backoff::new(
            Duration::ZERO,
            Duration::ZERO,
            Duration::from_secs(1),
            Rollback,
        );
        assert_eq!(decide_at(&zero, &[0], 1).delay, None);
    }
}
