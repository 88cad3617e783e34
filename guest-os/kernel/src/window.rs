//! A server's recovery window: what it did since its last snapshotted boundary that a rollback
//! to that boundary has to answer for. The call it is handling (whose caller waits), the
//! notification bits it took, the timer it found before it set its own, and the messages it
//! sent. All of it is forgotten together, and only together: when a boundary is snapshotted
//! ([`Window::close`]) or the server restarts from one ([`Window::roll_back`]), so no part can
//! outlive the others. A boundary that is not snapshotted (a read-only request's) only ends the
//! call ([`Window::end_call`]): the rest still goes back to the older snapshot.

use abi::monitor::WINDOW_MAX;

/// No task: the window's caller when no call was received since the boundary.
pub const NO_TASK: u16 = u16::MAX;

/// A message a server sent (`send` or `call`) since its boundary, recorded when it was
/// delivered (see `abi::monitor::SentRecord`, which the kernel reports from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's task index.
    pub to: u16,
    /// The message's label.
    pub label: u64,
    /// The receiver's `boundaries` at the delivery.
    pub peer_boundary: u64,
    /// The receiver's `activity` right after the delivery.
    pub mark: u64,
}

/// An unused entry of the window's sent messages.
pub const NO_SENT: Sent = Sent {
    to: NO_TASK,
    label: 0,
    peer_boundary: 0,
    mark: 0,
};

/// What a rollback to the boundary undoes, taken out of the window ([`Window::roll_back`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undo {
    /// Notification bits it took since the boundary: posted to it again.
    pub notifications: u64,
    /// Its timer before it set one since the boundary (deadline, bits), to put back.
    pub timer: Option<(u64, u64)>,
    /// The call it was handling was itself a replay.
    pub replayed: bool,
}

/// One server's recovery window (see the module doc).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// The caller whose call it received since its boundary ([`NO_TASK`]: none).
    in_flight: u16,
    /// That call is a replay (delivered again after a crash).
    replay: bool,
    /// Notification bits delivered to it since its boundary.
    consumed: u64,
    /// Its timer at the boundary (deadline, bits), once it set one since.
    timer: Option<(u64, u64)>,
    /// Messages it sent since its boundary (counting past [`WINDOW_MAX`]).
    sent_count: u32,
    /// The first [`WINDOW_MAX`] of them, in delivery order.
    sent: [Sent; WINDOW_MAX],
}

impl Window {
    /// An empty window.
    pub const EMPTY: Window = Window {
        in_flight: NO_TASK,
        replay: false,
        consumed: 0,
        timer: None,
        sent_count: 0,
        sent: [NO_SENT; WINDOW_MAX],
    };

    /// It received a call from task `from` (`replay`: delivered again after a crash).
    #[inline(always)]
    pub fn begin_call(&mut self, from: usize, replay: bool) {
        self.in_flight = from as u16;
        self.replay = replay;
    }

    /// The task whose call it received since its boundary, if any (the caller may have gone
    /// since: check that it still waits).
    #[inline(always)]
    pub fn caller(&self) -> Option<usize> {
        (self.in_flight != NO_TASK).then_some(usize::from(self.in_flight))
    }

    /// The call it is handling is a replay.
    #[inline(always)]
    pub fn is_replay(&self) -> bool {
        self.replay
    }

    /// The call is over without a snapshot (a read-only request's boundary, or the server
    /// stopped for good): the rest of the window stays open.
    #[inline(always)]
    pub fn end_call(&mut self) {
        self.in_flight = NO_TASK;
        self.replay = false;
    }

    /// Its boundary was snapshotted: nothing before it can be rolled back any more.
    #[inline(always)]
    pub fn close(&mut self) {
        self.end_call();
        self.consumed = 0;
        self.timer = None;
        self.sent_count = 0;
    }

    /// It took notification `bits`.
    #[inline(always)]
    pub fn consume(&mut self, bits: u64) {
        self.consumed |= bits;
    }

    /// It sets its timer, which was `current()`: the first time since the boundary, that is
    /// the timer a rollback puts back.
    #[inline(always)]
    pub fn timer_set(&mut self, current: impl FnOnce() -> (u64, u64)) {
        if self.timer.is_none() {
            self.timer = Some(current());
        }
    }

    /// It restarts from its boundary (or from its boot image): what to undo, and the window
    /// is empty again.
    #[inline(always)]
    pub fn roll_back(&mut self) -> Undo {
        let undo = Undo {
            notifications: self.consumed,
            timer: self.timer,
            replayed: self.replay,
        };
        self.close();
        undo
    }

    /// Records a message it sent, delivered as `sent` says.
    #[inline(always)]
    pub fn record_sent(&mut self, sent: Sent) {
        if let Some(slot) = self.sent.get_mut(self.sent_count as usize) {
            *slot = sent;
        }
        self.sent_count = self.sent_count.saturating_add(1);
    }

    /// Messages it sent since its boundary, listed or not.
    #[inline(always)]
    pub fn sent_count(&self) -> u32 {
        self.sent_count
    }

    /// The listed messages (at most [`WINDOW_MAX`]).
    pub fn sent(&self) -> &[Sent] {
        &self.sent[..(self.sent_count as usize).min(WINDOW_MAX)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(to: u16) -> Sent {
        Sent {
            to,
            label: 1,
            peer_boundary: 0,
            mark: 0,
        }
    }

    /// A snapshot or a restart forgets the whole window; a read-only boundary only the call.
    #[test]
    fn the_window_is_forgotten_whole_or_only_its_call() {
        let mut w = Window::EMPTY;
        w.begin_call(3, true);
        w.consume(0b101);
        w.timer_set(|| (40, 2));
        w.timer_set(|| panic!("the first timer is kept"));
        w.record_sent(sent(1));
        w.end_call();
        assert_eq!((w.caller(), w.is_replay()), (None, false));
        assert_eq!(w.sent_count(), 1, "a read-only boundary keeps the rest");
        w.begin_call(4, true);
        assert_eq!(
            w.roll_back(),
            Undo {
                notifications: 0b101,
                timer: Some((40, 2)),
                replayed: true
            }
        );
        assert_eq!((w.caller(), w.sent_count()), (None, 0));
        assert_eq!(
            w.roll_back(),
            Undo {
                notifications: 0,
                timer: None,
                replayed: false
            },
            "nothing is undone twice"
        );
        w.consume(1);
        w.record_sent(sent(2));
        w.close();
        assert_eq!((w.roll_back().notifications, w.sent_count()), (0, 0));
    }

    #[test]
    fn sends_past_the_listed_ones_are_counted() {
        let mut w = Window::EMPTY;
        for i in 0..WINDOW_MAX + 3 {
            w.record_sent(sent(i as u16));
        }
        assert_eq!(w.sent_count() as usize, WINDOW_MAX + 3);
        assert_eq!(w.sent().len(), WINDOW_MAX);
        assert_eq!(w.sent()[WINDOW_MAX - 1].to as usize, WINDOW_MAX - 1);
    }
}
