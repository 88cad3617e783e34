//! Synchronous message passing and notifications, on the registers saved in the task table.
//!
//! ```text
//!  client                      kernel                                 server
//!  call(kv, PUT, w) ─int3─►  target ok? server Receiving? ─deliver─►  rdi=client id, rsi=PUT, w
//!    (AwaitingReply)          else: client Sending, queued on kv      (messages += 1: boundary)
//!                                                                     handle ...
//!  rax=0, rsi=code, w  ◄─────  caller AwaitingReply from kv?  ◄─int3─ reply_recv(client, OK, w)
//!                              then receive for the server            (Receiving or next message)
//! ```
//!
//! Nothing is copied but the label and six words, register to register. A stale generation in
//! a target id fails with `PeerRestarted` and the current id in rdi; a crashed target fails
//! with `PeerCrashed`, and so do calls cut off by the target's crash (see [`crate::fault`]).
//!
//! A server's receive (`recv`, or the receive half of `reply_recv`) is its *message boundary*:
//! its state is consistent there. The kernel first checks the server's state canaries (an
//! overwritten one stops it as corrupted, before its reply is released), then closes its
//! recovery window (nothing in flight, no notification consumed, timer kept) and returns
//! [`Effect::Boundary`], on which the VMM snapshots the server's state arena. Every delivery
//! also hands the task the fault planned for that message, if any (rcx).
//!
//! Recovery windows: every message a server sends is recorded when it is delivered (receiver,
//! label, the receiver's boundary count then, its activity count just after), until the
//! sender's next boundary; a crash reports them (`Kernel::fill_window`). A reply names the
//! replier: the caller gets its current id in rdi.

use crate::kernel::{Effect, Kernel, Platform};
use crate::task::State;
use crate::window::Sent;
use abi::fault::FaultCause;
use abi::ipc::{Error, MSG_WORDS, NOTIFICATION_LABEL, STATE_CANARY, TaskId};

impl<const N: usize, M: Platform> Kernel<N, M> {
    /// Checks a target id from task `me`: the target's index, or the error (with the id to
    /// report in rdi).
    #[inline(always)]
    pub fn target(&self, me: usize, raw: u64) -> Result<usize, (Error, u64)> {
        let id = TaskId(raw);
        let t = usize::from(id.index());
        if t >= self.count {
            return Err((Error::NoSuchTask, raw));
        }
        if t == me {
            return Err((Error::SelfSend, raw));
        }
        let current = self.id(t);
        if current != id {
            let task = &self.tasks[t];
            // Made before the target's last fresh restart: tell the client its state is gone.
            // Generations wrap, so "before" is a signed distance.
            let older = (task.lost_generation.wrapping_sub(id.generation()) as i32) > 0;
            let error = if task.lost_state && older {
                Error::StateLost
            } else {
                Error::PeerRestarted
            };
            return Err((error, current.0));
        }
        if self.tasks[t].state == State::Crashed {
            return Err((Error::PeerCrashed, raw));
        }
        Ok(t)
    }

    #[inline(always)]
    pub(crate) fn fail(&mut self, me: usize, (error, rdi): (Error, u64)) {
        let regs = &mut self.tasks[me].regs;
        regs.rax = error as u64;
        regs.rdi = rdi;
    }

    #[inline(always)]
    fn begin_message(&mut self, task: usize) {
        let t = &mut self.tasks[task];
        t.messages += 1;
        t.activity = t.activity.wrapping_add(1);
        t.budget_used = 0;
        t.in_message = true;
        t.held_fault = 0;
        // The plans are sorted by message: nothing is due before the first one. This is the
        // path of every message (in emulated ring 0 under KVM-PVM, where each instruction, and
        // each call, counts).
        if t.messages < t.next_due() {
            t.regs.rcx = 0;
        } else {
            self.fault_due(task);
        }
        self.delivered += 1;
        if self.delivered >= self.kernel_fault.message {
            self.kernel_fault_due();
        }
    }

