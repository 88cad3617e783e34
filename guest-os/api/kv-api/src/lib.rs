//! The key-value server `kv`: its interface, defined once (wire format, codes, client).
//!
//! Keys are `u64`; values are 0 to 32 bytes. Every request and reply fits one message. Beside
//! the keys, [`COUNTERS`] counters (`u64`, starting at 0), outside the key space.
//!
//! ```text
//!  op      label  request words              reply words (label 0 = ok)     state  idempotent
//!  PUT     1      key, len, data[4]          had_old (0/1)                  yes    yes
//!  GET     2      key                        len, data[4]                   no     yes
//!  DELETE  3      key                        -                              yes    no
//!  SCAN    4      cursor                     next cursor, key, len, data[3] no     yes
//!  ADD     5      counter, delta             new value                      yes    no
//!  COUNTER 6      counter                    value                          no     yes
//! ```
//!
//! SCAN returns the first entry at or after slot `cursor` (slot order, not key order) and the
//! cursor to continue from; `NOT_FOUND` when none is left. SCAN carries the first 24 bytes of
//! the value only, and never sees the counters. ADD adds `delta` (an `i64` as two's-complement
//! `u64`) to counter `counter` (`0..COUNTERS`), wrapping. Errors: `NOT_FOUND` (GET, DELETE of an
//! absent key; SCAN past the end), `FULL` (PUT of a new key into a full store), `BAD_REQUEST`
//! (also a counter number out of range).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, ClientError, TaskId, Transport, pack_bytes, unpack_bytes};

/// The server's name in the system map.
pub const SERVER: &str = "kv";
/// Longest value, in bytes.
pub const VALUE_MAX: usize = 32;
/// Bytes of a value a SCAN reply carries.
pub const SCAN_BYTES: usize = 24;
/// Entries the store holds.
pub const CAPACITY: usize = 1024;
/// Counters (ADD, COUNTER), numbered `0..COUNTERS`.
pub const COUNTERS: usize = 64;

/// Opcodes (message labels).
pub mod op {
    /// Store a value under a key.
    pub const PUT: u64 = 1;
    /// Read a key's value.
    pub const GET: u64 = 2;
    /// Remove a key.
    pub const DELETE: u64 = 3;
    /// The next entry from a cursor.
    pub const SCAN: u64 = 4;
    /// Add to a counter.
    pub const ADD: u64 = 5;
    /// Read a counter.
    pub const COUNTER: u64 = 6;
}

/// Reply codes other than 0 (ok).
pub mod code {
    /// No such key, or nothing left to scan.
    pub const NOT_FOUND: u64 = 1;
    /// The store is full.
    pub const FULL: u64 = 2;
    /// Malformed request.
    pub const BAD_REQUEST: u64 = 3;
}

/// True for requests that change the server's state.
pub const fn changes_state(label: u64) -> bool {
    matches!(label, op::PUT | op::DELETE | op::ADD)
}

/// True for requests that may be sent again after a restart with the same result.
pub const fn idempotent(label: u64) -> bool {
    matches!(label, op::PUT | op::GET | op::SCAN | op::COUNTER)
}

/// A value: up to [`VALUE_MAX`] bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Value {
    /// Used bytes.
    pub len: usize,
    /// The bytes (past `len`: zero).
    pub bytes: [u8; VALUE_MAX],
}

impl Value {
    /// A value holding `data` (cut at [`VALUE_MAX`]).
    pub fn new(data: &[u8]) -> Self {
        let len = data.len().min(VALUE_MAX);
        let mut bytes = [0u8; VALUE_MAX];
        bytes[..len].copy_from_slice(&data[..len]);
        Value { len, bytes }
    }

