//! The key-value server's state and request handling (interface: `kv-api`).
//!
//! The store is an open-addressing hash table with linear probing and backward-shift deletion
//! (no tombstones), [`kv_api::CAPACITY`] slots; beside it the [`kv_api::COUNTERS`] counters.
//! All plain data valid as zeros, so it lives in the server's state arena as it is and a
//! snapshot of the arena captures it whole.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{MSG_WORDS, Message, REPLY_OK};
use kv_api::{CAPACITY, COUNTERS, code, op};
use zerocopy::FromZeros;

const MASK: usize = CAPACITY - 1;
const _: () = assert!(CAPACITY.is_power_of_two());

/// One slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
pub struct Slot {
    used: u64,
    key: u64,
    len: u64,
    data: [u64; 4],
}

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Store {
    slots: [Slot; CAPACITY],
    count: u64,
    counters: [u64; COUNTERS],
}

fn home(key: u64) -> usize {
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & MASK
}

fn reply(label: u64, words: [u64; MSG_WORDS]) -> Message {
    Message::new(label, words)
}

fn fail(code: u64) -> Message {
    reply(code, [0; MSG_WORDS])
}

impl Store {
    /// Entries stored.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// `Ok(slot)` holding `key`, or `Err(slot)` where it would go.
    fn find(&self, key: u64) -> Result<usize, usize> {
        let mut i = home(key);
        loop {
            let s = &self.slots[i];
            if s.used == 0 {
                return Err(i);
            }
            if s.key == key {
                return Ok(i);
            }
            i = (i + 1) & MASK;
        }
    }

    /// Handles one request.
    pub fn handle(&mut self, msg: &Message) -> Message {
        let w = msg.words;
        match msg.label {
            op::PUT if w[1] as usize <= kv_api::VALUE_MAX => self.put(w),
            op::GET => match self.find(w[0]) {
                Ok(i) => {
                    let s = self.slots[i];
                    reply(
                        REPLY_OK,
                        [s.len, s.data[0], s.data[1], s.data[2], s.data[3], 0],
                    )
                }
                Err(_) => fail(code::NOT_FOUND),
            },
            op::DELETE => match self.find(w[0]) {
                Ok(i) => {
                    self.remove(i);
                    reply(REPLY_OK, [0; MSG_WORDS])
                }
                Err(_) => fail(code::NOT_FOUND),
            },
            op::SCAN => self.scan(w[0]),
            op::ADD => match self.counter_mut(w[0]) {
                Some(c) => {
                    *c = c.wrapping_add(w[1]);
                    reply(REPLY_OK, [*c, 0, 0, 0, 0, 0])
                }
                None => fail(code::BAD_REQUEST),
            },
            op::COUNTER => match self.counter_mut(w[0]) {
                Some(c) => reply(REPLY_OK, [*c, 0, 0, 0, 0, 0]),
                None => fail(code::BAD_REQUEST),
            },
            _ => fail(code::BAD_REQUEST),
        }
    }

    /// Counter `n`, if it is one.
    fn counter_mut(&mut self, n: u64) -> Option<&mut u64> {
        self.counters.get_mut(usize::try_from(n).ok()?)
    }

    fn put(&mut self, w: [u64; MSG_WORDS]) -> Message {
        let (i, had) = match self.find(w[0]) {
            Ok(i) => (i, 1),
            // Keep one slot empty so that every probe ends.
            Err(_) if self.count as usize >= CAPACITY - 1 => return fail(code::FULL),
            Err(i) => {
                self.count += 1;
                (i, 0)
            }
        };
        self.slots[i] = Slot {
            used: 1,
            key: w[0],
            len: w[1],
            data: [w[2], w[3], w[4], w[5]],
        };
        reply(REPLY_OK, [had, 0, 0, 0, 0, 0])
    }

