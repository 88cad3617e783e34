//! The `__NAME__` server: its interface, defined once. (From guest-os/templates: a register
//! file of [`REGISTERS`] numbers; make it yours.)
//!
//! ```text
//!  op   label  request words      reply words (label 0 = ok)
//!  SET  1      register, value    -
//!  GET  2      register           value
//!  ADD  3      register, delta    new value (wrapping)
//! ```
//!
//! Errors: `BAD_REQUEST` (a register number out of range).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{ClientError, TaskId, Transport};

/// The server's name in the system map.
pub const SERVER: &str = "__NAME__";
/// Registers, numbered `0..REGISTERS`.
pub const REGISTERS: u64 = 16;

// Every request, once: its label, and what recovery must know of it. `changes_state`: it may
// change the server's state (the kernel snapshots the server after it; the VMM checks that the
// others really change nothing). `idempotent`: delivering it twice has the effect of once (a
// recovery policy may replay it).
abi::declare_requests! {
    server "__NAME__";
    /// Set a register.
    SET = 1, changes_state, idempotent;
    /// Read a register.
    GET = 2, idempotent;
    /// Add to a register.
    ADD = 3, changes_state;
}

/// Reply codes other than 0 (ok).
pub mod code {
    /// Malformed request (a register number out of range).
    pub const BAD_REQUEST: u64 = 1;
}

/// A client of `__NAME__`.
#[derive(Clone, Copy, Debug)]
pub struct Client(pub abi::ipc::Client);

impl Client {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(abi::ipc::Client::new(id))
    }

    /// Sets register `r` to `value`.
    pub fn set(&mut self, t: &mut impl Transport, r: u64, value: u64) -> Result<(), ClientError> {
        self.0.request(t, op::SET, [r, value]).map(|_| ())
    }

    /// The value of register `r`.
    pub fn get(&mut self, t: &mut impl Transport, r: u64) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::GET, [r])?[0])
    }

    /// Adds `delta` to register `r`; its new value.
    pub fn add(&mut self, t: &mut impl Transport, r: u64, delta: u64) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::ADD, [r, delta])?[0])
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
