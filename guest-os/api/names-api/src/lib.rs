//! The name server `names`: its interface, defined once. It is task 0 in every image, so a
//! client reaches it without a lookup ([`Names::well_known`]).
//!
//! ```text
//!  op       label  request words   reply words (label 0 = ok)          state  idempotent
//!  LOOKUP   1      name[2]         endpoint id (index + generation)    no     yes
//!  ENTRY    2      index           name[2], endpoint id, task state    no     yes
//!  REFRESH  3      index           endpoint id                         yes    yes
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

/// Opcodes.
pub mod op {
    /// The endpoint of a task by name.
    pub const LOOKUP: u64 = 1;
    /// Task-table entry by index.
    pub const ENTRY: u64 = 2;
    /// Re-read an entry from the kernel.
    pub const REFRESH: u64 = 3;
}

/// Reply codes other than 0.
pub mod code {
    /// No such name or index.
    pub const NOT_FOUND: u64 = 1;
    /// Malformed request.
    pub const BAD_REQUEST: u64 = 2;
}

/// True for requests that change the server's state.
pub const fn changes_state(label: u64) -> bool {
    label == op::REFRESH
}

/// True for requests that may be sent again after a restart.
pub const fn idempotent(label: u64) -> bool {
    matches!(label, op::LOOKUP | op::ENTRY | op::REFRESH)
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
        Self(Client::new(TaskId::new(0, 0), idempotent))
    }

    /// The endpoint of the task called `name`.
    pub fn lookup(&mut self, t: &mut impl Transport, name: &str) -> Result<TaskId, ClientError> {
        let [a, b] = pack_name(name.as_bytes());
        Ok(TaskId(
            self.0.call(t, op::LOOKUP, [a, b, 0, 0, 0, 0])?.words[0],
        ))
    }

    /// Task-table entry `index`.
    pub fn entry(&mut self, t: &mut impl Transport, index: u64) -> Result<Entry, ClientError> {
        let r = self.0.call(t, op::ENTRY, [index, 0, 0, 0, 0, 0])?;
        Ok(Entry {
            name: unpack_name([r.words[0], r.words[1]]),
            id: TaskId(r.words[2]),
            state: r.words[3],
        })
    }

    /// Re-reads entry `index` from the kernel; returns the current endpoint.
    pub fn refresh(&mut self, t: &mut impl Transport, index: u64) -> Result<TaskId, ClientError> {
        Ok(TaskId(
            self.0.call(t, op::REFRESH, [index, 0, 0, 0, 0, 0])?.words[0],
        ))
    }
}
