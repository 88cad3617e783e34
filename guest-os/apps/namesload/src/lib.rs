//! namesload's mix: refreshes 40 % and lookups 60 % of task 1 (kv, in the bundled guest): what
//! it checks is that the answers stay stable.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, TaskId, Transport};
use load::{Mix, Rng, Tally};
use names_api::Names;

/// The task namesload asks about, and its name.
const TASK: (u16, &str) = (1, "kv");

/// The mix (it keeps no model: names' answers do not change).
#[derive(Debug)]
pub struct NamesMix {
    names: Names,
    rng: Rng,
}

impl Mix for NamesMix {
    fn new(server: TaskId) -> Self {
        Self {
            names: Names(Client::new(server)),
            rng: Rng::new(0x9e37_79b9),
        }
    }

    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally) {
        let (index, name) = TASK;
        let got = if self.rng.below(100) < 40 {
            self.names.refresh(t, u64::from(index))
        } else {
            self.names.lookup(t, name)
        };
        tally.check(got.map(|id| id.index()), Ok(index));
    }

    fn forget(&mut self) {}

    fn retries(&self) -> u64 {
        self.names.0.ep.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::TaskId;
    use zerocopy::FromZeros;

    #[test]
    fn checks_out_against_the_real_server_logic() {
        let mut kernel = |i: u16| {
            let name: &[u8] = [b"names".as_slice(), b"kv"].get(usize::from(i))?;
            let mut n = [0u8; 16];
            n[..name.len()].copy_from_slice(name);
            Some((TaskId::new(i, 0), n, 0))
        };
        let mut table = Box::new(names::Table::new_zeroed());
        table.load(&mut kernel);
        let (f, _) = load::run_against::<NamesMix>(2000, |m| table.handle(m, &mut kernel));
        assert_eq!(
            (f.ops, f.errors, f.mismatches, f.lost),
            (2000, 0, 0, 0),
            "{f:?}"
        );
    }
}
