//! The queue server's state and request handling (interface: `queue-api`): [`QUEUES`] rings of
//! [`CAPACITY`] entries. Plain data valid as zeros, so it lives in the server's state arena as
//! it is and a snapshot of the arena captures it whole; nothing is kept between messages but
//! this.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{MSG_WORDS, Message, REPLY_OK};
use queue_api::{CAPACITY, QUEUES, code, op};
use zerocopy::FromZeros;

/// One entry as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
struct Slot {
    seq: u64,
    data: [u64; 3],
}

/// One queue: a ring of entries.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
struct Ring {
    /// Index of the oldest entry.
    head: u64,
    /// Entries held.
    len: u64,
    /// Entries ever pushed (the newest entry's number).
    pushed: u64,
    slots: [Slot; CAPACITY],
}

impl Ring {
    fn slot(&self, i: u64) -> &Slot {
        &self.slots[((self.head + i) % CAPACITY as u64) as usize]
    }

    fn oldest(&self) -> Option<Slot> {
        (self.len > 0).then(|| *self.slot(0))
    }

    fn drop_oldest(&mut self) {
        self.head = (self.head + 1) % CAPACITY as u64;
        self.len -= 1;
    }
}

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Queues {
    rings: [Ring; QUEUES as usize],
}

fn entry_reply(s: Slot) -> Message {
    let [a, b, c] = s.data;
    Message::new(REPLY_OK, [s.seq, a, b, c, 0, 0])
}

fn fail(code: u64) -> Message {
    Message::new(code, [0; MSG_WORDS])
}

impl Queues {
    /// Handles one request.
    pub fn handle(&mut self, msg: &Message) -> Message {
        let w = msg.words;
        let Some(ring) = usize::try_from(w[0])
            .ok()
            .and_then(|q| self.rings.get_mut(q))
        else {
            return fail(code::BAD_REQUEST);
        };
        match msg.label {
            op::PUSH => {
                let dropped = ring.len == CAPACITY as u64;
                if dropped {
                    ring.drop_oldest();
                }
                ring.pushed += 1;
                let at = ((ring.head + ring.len) % CAPACITY as u64) as usize;
                ring.slots[at] = Slot {
                    seq: ring.pushed,
                    data: [w[1], w[2], w[3]],
                };
                ring.len += 1;
                Message::new(REPLY_OK, [ring.pushed, u64::from(dropped), 0, 0, 0, 0])
            }
            op::POP => match ring.oldest() {
                Some(s) => {
                    ring.drop_oldest();
                    entry_reply(s)
                }
                None => fail(code::EMPTY),
            },
            op::PEEK => ring.oldest().map_or(fail(code::EMPTY), entry_reply),
            op::LEN => Message::new(REPLY_OK, [ring.len, ring.pushed, 0, 0, 0, 0]),
            op::ACK => {
                while ring.oldest().is_some_and(|s| s.seq <= w[1]) {
                    ring.drop_oldest();
                }
                Message::new(REPLY_OK, [ring.len, 0, 0, 0, 0, 0])
            }
            _ => fail(code::BAD_REQUEST),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::{ClientError, Loopback, TaskId};
    use queue_api::{Entry, Queue};
    use std::collections::VecDeque;

    fn server() -> Box<Queues> {
        Box::new(Queues::new_zeroed())
    }

    #[test]
    fn a_queue_is_fifo_and_drops_its_oldest_when_full() {
        let mut s = server();
        let mut t = Loopback(|_, m: &Message| s.handle(m));
        let mut q = Queue::new(TaskId::new(1, 0));
        assert_eq!(q.pop(&mut t, 3), Err(ClientError::Server(code::EMPTY)));
        for i in 1..=CAPACITY as u64 {
            assert_eq!(q.push(&mut t, 3, [i, 0, 0]), Ok((i, false)));
        }
        assert_eq!(
            q.push(&mut t, 3, [99, 0, 0]),
            Ok((17, true)),
            "full: 1 dropped"
        );
        assert_eq!(q.len(&mut t, 3), Ok((CAPACITY as u64, 17)));
        assert_eq!(
            q.peek(&mut t, 3),
            Ok(Entry {
                seq: 2,
                data: [2, 0, 0]
            })
        );
        assert_eq!(
            q.pop(&mut t, 3),
            Ok(Entry {
                seq: 2,
                data: [2, 0, 0]
            })
        );
        assert_eq!(q.ack(&mut t, 3, 10), Ok(7));
        assert_eq!(q.ack(&mut t, 3, 10), Ok(7), "idempotent");
        assert_eq!(q.peek(&mut t, 3).map(|e| e.seq), Ok(11));
        assert_eq!(q.len(&mut t, 0), Ok((0, 0)), "queues are separate");
        assert_eq!(
            q.len(&mut t, QUEUES),
            Err(ClientError::Server(code::BAD_REQUEST))
        );
    }

    proptest::proptest! {
        /// Any sequence of requests answers as a bounded VecDeque would.
        #[test]
        fn behaves_like_a_bounded_deque(ops in proptest::collection::vec((0u8..5, 0u64..3, proptest::num::u64::ANY), 0..200)) {
            let mut s = server();
            let mut t = Loopback(|_, m: &Message| s.handle(m));
            let mut q = Queue::new(TaskId::new(1, 0));
            let mut model: [(VecDeque<Entry>, u64); 3] = Default::default();
            for (op, n, x) in ops {
                let (m, pushed) = &mut model[n as usize];
                match op {
                    0 => {
                        *pushed += 1;
                        let dropped = m.len() == CAPACITY;
                        if dropped { m.pop_front(); }
                        m.push_back(Entry { seq: *pushed, data: [x, !x, 7] });
                        proptest::prop_assert_eq!(q.push(&mut t, n, [x, !x, 7]), Ok((*pushed, dropped)));
                    }
                    1 => proptest::prop_assert_eq!(q.pop(&mut t, n), m.pop_front().ok_or(ClientError::Server(code::EMPTY))),
                    2 => proptest::prop_assert_eq!(q.peek(&mut t, n), m.front().copied().ok_or(ClientError::Server(code::EMPTY))),
                    3 => proptest::prop_assert_eq!(q.len(&mut t, n), Ok((m.len() as u64, *pushed))),
                    _ => {
                        let upto = x % (*pushed + 2);
                        m.retain(|e| e.seq > upto);
                        proptest::prop_assert_eq!(q.ack(&mut t, n, upto), Ok(m.len() as u64));
                    }
                }
            }
        }
    }
}
