//! The run queues: one bitmask of ready tasks per priority, round robin inside a priority.
//! Constant time and a handful of instructions per decision (every one is emulated on PVM).

/// Most tasks the queues hold (bits of a `u32`).
pub const MAX_TASKS: usize = 32;

/// Ready tasks by priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunQueues<const P: usize> {
    ready: [u32; P],
    /// The task each priority ran last (round robin resumes after it).
    last: [u8; P],
    /// Priority of each task.
    prio: [u8; MAX_TASKS],
}

impl<const P: usize> RunQueues<P> {
    /// Empty queues.
    pub const fn new() -> Self {
        Self {
            ready: [0; P],
            last: [0; P],
            prio: [0; MAX_TASKS],
        }
    }

    /// Sets task `task`'s priority (clamped to the lowest); call before it is first made ready.
    pub fn set_priority(&mut self, task: usize, priority: u8) {
        if let Some(p) = self.prio.get_mut(task) {
            *p = priority.min(P as u8 - 1);
        }
    }

    /// Makes `task` ready.
    pub fn insert(&mut self, task: usize) {
        if task < MAX_TASKS {
            let p = usize::from(self.prio[task]);
            self.ready[p] |= 1 << task;
        }
    }

    /// Makes `task` not ready.
    pub fn remove(&mut self, task: usize) {
        if task < MAX_TASKS {
            let p = usize::from(self.prio[task]);
            self.ready[p] &= !(1 << task);
        }
    }

    /// True when `task` is ready.
    pub fn contains(&self, task: usize) -> bool {
        task < MAX_TASKS && self.ready[usize::from(self.prio[task])] & (1 << task) != 0
    }

    /// What runs next when `current` (if ready) may go on: `current` unless a task of strictly
    /// higher priority is ready; otherwise the next ready task of the highest priority.
    pub fn pick(&mut self, current: Option<usize>) -> Option<usize> {
        let (p, bits) = self.ready.iter().enumerate().find(|(_, b)| **b != 0)?;
        if let Some(c) = current.filter(|&c| self.contains(c))
            && usize::from(self.prio[c]) <= p
        {
            return Some(c);
        }
        Some(self.rotate_in(p, *bits))
    }

    /// The next ready task after `current` in the highest ready priority (time slice over).
    pub fn rotate(&mut self, current: Option<usize>) -> Option<usize> {
        if let Some(c) = current.filter(|&c| c < MAX_TASKS) {
            let p = usize::from(self.prio[c]);
            self.last[p] = c as u8;
        }
        let (p, bits) = self.ready.iter().enumerate().find(|(_, b)| **b != 0)?;
        Some(self.rotate_in(p, *bits))
    }

    fn rotate_in(&mut self, p: usize, bits: u32) -> usize {
        let after = u32::from(self.last[p]) + 1;
        let later = if after >= 32 {
            0
        } else {
            bits & (u32::MAX << after)
        };
        let next = if later != 0 { later } else { bits }.trailing_zeros() as usize;
        self.last[p] = next as u8;
        next
    }
}

impl<const P: usize> Default for RunQueues<P> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn higher_priority_wins_and_equals_take_turns() {
        let mut q = RunQueues::<4>::new();
        for (t, p) in [(0, 1), (1, 1), (2, 1), (3, 3)] {
            q.set_priority(t, p);
            q.insert(t);
        }
        assert_eq!(q.pick(None), Some(1));
        assert_eq!(q.rotate(Some(1)), Some(2));
        assert_eq!(q.rotate(Some(2)), Some(0));
        assert_eq!(q.pick(Some(0)), Some(0), "current keeps running");
        assert_eq!(q.pick(Some(3)), Some(1), "a higher priority preempts");
        for t in 0..3 {
            q.remove(t);
        }
        assert_eq!(q.pick(None), Some(3));
        q.remove(3);
        assert_eq!(q.pick(None), None);
    }

    proptest::proptest! {
        /// Against a model: whatever is picked is ready and of the highest ready priority, and
        /// rotating through a level visits every ready task of it before repeating one.
        #[test]
        fn picks_match_the_model(
            prios in proptest::collection::vec(0u8..4, 1..20),
            ops in proptest::collection::vec((0usize..20, 0u8..3), 0..100),
        ) {
            let mut q = RunQueues::<4>::new();
            let mut ready = vec![false; prios.len()];
            for (t, p) in prios.iter().enumerate() {
                q.set_priority(t, *p);
            }
            let mut current = None;
            for (t, op) in ops {
                let t = t % prios.len();
                match op {
                    0 => { q.insert(t); ready[t] = true; }
                    1 => { q.remove(t); ready[t] = false; }
                    _ => current = q.rotate(current),
                }
                let picked = q.pick(current);
                let best = (0..prios.len()).filter(|&i| ready[i]).map(|i| prios[i]).min();
                match (picked, best) {
                    (None, None) => {}
                    (Some(p), Some(b)) => {
                        proptest::prop_assert!(ready[p]);
                        proptest::prop_assert_eq!(prios[p], b);
                    }
                    other => proptest::prop_assert!(false, "{:?}", other),
                }
                current = picked;
            }
            if let Some(b) = (0..prios.len()).filter(|&i| ready[i]).map(|i| prios[i]).min() {
                let level: Vec<usize> = (0..prios.len()).filter(|&i| ready[i] && prios[i] == b).collect();
                let mut seen = Vec::new();
                let mut c = current;
                for _ in 0..level.len() {
                    c = q.rotate(c);
                    seen.push(c.expect("ready"));
                }
                seen.sort_unstable();
                proptest::prop_assert_eq!(seen, level);
            }
        }
    }
}
