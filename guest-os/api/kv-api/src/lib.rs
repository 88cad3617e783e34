//! The key-value server `kv`: its interface, defined once (wire format, codes, client).
//!
//! Keys are `u64`; values are 0 to 32 bytes. Every request and reply fits one message. Beside
//! the keys, [`COUNTERS`] counters (`u64`, starting at 0), outside the key space.
//!
//! ```text
//!  op      label  request words              reply words (label 0 = ok)
//!  PUT     1      key, len, data[4]          had_old (0/1)
//!  GET     2      key                        len, data[4]
//!  DELETE  3      key                        -
//!  SCAN    4      cursor                     next cursor, key, len, data[3]
//!  ADD     5      counter, delta             new value
//!  COUNTER 6      counter                    value
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
/// Keys from here on belong to the load clients (kvload's namespace); the workload uses keys
/// below it, and its checks of kv's contents skip the load clients' keys.
pub const LOAD_KEY_BASE: u64 = 1000;
/// Counters (ADD, COUNTER), numbered `0..COUNTERS`.
pub const COUNTERS: usize = 64;

abi::declare_requests! {
    server "kv";
    /// Store a value under a key.
    PUT = 1, changes_state, idempotent;
    /// Read a key's value.
    GET = 2, idempotent;
    /// Remove a key.
    DELETE = 3, changes_state;
    /// The next entry from a cursor.
    SCAN = 4, idempotent;
    /// Add to a counter.
    ADD = 5, changes_state;
    /// Read a counter.
    COUNTER = 6, idempotent;
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
        Self(Client::new(id))
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
            .request(t, op::PUT, [key, value.len as u64, a, b, c, d])?;
        Ok(r[0] != 0)
    }

    /// The value under `key`.
    pub fn get(&mut self, t: &mut impl Transport, key: u64) -> Result<Value, ClientError> {
        let r = self.0.request(t, op::GET, [key])?;
        Ok(Value::from_words(r[0], &r[1..5]))
    }

    /// Removes `key`.
    pub fn delete(&mut self, t: &mut impl Transport, key: u64) -> Result<(), ClientError> {
        self.0.request(t, op::DELETE, [key]).map(|_| ())
    }

    /// The first entry at or after `cursor`, or `None` at the end.
    pub fn scan(
        &mut self,
        t: &mut impl Transport,
        cursor: u64,
    ) -> Result<Option<ScanEntry>, ClientError> {
        match self.0.request(t, op::SCAN, [cursor]) {
            Ok(r) => {
                let mut prefix = [0u8; SCAN_BYTES];
                unpack_bytes(&r[3..6], &mut prefix);
                Ok(Some(ScanEntry {
                    next: r[0],
                    key: r[1],
                    len: (r[2] as usize).min(VALUE_MAX),
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
        let r = self.0.request(t, op::ADD, [counter, delta as u64])?;
        Ok(r[0])
    }

    /// The value of counter `counter`.
    pub fn counter(&mut self, t: &mut impl Transport, counter: u64) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::COUNTER, [counter])?[0])
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
    fn the_request_table_is_well_formed() {
        assert_eq!(REQUESTS.check(), Ok(()));
    }
}
