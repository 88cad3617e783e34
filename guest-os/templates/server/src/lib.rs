//! The `__NAME__` server's state and request handling (interface: `__NAME__-api`).
//!
//! The rules a server keeps so that the VMM can recover it: all its state is this one struct,
//! plain data valid as zeros (no pointers), which lives in its state arena, so a snapshot of
//! the arena at a boundary is the whole state; nothing is kept on the stack between messages;
//! a request declared read-only writes nothing here.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use __NAME___api::{REGISTERS, code, op};
use abi::ipc::{MSG_WORDS, Message, REPLY_OK};
use zerocopy::FromZeros;

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct State {
    registers: [u64; REGISTERS as usize],
}

fn ok(value: u64) -> Message {
    Message::new(REPLY_OK, [value, 0, 0, 0, 0, 0])
}

impl State {
    /// Handles one request.
    pub fn handle(&mut self, msg: &Message) -> Message {
        let [r, x, ..] = msg.words;
        let Some(reg) = usize::try_from(r)
            .ok()
            .and_then(|r| self.registers.get_mut(r))
        else {
            return Message::new(code::BAD_REQUEST, [0; MSG_WORDS]);
        };
        match msg.label {
            op::SET => {
                *reg = x;
                ok(0)
            }
            op::GET => ok(*reg),
            op::ADD => {
                *reg = reg.wrapping_add(x);
                ok(*reg)
            }
            _ => Message::new(code::BAD_REQUEST, [0; MSG_WORDS]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use __NAME___api::Client;
    use abi::ipc::{ClientError, Loopback, TaskId};

    #[test]
    fn registers_are_set_read_and_added_to() {
        let mut state = Box::new(State::new_zeroed());
        let mut t = Loopback(|_, m: &Message| state.handle(m));
        let mut c = Client::new(TaskId::new(1, 0));
        assert_eq!(c.set(&mut t, 3, 40), Ok(()));
        assert_eq!(c.add(&mut t, 3, 2), Ok(42));
        assert_eq!(c.get(&mut t, 3), Ok(42));
        assert_eq!(
            c.get(&mut t, REGISTERS),
            Err(ClientError::Server(code::BAD_REQUEST))
        );
    }
}
