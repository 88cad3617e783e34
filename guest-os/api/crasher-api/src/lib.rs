//! The test server `crasher`: its interface, defined once.
//!
//! ```text
//!  op    label  request  reply (label 0 = ok)
//!  POKE  1      -        pokes answered (counted in its state)
//!  PING  2      -        pokes answered
//! ```
//!
//! Given a fault kind on the guest command line (`crasher=KIND`, the names `vmm run --fault`
//! takes), the crasher takes that fault while handling a POKE, so the caller's call is cut off:
//! the kernel answers it with `PeerCrashed` ([`abi::ipc::ClientError::Crashed`]).
//!
//! PING is declared read-only. With `crasher=misdeclare` the crasher breaks that declaration
//! on purpose (it counts pings in its state): the VMM checks declarations against what the
//! snapshots find, and a test shows it catching this one.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, ClientError, TaskId, Transport};

/// The server's name in the system map.
pub const SERVER: &str = "crasher";

abi::declare_requests! {
    server "crasher";
    /// Take the configured fault now (or answer, without one); counts the pokes answered.
    POKE = 1, changes_state;
    /// The number of pokes answered.
    PING = 2, idempotent;
}

/// A client of `crasher`.
#[derive(Clone, Copy, Debug)]
pub struct Crasher(pub Client);

impl Crasher {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(Client::new(id))
    }

    /// Pokes it: `Err(ClientError::Crashed)` when it took its fault.
    pub fn poke(&mut self, t: &mut impl Transport) -> Result<(), ClientError> {
        self.0.request(t, op::POKE, []).map(|_| ())
    }

    /// The number of pokes it answered.
    pub fn ping(&mut self, t: &mut impl Transport) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::PING, [])?[0])
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
