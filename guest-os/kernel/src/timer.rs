//! One-shot timers: at most one per task; on expiry the kernel ORs the timer's bits into the
//! task's notifications. A tick costs one comparison unless a timer is due.

/// Timers of up to `N` tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers<const N: usize> {
    deadline: [u64; N],
    bits: [u64; N],
    /// The earliest armed deadline (`u64::MAX` when none).
    next: u64,
}

impl<const N: usize> Timers<N> {
    /// No timer armed.
    pub const fn new() -> Self {
        Self {
            deadline: [u64::MAX; N],
            bits: [0; N],
            next: u64::MAX,
        }
    }

    /// Arms (or re-arms) `task`'s timer for tick `deadline`; false for an unknown task.
    pub fn set(&mut self, task: usize, deadline: u64, bits: u64) -> bool {
        let (Some(d), Some(b)) = (self.deadline.get_mut(task), self.bits.get_mut(task)) else {
            return false;
        };
        *d = deadline;
        *b = bits;
        self.next = self.next.min(deadline);
        true
    }

    /// `task`'s timer: (deadline, bits); the deadline is `u64::MAX` when it is not armed.
    pub fn get(&self, task: usize) -> (u64, u64) {
        match (self.deadline.get(task), self.bits.get(task)) {
            (Some(&d), Some(&b)) => (d, b),
            _ => (u64::MAX, 0),
        }
    }

    /// Disarms `task`'s timer.
    pub fn cancel(&mut self, task: usize) {
        if let Some(d) = self.deadline.get_mut(task) {
            *d = u64::MAX;
        }
    }

    /// Whether a timer is due at tick `now`.
    #[inline(always)]
    pub fn due(&self, now: u64) -> bool {
        now >= self.next
    }

    /// Calls `fire(task, bits)` for every timer due at tick `now` and disarms it.
    pub fn expire(&mut self, now: u64, mut fire: impl FnMut(usize, u64)) {
        if now < self.next {
            return;
        }
        let mut next = u64::MAX;
        for task in 0..N {
            let d = self.deadline[task];
            if d <= now {
                self.deadline[task] = u64::MAX;
                fire(task, self.bits[task]);
            } else {
                next = next.min(d);
            }
        }
        self.next = next;
    }
}

impl<const N: usize> Default for Timers<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_once_at_their_deadline() {
        let mut t = Timers::<4>::new();
        assert!(t.set(1, 10, 0b01));
        assert!(t.set(2, 5, 0b10));
        assert!(!t.set(9, 5, 1));
        let mut fired = Vec::new();
        assert!(!t.due(4));
        t.expire(4, |task, bits| fired.push((task, bits)));
        assert!(fired.is_empty());
        assert!(t.due(5));
        t.expire(5, |task, bits| fired.push((task, bits)));
        assert_eq!(fired, vec![(2, 0b10)]);
        t.expire(20, |task, bits| fired.push((task, bits)));
        assert_eq!(fired, vec![(2, 0b10), (1, 0b01)]);
        t.expire(30, |task, bits| fired.push((task, bits)));
        assert_eq!(fired.len(), 2);
    }

    #[test]
    fn rearming_and_cancelling() {
        let mut t = Timers::<2>::new();
        t.set(0, 10, 1);
        t.set(0, 20, 2);
        t.set(1, 15, 4);
        t.cancel(1);
        assert_eq!(t.get(0), (20, 2));
        assert_eq!(t.get(1).0, u64::MAX);
        assert_eq!(t.get(7), (u64::MAX, 0));
        let mut fired = Vec::new();
        t.expire(19, |task, bits| fired.push((task, bits)));
        assert!(fired.is_empty());
        t.expire(20, |task, bits| fired.push((task, bits)));
        assert_eq!(fired, vec![(0, 2)]);
    }
}
