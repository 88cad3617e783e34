//! The seed's choices: what a spec leaves open (which instruction, byte, bit, register) picked
//! by a generator seeded from `--fault-seed`, the spec's place on the command line and the
//! message it strikes, so that the same image, specs and seed give the same concrete faults,
//! and each firing of a repeating fault its own.

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;

/// Picks for one firing of one fault.
#[derive(Debug)]
pub struct Chooser(XorShiftRng);

impl Chooser {
    /// The picks of spec number `index` (its place among the `--fault`s) firing at `message`,
    /// under `seed`.
    pub fn new(seed: u64, index: usize, message: u64) -> Self {
        let mixed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
            ^ (index as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9)
            ^ message.wrapping_mul(0x94d0_49bb_1331_11eb);
        Self(XorShiftRng::seed_from_u64(mixed))
    }

    /// One of `n` (0 when `n` is 0).
    pub fn pick(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.0.next_u64() % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_inputs_pick_the_same_and_others_differ() {
        let picks = |seed, index, message| {
            let mut c = Chooser::new(seed, index, message);
            (0..8).map(|_| c.pick(1000)).collect::<Vec<_>>()
        };
        assert_eq!(picks(7, 0, 200), picks(7, 0, 200));
        assert_ne!(picks(7, 0, 200), picks(8, 0, 200));
        assert_ne!(picks(7, 0, 200), picks(7, 1, 200));
        assert_ne!(picks(7, 0, 200), picks(7, 0, 201));
        assert!(picks(1, 2, 3).iter().all(|&p| p < 1000));
        assert_eq!(Chooser::new(1, 0, 1).pick(0), 0);
        // Pinned: a change of the generator changes every replay; this catches it.
        assert_eq!(picks(1, 0, 1)[..3], [PINNED[0], PINNED[1], PINNED[2]]);
    }

    const PINNED: [usize; 3] = [461, 718, 698];
}