    #[inline(always)]
    pub(crate) fn deliver_notification(&mut self, task: usize) {
        let t = &mut self.tasks[task];
        let bits = t.notifications;
        t.notifications = 0;
        t.window.consume(bits);
        t.state = State::Runnable;
        t.regs
            .deliver(TaskId::KERNEL, NOTIFICATION_LABEL, [bits, 0, 0, 0, 0, 0]);
        self.begin_message(task);
    }

    /// Server `me` reaches its message boundary (about to receive; `replying` in `reply_recv`):
    /// checks its state canaries (`Err`: it was stopped as corrupted, its reply not released),
    /// then, unless the request it answers is one whose boundary needs no snapshot (declared
    /// read-only in the image, and trusted by the VMM: [`Platform::read_only`]), closes its
    /// recovery window and asks for a snapshot. After a read-only request the window stays open: the last
    /// snapshot still is the state the server's clients depend on (a crash rolls back to it,
    /// losing nothing they saw), so the exit to the VMM is saved. Other tasks have no boundaries.
    #[inline(always)]
    fn boundary(&mut self, me: usize, replying: bool) -> Result<Effect, Effect> {
        let t = &self.tasks[me];
        if !t.server {
            return Ok(Effect::None);
        }
        for addr in t.canaries {
            if addr != 0 && self.platform.read_u64(addr) != STATE_CANARY {
                self.crash(me, FaultCause::Corruption, abi::fault::NO_VECTOR, 0, addr);
                return Err(Effect::Fault(None));
            }
        }
        // The request this boundary closes: the caller still holds it in its registers.
        let label = if replying {
            self.in_flight_caller(me).map(|c| self.tasks[c].regs.rsi)
        } else {
            None
        };
        let read_only = label.is_some_and(|l| l < 64 && self.platform.read_only(me) >> l & 1 != 0);
        let t = &mut self.tasks[me];
        t.boundaries += 1;
        if read_only {
            t.window.end_call();
            return Ok(Effect::None);
        }
        t.snapshots += 1;
        t.window.close();
        Ok(Effect::Boundary {
            task: me,
            label: label.map_or(0, |l| u16::try_from(l).unwrap_or(u16::MAX)),
        })
    }

    /// `send` (`call` false) or `call` from `me`, message in its registers.
    #[inline(always)]
    pub fn send(&mut self, me: usize, call: bool) {
        let sender = &mut self.tasks[me];
        sender.activity = sender.activity.wrapping_add(1);
        let raw = sender.regs.rdi;
        let t = match self.target(me, raw) {
            Ok(t) => t,
            Err(e) => return self.fail(me, e),
        };
        if self.tasks[t].state != State::Receiving {
            self.tasks[t].senders |= 1 << me;
            return self.block(me, State::Sending { to: t as u16, call });
        }
        let (label, words) = (self.tasks[me].regs.rsi, self.tasks[me].regs.words());
        self.deliver(t, me, label, words, call);
        if call {
            self.block(me, State::AwaitingReply { from: t as u16 });
        } else {
            self.tasks[me].regs.rax = 0;
        }
    }

    /// Delivers `from`'s message to `to`, which was receiving; a server's send goes into its
    /// recovery window.
    #[inline(always)]
    fn deliver(&mut self, to: usize, from: usize, label: u64, words: [u64; MSG_WORDS], call: bool) {
        let sender = self.id(from);
        let replay = self.tasks[from].replaying;
        let t = &mut self.tasks[to];
        t.regs.deliver(sender, label, words);
        t.state = State::Runnable;
        if call {
            t.window.begin_call(from, replay);
        }
        // Its state now is its snapshot of this number: from before this message.
        let peer_boundary = t.snapshots;
        self.queues.insert(to);
        self.begin_message(to);
        if self.tasks[from].server {
            let sent = Sent {
                to: to as u16,
                label,
                peer_boundary,
                mark: self.tasks[to].activity,
            };
            self.tasks[from].window.record_sent(sent);
        }
    }

