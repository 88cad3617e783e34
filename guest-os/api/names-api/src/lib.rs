//! The name server `names`: its interface, defined once. It is task 0 in every image, so a
//! client reaches it without a lookup ([`Names::well_known`]).
//!
//! ```text
//!  op       label  request words   reply words (label 0 = ok)
//!  LOOKUP   1      name[2]         endpoint id (index + generation)
//!  ENTRY    2      index           name[2], endpoint id, task state
//!  REFRESH  3      index           endpoint id
//! ```
//!
//! The kernel owns generations; the name server caches the task table it read from the kernel
//! at start. LOOKUP answers the kernel's current id (it re-reads the entry it finds, so that a
//! client never starts with an id from before a restart); ENTRY answers the cache; REFRESH
//! re-reads an entry by index (e.g. after a client saw "peer restarted"). Re-reading changes
//! nothing a client can see but the freshness of an id, so LOOKUP stays read-only.
//! Errors: `NOT_FOUND`, `BAD_REQUEST`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, ClientError, TaskId, Transport, pack_name, unpack_name};

/// The server's name in the system map.
pub const SERVER: &str = "names";

abi::declare_requests! {
    server "names";
    /// The endpoint of a task by name.
    LOOKUP = 1, idempotent;
    /// Task-table entry by index.
    ENTRY = 2, idempotent;
    /// Re-read an entry from the kernel.
    REFRESH = 3, changes_state, idempotent;
}

/// Reply codes other than 0.
pub mod code {
    /// No such name or index.
    pub const NOT_FOUND: u64 = 1;
    /// Malformed request.
    pub const BAD_REQUEST: u64 = 2;
}

/// One task-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Name, NUL-padded.
    pub name: [u8; 16],
    /// Endpoint id as cached.
    pub id: TaskId,
    /// The task's state number (`abi::ipc::TaskState`) when cached.
    pub state: u64,
}

/// A client of `names`.
#[derive(Clone, Copy, Debug)]
pub struct Names(pub Client);

impl Names {
    /// The name server at its well-known index 0 (generation 0 until told otherwise).
    pub const fn well_known() -> Self {
        Self(Client::new(TaskId::new(0, 0)))
    }

    /// The endpoint of the task called `name`.
    pub fn lookup(&mut self, t: &mut impl Transport, name: &str) -> Result<TaskId, ClientError> {
        let [a, b] = pack_name(name.as_bytes());
        Ok(TaskId(self.0.request(t, op::LOOKUP, [a, b])?[0]))
    }

    /// Task-table entry `index`.
    pub fn entry(&mut self, t: &mut impl Transport, index: u64) -> Result<Entry, ClientError> {
        let r = self.0.request(t, op::ENTRY, [index])?;
        Ok(Entry {
            name: unpack_name([r[0], r[1]]),
            id: TaskId(r[2]),
            state: r[3],
        })
    }

    /// Re-reads entry `index` from the kernel; returns the current endpoint.
    pub fn refresh(&mut self, t: &mut impl Transport, index: u64) -> Result<TaskId, ClientError> {
        Ok(TaskId(self.0.request(t, op::REFRESH, [index])?[0]))
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
