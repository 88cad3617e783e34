//! Typed system calls. Errors are [`abi::ipc::Error`]; a message is a label plus
//! [`MSG_WORDS`] words, all in registers.

use crate::sys::{self, Regs};
use abi::ipc::{CallError, Error, MSG_WORDS, Message, NOTIFICATION_LABEL, Sys, TaskId, Transport};
use abi::monitor::WorkloadReport;
use core::sync::atomic::{AtomicU64, Ordering};

/// Sends and calls this task made (attempted), for [`sends`].
static SENDS: AtomicU64 = AtomicU64::new(0);

/// How many sends and calls this task has made so far (the server loop compares it around a
/// handler: an after-send fault strikes only a message that made the server talk to a peer).
pub fn sends() -> u64 {
    SENDS.load(Ordering::Relaxed)
}

fn count_send() {
    SENDS.fetch_add(1, Ordering::Relaxed);
}

/// What a receive delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sender, which is also the reply capability ([`TaskId::KERNEL`] for notifications).
    pub sender: TaskId,
    /// The message.
    pub msg: Message,
    /// The fault planned for this message (`abi::fault::FaultKind` number, maybe with
    /// `abi::fault::AFTER_SEND`; 0 for none): the task loop takes it before handling the
    /// message, or after it for an after-send fault.
    pub fault: u64,
}

impl Received {
    /// The notification bits, if this is a notification rather than a message.
    pub fn notification(&self) -> Option<u64> {
        (self.sender == TaskId::KERNEL && self.msg.label == NOTIFICATION_LABEL)
            .then_some(self.msg.words[0])
    }
}

/// A kernel error, with the target's current id for [`Error::PeerRestarted`].
pub type IpcError = CallError;

fn status(r: &Regs) -> Result<(), IpcError> {
    if r.status == 0 {
        return Ok(());
    }
    Err(IpcError {
        error: Error::from_code(r.status).unwrap_or(Error::UnknownCall),
        current: TaskId(r.target),
    })
}

fn received(r: Regs) -> Received {
    Received {
        sender: TaskId(r.target),
        msg: Message::new(r.label, r.words),
        fault: r.fault,
    }
}

/// Sends `msg` to `to` and waits until it is received (no reply).
pub fn send(to: TaskId, msg: &Message) -> Result<(), IpcError> {
    count_send();
    status(&sys::call(Sys::Send, to.0, msg.label, msg.words))
}

/// Waits for a message or a notification.
pub fn recv() -> Received {
    received(sys::call(Sys::Recv, 0, 0, [0; MSG_WORDS]))
}

/// Sends `msg` to `to` and waits for the reply.
pub fn call(to: TaskId, msg: &Message) -> Result<Message, IpcError> {
    call_named(to, msg).map(|(reply, _)| reply)
}

/// [`call`], also returning the replier's current id (the kernel hands it over with the reply).
pub fn call_named(to: TaskId, msg: &Message) -> Result<(Message, TaskId), IpcError> {
    count_send();
    let r = sys::call(Sys::Call, to.0, msg.label, msg.words);
    status(&r).map(|()| (Message::new(r.label, r.words), TaskId(r.target)))
}

/// The kernel as the [`Transport`] of the `*-api` clients. It remembers who answered its last
/// successful call ([`Transport::answered_by`]): a server restarted under a replayed request
/// answers with its new generation, which the client then takes over without a failed call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kernel {
    answered: Option<TaskId>,
}

impl Kernel {
    /// A transport that has made no call yet.
    pub const fn new() -> Self {
        Self { answered: None }
    }
}

impl Transport for Kernel {
    fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError> {
        let (reply, replier) = call_named(to, msg)?;
        self.answered = Some(replier);
        Ok(reply)
    }

    fn answered_by(&self) -> Option<TaskId> {
        self.answered
    }
}

