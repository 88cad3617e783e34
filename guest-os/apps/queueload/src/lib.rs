//! queueload's mix: its own queue ([`QUEUE`]), pushes 40 %, pops 30 %, peeks 15 %, lengths 10 %,
//! acks 5 %, each checked against a model of the ring. The workload uses the queues below it;
//! the bank's journals are above.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{TaskId, Transport};
use load::{Mix, Rng, Tally};
use queue_api::{CAPACITY, Entry, Queue, code};

/// queueload's queue (the last one below the bank's journals).
pub const QUEUE: u64 = queue_api::JOURNALS - 1;

/// The mix, and what queueload believes its queue holds: the entries oldest first (a ring)
/// and the push count.
#[derive(Debug)]
pub struct QueueMix {
    queue: Queue,
    rng: Rng,
    held: [Entry; CAPACITY],
    head: usize,
    len: usize,
    pushed: u64,
}

impl QueueMix {
    fn oldest(&self) -> Option<Entry> {
        (self.len > 0).then(|| self.held[self.head])
    }

    fn drop_oldest(&mut self) {
        self.head = (self.head + 1) % CAPACITY;
        self.len -= 1;
    }
}

impl Mix for QueueMix {
    fn new(server: TaskId) -> Self {
        Self {
            queue: Queue::new(server),
            rng: Rng::new(0x9e37_79b9 ^ 5),
            held: [Entry::default(); CAPACITY],
            head: 0,
            len: 0,
            pushed: 0,
        }
    }

    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally) {
        let empty = Err(code::EMPTY);
        match self.rng.below(100) {
            0..40 => {
                let data = [self.pushed, self.rng.below(u64::MAX), QUEUE];
                let dropped = self.len == CAPACITY;
                let got = self.queue.push(t, QUEUE, data);
                if tally.check(got, Ok((self.pushed + 1, dropped))) {
                    if dropped {
                        self.drop_oldest();
                    }
                    self.pushed += 1;
                    self.held[(self.head + self.len) % CAPACITY] = Entry {
                        seq: self.pushed,
                        data,
                    };
                    self.len += 1;
                }
            }
            40..70 => {
                let got = self.queue.pop(t, QUEUE);
                if tally.check(got, self.oldest().ok_or(code::EMPTY)) && self.len > 0 {
                    self.drop_oldest();
                }
            }
            70..85 => {
                let got = self.queue.peek(t, QUEUE);
                tally.check(got, self.oldest().ok_or(code::EMPTY).or(empty));
            }
            85..95 => {
                let got = self.queue.len(t, QUEUE);
                tally.check(got, Ok((self.len as u64, self.pushed)));
            }
            _ => {
                let upto = self
                    .oldest()
                    .map_or(self.pushed, |e| e.seq + self.rng.below(3));
                let got = self.queue.ack(t, QUEUE, upto);
                let mut left = self.len;
                let mut head = self.head;
                while left > 0 && self.held[head].seq <= upto {
                    head = (head + 1) % CAPACITY;
                    left -= 1;
                }
                if tally.check(got, Ok(left as u64)) {
                    (self.head, self.len) = (head, left);
                }
            }
        }
    }

    fn forget(&mut self) {
        (self.head, self.len, self.pushed) = (0, 0, 0);
    }

    fn retries(&self) -> u64 {
        self.queue.0.ep.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    /// The workload may run beside it: it uses the queues below this client's.
    #[test]
    fn its_namespace_is_clear_of_the_workload_s() {
        assert!(workload::model::QUEUES as u64 <= QUEUE);
    }

    #[test]
    fn checks_out_against_the_real_server_logic() {
        let mut queue = Box::new(queue::Queues::new_zeroed());
        let (f, _) = load::run_against::<QueueMix>(2000, |m| queue.handle(m));
        assert_eq!(
            (f.ops, f.errors, f.mismatches, f.lost),
            (2000, 0, 0, 0),
            "{f:?}"
        );
    }
}