    /// The `recv` system call of `me`: its boundary, then the receive.
    #[inline(always)]
    pub fn recv_call(&mut self, me: usize) -> Effect {
        match self.boundary(me, false) {
            Ok(effect) => {
                self.recv(me);
                effect
            }
            Err(fault) => fault,
        }
    }

    /// `recv` for `me`: a pending notification first, then a waiting sender, else block.
    #[inline(always)]
    pub fn recv(&mut self, me: usize) {
        self.tasks[me].in_message = false;
        if self.tasks[me].notifications != 0 {
            return self.deliver_notification(me);
        }
        let (s, call) = loop {
            let senders = self.tasks[me].senders;
            if senders == 0 {
                return self.block(me, State::Receiving);
            }
            let s = senders.trailing_zeros() as usize;
            self.tasks[me].senders &= !(1 << s);
            if let State::Sending { call, .. } = self.tasks[s].state {
                break (s, call);
            }
            // A sender bit without a sending task would be a kernel bug; drop the bit.
        };
        let (label, words) = (self.tasks[s].regs.rsi, self.tasks[s].regs.words());
        self.deliver(me, s, label, words, call);
        if call {
            self.tasks[s].state = State::AwaitingReply { from: me as u16 };
        } else {
            self.wake(s, 0);
        }
    }

    /// `reply` from `me` to the caller named in its rdi; sets `me`'s status. The caller gets
    /// the reply's label and words, and `me`'s current id in rdi.
    #[inline(always)]
    pub fn reply(&mut self, me: usize) {
        let answering = self.tasks[me].window.caller();
        self.reply_to(me, answering);
    }

    /// The reply of `me` to the caller named in its rdi, `answering` being the caller whose
    /// message it handles. A reply to anyone else (a deferred reply) counts as activity: the
    /// replier then answered a task outside any recovery window that named it quiet.
    #[inline(always)]
    fn reply_to(&mut self, me: usize, answering: Option<usize>) {
        let regs = self.tasks[me].regs;
        let id = TaskId(regs.rdi);
        let c = usize::from(id.index());
        let waiting = c < self.count
            && self.id(c) == id
            && self.tasks[c].state == State::AwaitingReply { from: me as u16 };
        if !waiting {
            self.tasks[me].regs.rax = Error::NoReplyPending as u64;
            return;
        }
        if answering != Some(c) {
            let t = &mut self.tasks[me];
            t.activity = t.activity.wrapping_add(1);
        }
        let replier = self.id(me).0;
        let caller = &mut self.tasks[c];
        caller.regs.rdi = replier;
        caller.regs.rsi = regs.rsi;
        caller.regs.set_words(regs.words());
        self.wake(c, 0);
        self.tasks[me].regs.rax = 0;
    }

    /// `reply_recv` from `me`: its boundary (a corrupted server's reply is never released),
    /// the reply (dropped if undeliverable), then the receive.
    #[inline(always)]
    pub fn reply_recv(&mut self, me: usize) -> Effect {
        // The boundary forgets the caller in flight; the reply still answers it.
        let answering = self.tasks[me].window.caller();
        match self.boundary(me, true) {
            Ok(effect) => {
                self.reply_to(me, answering);
                self.recv(me);
                effect
            }
            Err(fault) => fault,
        }
    }

    /// `notify` from `me`: target in rdi, bits in word 0.
    #[inline(always)]
    pub fn notify(&mut self, me: usize) {
        let task = &mut self.tasks[me];
        task.activity = task.activity.wrapping_add(1);
        let regs = task.regs;
        match self.target(me, regs.rdi) {
            Ok(t) => {
                self.post(t, regs.rdx);
                self.tasks[me].regs.rax = 0;
            }
            Err(e) => self.fail(me, e),
        }
    }
}