    /// The used bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len.min(VALUE_MAX)]
    }

    /// Its words on the wire.
    pub fn words(&self) -> [u64; 4] {
        pack_bytes(self.as_bytes())
    }

    /// A value from wire words (`len` clamped).
    pub fn from_words(len: u64, words: &[u64]) -> Self {
        let mut v = Value {
            len: (len as usize).min(VALUE_MAX),
            ..Default::default()
        };
        let n = v.len;
        unpack_bytes(words, &mut v.bytes[..n]);
        v
    }
}

/// One SCAN result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanEntry {
    /// Where the next SCAN starts.
    pub next: u64,
    /// The key.
    pub key: u64,
    /// The value's length.
    pub len: usize,
    /// Its first [`SCAN_BYTES`] bytes.
    pub prefix: [u8; SCAN_BYTES],
}

/// A client of `kv`.
#[derive(Clone, Copy, Debug)]
pub struct Kv(pub Client);

impl Kv {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(Client::new(id, idempotent))
    }

    /// Stores `value` under `key`; true when it replaced a value.
    pub fn put(
        &mut self,
        t: &mut impl Transport,
        key: u64,
        value: &Value,
    ) -> Result<bool, ClientError> {
        let [a, b, c, d] = value.words();
        let r = self
            .0
            .call(t, op::PUT, [key, value.len as u64, a, b, c, d])?;
        Ok(r.words[0] != 0)
    }

    /// The value under `key`.
    pub fn get(&mut self, t: &mut impl Transport, key: u64) -> Result<Value, ClientError> {
        let r = self.0.call(t, op::GET, [key, 0, 0, 0, 0, 0])?;
        Ok(Value::from_words(r.words[0], &r.words[1..5]))
    }

    /// Removes `key`.
    pub fn delete(&mut self, t: &mut impl Transport, key: u64) -> Result<(), ClientError> {
        self.0.call(t, op::DELETE, [key, 0, 0, 0, 0, 0]).map(|_| ())
    }

    /// The first entry at or after `cursor`, or `None` at the end.
    pub fn scan(
        &mut self,
        t: &mut impl Transport,
        cursor: u64,
    ) -> Result<Option<ScanEntry>, ClientError> {
        match self.0.call(t, op::SCAN, [cursor, 0, 0, 0, 0, 0]) {
            Ok(r) => {
                let mut prefix = [0u8; SCAN_BYTES];
                unpack_bytes(&r.words[3..6], &mut prefix);
                Ok(Some(ScanEntry {
                    next: r.words[0],
                    key: r.words[1],
                    len: (r.words[2] as usize).min(VALUE_MAX),
                    prefix,
                }))
            }
            Err(ClientError::Server(code::NOT_FOUND)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `delta` to counter `counter` (wrapping); returns its new value.
    pub fn add(
        &mut self,
        t: &mut impl Transport,
        counter: u64,
        delta: i64,
    ) -> Result<u64, ClientError> {
        let r = self
            .0
            .call(t, op::ADD, [counter, delta as u64, 0, 0, 0, 0])?;
        Ok(r.words[0])
    }

    /// The value of counter `counter`.
    pub fn counter(&mut self, t: &mut impl Transport, counter: u64) -> Result<u64, ClientError> {
        Ok(self.0.call(t, op::COUNTER, [counter, 0, 0, 0, 0, 0])?.words[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_words() {
        let v = Value::new(b"thirty-two bytes of value data!!");
        assert_eq!(Value::from_words(v.len as u64, &v.words()), v);
        let long = Value::from_words(1000, &[u64::MAX; 4]);
        assert_eq!(long.len, VALUE_MAX);
    }

    #[test]
    fn idempotence_table() {
        assert!(idempotent(op::PUT) && changes_state(op::PUT));
        assert!(!idempotent(op::DELETE) && changes_state(op::DELETE));
        assert!(idempotent(op::GET) && !changes_state(op::GET));
        assert!(!idempotent(op::ADD) && changes_state(op::ADD));
        assert!(idempotent(op::COUNTER) && !changes_state(op::COUNTER));
        assert!(!idempotent(99) && !changes_state(99));
    }
}
