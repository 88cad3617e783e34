//! kvload's mix: puts 50 %, deletes 20 %, gets 30 %, over its own keys (`KV_BASE` and the
//! `KV_KEYS` after it), never kv's counters (they are the bank's audit). The workload uses keys
//! below `KV_BASE`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{TaskId, Transport};
use kv_api::{Kv, Value};
use load::{Mix, Rng, Tally};

/// First key of kvload's namespace.
pub const KV_BASE: u64 = kv_api::LOAD_KEY_BASE;
/// Keys kvload uses.
pub const KV_KEYS: usize = 16;

/// The mix, and what kvload believes its keys hold.
#[derive(Debug)]
pub struct KvMix {
    kv: Kv,
    rng: Rng,
    keys: [Option<Value>; KV_KEYS],
    made: u64,
}

impl Mix for KvMix {
    fn new(server: TaskId) -> Self {
        Self {
            kv: Kv::new(server),
            rng: Rng::new(0x9e37_79b9 ^ 1),
            keys: [None; KV_KEYS],
            made: 0,
        }
    }

    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally) {
        self.made += 1;
        let k = self.rng.below(KV_KEYS as u64) as usize;
        let key = KV_BASE + k as u64;
        let held = self.keys[k];
        match self.rng.below(100) {
            0..50 => {
                let n = self.made.to_le_bytes();
                let v = Value::new(&[n[0], n[1], n[2], k as u8]);
                let got = self.kv.put(t, key, &v);
                if tally.check(got, Ok(held.is_some())) {
                    self.keys[k] = Some(v);
                }
            }
            50..70 => {
                let got = self.kv.delete(t, key);
                let want = held.map(|_| ()).ok_or(kv_api::code::NOT_FOUND);
                if tally.check(got, want) {
                    self.keys[k] = None;
                }
            }
            _ => {
                let got = self.kv.get(t, key);
                tally.check(got, held.ok_or(kv_api::code::NOT_FOUND));
            }
        }
    }

    fn forget(&mut self) {
        self.keys = [None; KV_KEYS];
    }

    fn retries(&self) -> u64 {
        self.kv.0.ep.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    /// The workload may run beside it: it uses the keys below this client's.
    #[test]
    fn its_namespace_is_clear_of_the_workload_s() {
        assert!(workload::model::KEYS as u64 <= KV_BASE);
    }

    #[test]
    fn checks_out_against_the_real_server_logic() {
        let mut kv = Box::new(kv::Store::new_zeroed());
        let (f, _) = load::run_against::<KvMix>(2000, |m| kv.handle(m));
        assert_eq!(
            (f.ops, f.errors, f.mismatches, f.lost),
            (2000, 0, 0, 0),
            "{f:?}"
        );
    }
}
