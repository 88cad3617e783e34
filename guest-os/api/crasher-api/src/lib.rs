//! The test server `crasher`: its interface, defined once.
//!
//! ```text
//!  op    label  request  reply (label 0 = ok)   state  idempotent
//!  POKE  1      -        -                      no     yes
//! ```
//!
//! Given a fault kind on the guest command line (`crasher=KIND`, the names `vmm run --fault`
//! takes), the crasher takes that fault while handling a POKE, so the caller's call is cut off: the kernel answers it with
//! `PeerCrashed` ([`abi::ipc::ClientError::Crashed`]). Without a mode it answers 0.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, ClientError, TaskId, Transport};

/// The server's name in the system map.
pub const SERVER: &str = "crasher";

/// Opcodes.
pub mod op {
    /// Take the configured fault now (or answer, without one).
    pub const POKE: u64 = 1;
}

/// True for requests that change the server's state.
pub const fn changes_state(label: u64) -> bool {
    let _ = label;
    false
}

/// True for requests that may be sent again after a restart.
pub const fn idempotent(label: u64) -> bool {
    label == op::POKE
}

/// A client of `crasher`.
#[derive(Clone, Copy, Debug)]
pub struct Crasher(pub Client);

impl Crasher {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(Client::new(id, idempotent))
    }

    /// Pokes it: `Err(ClientError::Crashed)` when it took its fault.
    pub fn poke(&mut self, t: &mut impl Transport) -> Result<(), ClientError> {
        self.0.call(t, op::POKE, [0; 6]).map(|_| ())
    }
}
