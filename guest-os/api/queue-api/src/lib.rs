//! The queue server `queue`: [`QUEUES`] bounded FIFO queues of three-word entries, each entry
//! numbered by its queue's push count. Its interface, defined once.
//!
//! ```text
//!  op    label  request words     reply words (label 0 = ok)
//!  PUSH  1      queue, a, b, c    seq, dropped (0/1)
//!  POP   2      queue             seq, a, b, c
//!  PEEK  3      queue             seq, a, b, c
//!  LEN   4      queue             len, pushed
//!  ACK   5      queue, seq        len
//! ```
//!
//! A queue holds at most [`CAPACITY`] entries: a PUSH into a full queue drops its oldest entry
//! (the reply says so) and always succeeds; a queue is a bounded log as much as a FIFO. Entry
//! numbers (`seq`) count every PUSH the queue took, from 1; `pushed` is that count. POP takes
//! the oldest entry, PEEK reads it; ACK drops every entry numbered `seq` or lower (again: no
//! effect). Errors: `EMPTY` (POP, PEEK of an empty queue), `BAD_REQUEST` (a queue number out of
//! range).
//!
//! The bank journals every balance change in the queues numbered [`JOURNALS`] and up
//! (`bank_api`): those are the bank's; other clients use the queues below.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, ClientError, TaskId, Transport};

/// The server's name in the system map.
pub const SERVER: &str = "queue";
/// Queues, numbered `0..QUEUES`.
pub const QUEUES: u64 = 16;
/// Entries a queue holds.
pub const CAPACITY: usize = 16;
/// The first of the bank's journal queues (the last four).
pub const JOURNALS: u64 = QUEUES - 4;

abi::declare_requests! {
    server "queue";
    /// Append an entry (dropping the oldest of a full queue).
    PUSH = 1, changes_state;
    /// Take the oldest entry.
    POP = 2, changes_state;
    /// Read the oldest entry.
    PEEK = 3, idempotent;
    /// Entries held and pushed so far.
    LEN = 4, idempotent;
    /// Drop the entries numbered up to a sequence number.
    ACK = 5, changes_state, idempotent;
}

/// Reply codes other than 0 (ok).
pub mod code {
    /// The queue holds nothing.
    pub const EMPTY: u64 = 1;
    /// Malformed request (a queue number out of range).
    pub const BAD_REQUEST: u64 = 2;
}

/// One entry: its number in its queue and its three words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Its number: the queue's push count when it was pushed (from 1).
    pub seq: u64,
    /// Its words.
    pub data: [u64; 3],
}

/// A client of `queue`.
#[derive(Clone, Copy, Debug)]
pub struct Queue(pub Client);

impl Queue {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(Client::new(id))
    }

    /// Appends `data` to queue `q`; its number, and whether the oldest entry was dropped.
    pub fn push(
        &mut self,
        t: &mut impl Transport,
        q: u64,
        data: [u64; 3],
    ) -> Result<(u64, bool), ClientError> {
        let [a, b, c] = data;
        let r = self.0.request(t, op::PUSH, [q, a, b, c])?;
        Ok((r[0], r[1] != 0))
    }

    /// Takes the oldest entry of queue `q`.
    pub fn pop(&mut self, t: &mut impl Transport, q: u64) -> Result<Entry, ClientError> {
        let r = self.0.request(t, op::POP, [q])?;
        Ok(Entry {
            seq: r[0],
            data: [r[1], r[2], r[3]],
        })
    }

    /// Reads the oldest entry of queue `q`.
    pub fn peek(&mut self, t: &mut impl Transport, q: u64) -> Result<Entry, ClientError> {
        let r = self.0.request(t, op::PEEK, [q])?;
        Ok(Entry {
            seq: r[0],
            data: [r[1], r[2], r[3]],
        })
    }

    /// Entries queue `q` holds, and entries pushed into it so far.
    pub fn len(&mut self, t: &mut impl Transport, q: u64) -> Result<(u64, u64), ClientError> {
        let r = self.0.request(t, op::LEN, [q])?;
        Ok((r[0], r[1]))
    }

    /// Drops the entries of queue `q` numbered `seq` or lower; the entries left.
    pub fn ack(&mut self, t: &mut impl Transport, q: u64, seq: u64) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::ACK, [q, seq])?[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_table_is_well_formed() {
        assert_eq!(REQUESTS.check(), Ok(()));
    }
}