/// Replies to `caller` (the sender of the message being answered).
pub fn reply(caller: TaskId, msg: &Message) -> Result<(), IpcError> {
    status(&sys::call(Sys::Reply, caller.0, msg.label, msg.words))
}

/// Replies to `caller`, then waits for the next message: the server's message boundary. A reply
/// the kernel cannot deliver (the caller crashed meanwhile) is dropped.
pub fn reply_recv(caller: TaskId, msg: &Message) -> Received {
    received(sys::call(Sys::ReplyRecv, caller.0, msg.label, msg.words))
}

/// ORs `bits` into `to`'s notifications.
pub fn notify(to: TaskId, bits: u64) -> Result<(), IpcError> {
    status(&sys::call(Sys::Notify, to.0, 0, [bits, 0, 0, 0, 0, 0]))
}

/// After `ticks` timer ticks (100 Hz), ORs `bits` into this task's notifications.
pub fn timer(ticks: u64, bits: u64) -> Result<(), IpcError> {
    status(&sys::call(Sys::Timer, 0, 0, [ticks, bits, 0, 0, 0, 0]))
}

/// Gives up the rest of this time slice.
pub fn yield_now() {
    sys::call(Sys::Yield, 0, 0, [0; MSG_WORDS]);
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    sys::call(Sys::Ticks, 0, 0, [0; MSG_WORDS]).words[0]
}

/// The kernel's task-table entry `index`: (current id, name bytes, state number).
pub fn task_info(index: u16) -> Result<(TaskId, [u8; 16], u64), IpcError> {
    let r = sys::call(Sys::TaskInfo, u64::from(index), 0, [0; MSG_WORDS]);
    status(&r)?;
    let name = abi::ipc::unpack_name([r.words[0], r.words[1]]);
    Ok((TaskId(r.target), name, r.words[2]))
}

/// Writes `text` to the console as it is.
pub fn console_write(text: &[u8]) {
    let words = [text.as_ptr() as u64, text.len() as u64, 0, 0, 0, 0];
    sys::call(Sys::ConsoleWrite, 0, 0, words);
}

/// Declares this task's two state canaries (each an aligned `u64` in its state arena holding
/// [`abi::ipc::STATE_CANARY`]); the kernel checks them at each of a server's boundaries.
pub fn declare_state(head: *const u64, tail: *const u64) -> Result<(), IpcError> {
    let words = [head as u64, tail as u64, 0, 0, 0, 0];
    status(&sys::call(Sys::DeclareState, 0, 0, words))
}

/// Hands the workload's figures to the VMM.
pub fn report(r: &WorkloadReport) -> Result<(), IpcError> {
    let words = [r.ops, r.errors, r.retries, r.lost, r.mismatches, 0];
    status(&sys::call(Sys::Report, 0, 0, words))
}

/// Adds `delta` (requests, errors, ... since the last call) to the figures the kernel publishes
/// for `server`, for the VMM to show while the VM runs.
pub fn progress(server: TaskId, delta: &WorkloadReport) -> Result<(), IpcError> {
    let words = [
        delta.ops,
        delta.errors,
        delta.retries,
        delta.lost,
        delta.mismatches,
        0,
    ];
    status(&sys::call(Sys::Progress, server.0, 0, words))
}

/// Stops the VM with `status` (only tasks the system map allows).
pub fn vm_exit(status: u64) -> IpcError {
    let r = sys::call(Sys::VmExit, 0, 0, [status, 0, 0, 0, 0, 0]);
    IpcError {
        error: Error::from_code(r.status).unwrap_or(Error::NotPermitted),
        current: TaskId(r.target),
    }
}

/// Tells the kernel this task panicked with `text`; the kernel stops the task.
pub fn panic(text: &[u8]) -> ! {
    let words = [text.as_ptr() as u64, text.len() as u64, 0, 0, 0, 0];
    loop {
        sys::call(Sys::Panic, 0, 0, words);
    }
}
