//! __NAME__load's mix: sets 30 %, adds 40 %, gets 30 % over every register, each reply checked
//! against a model of the registers. A crash of the server and its recovery must leave the
//! replies what the model says.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use __NAME___api::{Client, REGISTERS};
use abi::ipc::{TaskId, Transport};
use load::{Mix, Rng, Tally};

/// The mix, and what it believes the registers hold.
#[derive(Debug)]
pub struct LoadMix {
    client: Client,
    rng: Rng,
    registers: [u64; REGISTERS as usize],
}

impl Mix for LoadMix {
    fn new(server: TaskId) -> Self {
        Self {
            client: Client::new(server),
            rng: Rng::new(0x5eed),
            registers: [0; REGISTERS as usize],
        }
    }

    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally) {
        let r = self.rng.below(REGISTERS);
        let held = self.registers[r as usize];
        let x = self.rng.below(1000);
        match self.rng.below(100) {
            0..30 => {
                if tally.check(self.client.set(t, r, x), Ok(())) {
                    self.registers[r as usize] = x;
                }
            }
            30..70 => {
                let want = held.wrapping_add(x);
                if tally.check(self.client.add(t, r, x), Ok(want)) {
                    self.registers[r as usize] = want;
                }
            }
            _ => {
                tally.check(self.client.get(t, r), Ok(held));
            }
        }
    }

    fn forget(&mut self) {
        self.registers = [0; REGISTERS as usize];
    }

    fn retries(&self) -> u64 {
        self.client.0.ep.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn checks_out_against_the_real_server_logic() {
        let mut state = Box::new(__NAME__::State::new_zeroed());
        let (f, _) = load::run_against::<LoadMix>(2000, |m| state.handle(m));
        assert_eq!(
            (f.ops, f.errors, f.mismatches, f.lost),
            (2000, 0, 0, 0),
            "{f:?}"
        );
    }
}
