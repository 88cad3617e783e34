//! The cases of a campaign: case i's fault, fault seed and workload seed are a function of the
//! master seed and i only, so they do not depend on how many jobs run, how the cases are
//! sharded, in what order they run, or on what machine.

use super::campaign::Campaign;
use crate::faults::spec::{FaultSpec, KERNEL, Target};
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;

/// The workload takes numbers of at most 16 digits: seeds stay below this.
const SEED_LIMIT: u64 = 1_000_000_000_000_000;

/// One case of a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Its index (0-based).
    pub index: u64,
    /// The fault it injects.
    pub fault: FaultSpec,
    /// Its `--fault-seed`.
    pub fault_seed: u64,
    /// Its workload's `seed=`.
    pub guest_seed: u64,
}

/// A generator for case `index` of the campaign with master seed `seed`.
fn generator(seed: u64, index: u64) -> XorShiftRng {
    let mixed = seed.wrapping_mul(0xa076_1d64_78bd_642f).rotate_left(29)
        ^ index.wrapping_mul(0xe703_7ed1_a0b4_28db)
        ^ 0x8ebc_6af0_9c88_c6e3;
    XorShiftRng::seed_from_u64(mixed)
}

fn below(rng: &mut XorShiftRng, n: u64) -> u64 {
    if n == 0 { 0 } else { rng.next_u64() % n }
}

/// Case `index` of `campaign`.
pub fn case(campaign: &Campaign, index: u64) -> Case {
    let mut rng = generator(campaign.seed, index);
    let total: u64 = campaign.faults.iter().map(|f| u64::from(f.weight)).sum();
    let mut draw = below(&mut rng, total);
    let set = campaign
        .faults
        .iter()
        .find(|f| {
            let w = u64::from(f.weight);
            if draw < w {
                true
            } else {
                draw -= w;
                false
            }
        })
        .unwrap_or(&campaign.faults[0]);
    let server = &set.servers[below(&mut rng, set.servers.len() as u64) as usize];
    let kind = set.kinds[below(&mut rng, set.kinds.len() as u64) as usize];
    let message = set.first + below(&mut rng, set.last - set.first + 1);
    let target = if server == KERNEL {
        Target::Kernel
    } else {
        Target::Server(server.clone())
    };
    Case {
        index,
        fault: FaultSpec::new(target, kind, message),
        fault_seed: below(&mut rng, SEED_LIMIT),
        guest_seed: below(&mut rng, SEED_LIMIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn campaign(seed: u64) -> Campaign {
        Campaign::parse(
            &format!(
                r#"
[campaign]
name = "t"
seed = {seed}
cases = 1000
[[faults]]
servers = ["kv", "fs"]
kinds = ["panic", "nop"]
messages = [5, 9]
weight = 3
[[faults]]
servers = ["kernel"]
kinds = ["state-flip"]
messages = [100, 100]
"#
            ),
            Path::new("."),
        )
        .expect("valid")
    }

    #[test]
    fn a_case_depends_on_the_master_seed_and_its_index_only() {
        let c = campaign(7);
        let all: Vec<Case> = (0..1000).map(|i| case(&c, i)).collect();
        // The same in any order.
        for i in (0..1000).rev().step_by(7) {
            assert_eq!(case(&c, i), all[i as usize]);
        }
        assert_ne!(case(&campaign(8), 3), all[3]);
        for k in &all {
            match &k.fault.target {
                Target::Kernel => assert_eq!(k.fault.message, 100),
                Target::Server(s) => {
                    assert!(s == "kv" || s == "fs");
                    assert!((5..=9).contains(&k.fault.message));
                }
            }
            assert!(k.fault_seed < SEED_LIMIT && k.guest_seed < SEED_LIMIT);
        }
        // Weights: about three in four cases from the first table.
        let kernel = all
            .iter()
            .filter(|k| k.fault.target == Target::Kernel)
            .count();
        assert!(
            (150..350).contains(&kernel),
            "{kernel} of 1000 for weight 1 of 4"
        );
        // Every server, kind and message of the first table is drawn.
        for m in 5..=9 {
            assert!(all.iter().any(|k| k.fault.message == m), "message {m}");
        }
        assert!(
            all.iter()
                .any(|k| k.fault.kind == abi::fault::FaultKind::Nop)
        );
        assert!(all.iter().any(|k| k.fault.server() == Some("fs")));
    }
}