    /// Empties slot `i`, shifting later entries of its probe run back.
    fn remove(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = (j + 1) & MASK;
            if self.slots[j].used == 0 {
                break;
            }
            let k = home(self.slots[j].key);
            // Move j back to i unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = self.slots[j];
                i = j;
            }
        }
        self.slots[i] = Slot::default();
        self.count -= 1;
    }

    fn scan(&self, cursor: u64) -> Message {
        let start = usize::try_from(cursor).unwrap_or(CAPACITY).min(CAPACITY);
        match (start..CAPACITY).find(|&i| self.slots[i].used != 0) {
            Some(i) => {
                let s = &self.slots[i];
                reply(
                    REPLY_OK,
                    [i as u64 + 1, s.key, s.len, s.data[0], s.data[1], s.data[2]],
                )
            }
            None => fail(code::NOT_FOUND),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::{ClientError, Loopback, TaskId};
    use kv_api::{Kv, Value};
    use std::collections::HashMap;

    #[test]
    fn put_get_delete_scan() {
        let mut store = Box::new(Store::new_zeroed());
        let mut t = Loopback(|_, m: &Message| store.handle(m));
        let mut kv = Kv::new(TaskId::new(1, 0));
        assert_eq!(kv.put(&mut t, 7, &Value::new(b"seven")), Ok(false));
        assert_eq!(kv.put(&mut t, 7, &Value::new(b"SEVEN")), Ok(true));
        assert_eq!(
            kv.get(&mut t, 7).map(|v| v.as_bytes().to_vec()),
            Ok(b"SEVEN".to_vec())
        );
        assert_eq!(kv.get(&mut t, 8), Err(ClientError::Server(code::NOT_FOUND)));
        let first = kv.scan(&mut t, 0).expect("ok").expect("one entry");
        assert_eq!((first.key, first.len), (7, 5));
        assert_eq!(kv.scan(&mut t, first.next), Ok(None));
        assert_eq!(kv.delete(&mut t, 7), Ok(()));
        assert_eq!(
            kv.delete(&mut t, 7),
            Err(ClientError::Server(code::NOT_FOUND))
        );
        assert!(store.is_empty());
    }

    #[test]
    fn the_store_fills_up_and_reports_it() {
        let mut store = Box::new(Store::new_zeroed());
        let mut t = Loopback(|_, m: &Message| store.handle(m));
        let mut kv = Kv::new(TaskId::new(1, 0));
        for k in 0..CAPACITY as u64 - 1 {
            assert_eq!(kv.put(&mut t, k, &Value::new(b"x")), Ok(false));
        }
        assert_eq!(
            kv.put(&mut t, u64::MAX, &Value::new(b"x")),
            Err(ClientError::Server(code::FULL))
        );
        assert_eq!(
            kv.put(&mut t, 3, &Value::new(b"y")),
            Ok(true),
            "replacing still works"
        );
    }

    #[test]
    fn counters_add_wrap_and_stay_out_of_the_key_space() {
        let mut store = Box::new(Store::new_zeroed());
        let mut t = Loopback(|_, m: &Message| store.handle(m));
        let mut kv = Kv::new(TaskId::new(1, 0));
        assert_eq!(kv.counter(&mut t, 0), Ok(0));
        assert_eq!(kv.add(&mut t, 0, 5), Ok(5));
        assert_eq!(kv.add(&mut t, 0, -7), Ok(u64::MAX - 1), "wraps below zero");
        assert_eq!(kv.add(&mut t, 0, 2), Ok(0), "and back");
        assert_eq!(kv.add(&mut t, COUNTERS as u64 - 1, i64::MIN), Ok(1 << 63));
        assert_eq!(kv.counter(&mut t, COUNTERS as u64 - 1), Ok(1 << 63));
        for bad in [COUNTERS as u64, u64::MAX] {
            let refused = Err(ClientError::Server(code::BAD_REQUEST));
            assert_eq!(kv.add(&mut t, bad, 1), refused);
            assert_eq!(kv.counter(&mut t, bad), refused);
        }
        assert_eq!(kv.scan(&mut t, 0), Ok(None), "counters are not keys");
        assert_eq!(kv.get(&mut t, 0), Err(ClientError::Server(code::NOT_FOUND)));
        assert!(store.is_empty());
    }

    proptest::proptest! {
        /// Against a HashMap and an array: any sequence of puts, deletes and counter additions
        /// on colliding keys leaves every key readable with its last value and every counter
        /// at the sum of its deltas, and a full scan finds exactly the map's keys.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u64..300, 0u8..3, proptest::num::i64::ANY), 0..600)) {
            let mut store = Box::new(Store::new_zeroed());
            let mut t = Loopback(|_, m: &Message| store.handle(m));
            let mut kv = Kv::new(TaskId::new(1, 0));
            let mut model = HashMap::new();
            let mut counters = [0u64; COUNTERS];
            for (key, what, n) in ops {
                let byte = n as u8;
                let key = key * 1024; // same home slot for many keys: long probe runs
                match what {
                    0 => {
                        let v = Value::new(&[byte; 3]);
                        proptest::prop_assert_eq!(kv.put(&mut t, key, &v), Ok(model.insert(key, v).is_some()));
                    }
                    1 => {
                        let expect = if model.remove(&key).is_some() { Ok(()) } else { Err(ClientError::Server(code::NOT_FOUND)) };
                        proptest::prop_assert_eq!(kv.delete(&mut t, key), expect);
                    }
                    _ => {
                        let c = (key / 1024) as usize % COUNTERS;
                        counters[c] = counters[c].wrapping_add(n as u64);
                        proptest::prop_assert_eq!(kv.add(&mut t, c as u64, n), Ok(counters[c]));
                    }
                }
            }
            for (key, v) in &model {
                proptest::prop_assert_eq!(kv.get(&mut t, *key), Ok(*v));
            }
            for (c, value) in counters.iter().enumerate() {
                proptest::prop_assert_eq!(kv.counter(&mut t, c as u64), Ok(*value));
            }
            let mut seen = 0;
            let mut cursor = 0;
            while let Some(e) = kv.scan(&mut t, cursor).expect("scan") {
                proptest::prop_assert!(model.contains_key(&e.key));
                seen += 1;
                cursor = e.next;
            }
            proptest::prop_assert_eq!(seen, model.len());
        }
    }
}
