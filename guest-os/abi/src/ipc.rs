//! The system-call interface between ring-3 tasks and the guest kernel: trap, registers, call
//! numbers, task ids with generations, and error codes.
//!
//! A task enters the kernel with `int3` (vector 3 through a DPL-3 IDT gate; see docs/kernel.md
//! for why this trap and what it costs). Messages travel in registers only, never through memory:
//!
//! ```text
//!  register  in                                   out
//!  rax       call number (Sys)                    status: 0 or an Error code
//!  rdi       target TaskId / reply capability     sender TaskId (receive), the replier's
//!                                                 current TaskId (a call's reply), the
//!                                                 target's current id (PeerRestarted, StateLost)
//!  rsi       label (opcode or reply code)         label
//!  rdx r8 r9 r10 r12 r13   message words 0..6     message words 0..6
//!  rcx       -                                    on a delivered message: a fault to inject
//!                                                 (crate::fault::FaultKind number, maybe with
//!                                                 crate::fault::AFTER_SEND; 0 = none)
//! ```
//!
//! Every other register (rbx, rbp, r11, r14, r15, rsp, flags) and the SSE state are preserved;
//! rcx too, except on the return of a call that delivers a message (receive, reply-and-receive).

/// Words in a message besides its label.
pub const MSG_WORDS: usize = 6;

/// Label of a notification delivered by receive (sender [`TaskId::KERNEL`], word 0 = the bits).
pub const NOTIFICATION_LABEL: u64 = u64::MAX;

/// System-call numbers (in `rax`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Sys {
    /// Does nothing (measures the trap).
    Null = 0,
    /// Send a message to `rdi` and wait until it is received; no reply.
    Send = 1,
    /// Wait for a message or notification (a message boundary).
    Recv = 2,
    /// Send to `rdi` and wait for its reply, atomically; the reply comes with the replier's
    /// current id in `rdi`.
    Call = 3,
    /// Reply to the caller named by the reply capability `rdi`; never blocks.
    Reply = 4,
    /// Reply, then receive, atomically: the server's message boundary.
    ReplyRecv = 5,
    /// OR the bits in word 0 into task `rdi`'s notifications.
    Notify = 6,
    /// One-shot timer: after word 0 ticks, OR word 1 into the caller's notifications.
    Timer = 7,
    /// Give up the rest of the time slice.
    Yield = 8,
    /// Task table entry `rdi` (index): out word 0-1 name, word 2 state, rdi its current id.
    TaskInfo = 9,
    /// Write word 1 bytes at user address word 0 to the console.
    ConsoleWrite = 10,
    /// The task panicked: word 0-1 = message address and length (at most 128 bytes are kept).
    Panic = 11,
    /// Workload figures (words 0..5: ops, errors, retries, lost, mismatches) to the VMM.
    Report = 12,
    /// Stop the VM with status word 0 (only tasks allowed to).
    VmExit = 13,
    /// Timer ticks since boot, in word 0.
    Ticks = 14,
    /// Declares the task's state canaries: words 0 and 1 are the addresses of two `u64`s in its
    /// state arena holding [`STATE_CANARY`]. A server's canaries are checked at each of its
    /// boundaries, before its reply is released; an overwritten one stops it (corruption).
    DeclareState = 15,
    /// A client's progress with server `rdi` (its id): words 0..5 (requests, errors, retries,
    /// lost, mismatches) are added to what the kernel publishes for that server in the monitor
    /// page (`MonitorPage::progress`), so the VMM can show figures while the clients run.
    Progress = 16,
}

/// The value a task's state canaries hold ([`Sys::DeclareState`]).
pub const STATE_CANARY: u64 = 0x57a7_e0ca_4a21_e5c0;

impl Sys {
    /// The call with this number, if any.
    pub const fn from_number(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::Null,
            1 => Self::Send,
            2 => Self::Recv,
            3 => Self::Call,
            4 => Self::Reply,
            5 => Self::ReplyRecv,
            6 => Self::Notify,
            7 => Self::Timer,
            8 => Self::Yield,
            9 => Self::TaskInfo,
            10 => Self::ConsoleWrite,
            11 => Self::Panic,
            12 => Self::Report,
            13 => Self::VmExit,
            14 => Self::Ticks,
            15 => Self::DeclareState,
            16 => Self::Progress,
            _ => return None,
        })
    }
}

/// Kernel status codes (in `rax` on return).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Error {
    /// The target was restarted since this id was made: `rdi` holds its current id.
    PeerRestarted = 1,
    /// The target crashed (and has not been restarted): the message was not delivered, or the
    /// call was cut off before its reply.
    PeerCrashed = 2,
    /// No task has this index.
    NoSuchTask = 3,
    /// An argument is out of range (a user pointer outside the caller's memory, ...).
    BadArgument = 4,
    /// The caller may not do this.
    NotPermitted = 5,
    /// Reply to a task that is not waiting for this task's reply.
    NoReplyPending = 6,
    /// A task cannot send to itself.
    SelfSend = 7,
    /// Unknown call number.
    UnknownCall = 8,
    /// No timer slot is free.
    NoTimer = 9,
    /// The target was restarted from its initial image: its state (and the effect of this
    /// request) is lost; `rdi` holds its current id. Also the answer to a call with an id made
    /// before that restart, so that every client of the server learns of the loss once.
    StateLost = 10,
}

impl Error {
    /// The error with this code, if any.
    pub const fn from_code(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::PeerRestarted,
            2 => Self::PeerCrashed,
            3 => Self::NoSuchTask,
            4 => Self::BadArgument,
            5 => Self::NotPermitted,
            6 => Self::NoReplyPending,
            7 => Self::SelfSend,
            8 => Self::UnknownCall,
            9 => Self::NoTimer,
            10 => Self::StateLost,
            _ => return None,
        })
    }
}

/// A task's endpoint id: its index in the task table plus the generation the kernel gave it.
/// A restart bumps the generation, so a message to a stale id fails with
/// [`Error::PeerRestarted`] instead of reaching a task that has forgotten the conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskId(pub u64);

impl TaskId {
    /// The sender of notifications.
    pub const KERNEL: TaskId = TaskId::new(0xffff, 0);

    /// The id of task `index` at `generation` (16 and 32 bits kept).
    pub const fn new(index: u16, generation: u32) -> Self {
        TaskId(index as u64 | ((generation as u64) << 16))
    }

    /// The task-table index.
    pub const fn index(self) -> u16 {
        self.0 as u16
    }

    /// The generation.
    pub const fn generation(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// A task's state as [`Sys::TaskInfo`] reports it (word 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum TaskState {
    /// Running or ready to run.
    Runnable = 0,
    /// Blocked in send, receive or call.
    Blocked = 1,
    /// Stopped by a fault; waits for recovery.
    Crashed = 2,
    /// Finished.
    Exited = 3,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_pack_index_and_generation() {
        let id = TaskId::new(5, 0xdead_beef);
        assert_eq!((id.index(), id.generation()), (5, 0xdead_beef));
        assert_eq!(TaskId::KERNEL.index(), 0xffff);
    }

    #[test]
    fn numbers_round_trip() {
        for n in 0..=16 {
            assert_eq!(Sys::from_number(n).map(|s| s as u64), Some(n));
        }
        assert_eq!(Sys::from_number(17), None);
        for n in 1..=10 {
            assert_eq!(Error::from_code(n).map(|e| e as u64), Some(n));
        }
        assert_eq!(Error::from_code(0), None);
    }
}

/// A message: label (opcode or reply code) and words.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Opcode (requests) or reply code (replies; 0 is success).
    pub label: u64,
    /// The payload.
    pub words: [u64; MSG_WORDS],
}

impl Message {
    /// A message with this label and words.
    pub const fn new(label: u64, words: [u64; MSG_WORDS]) -> Self {
        Self { label, words }
    }
}

/// Reply label of success; servers use other labels for their own error codes.
pub const REPLY_OK: u64 = 0;

/// A kernel error on a call, with the target's current id for [`Error::PeerRestarted`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallError {
    /// What went wrong.
    pub error: Error,
    /// For `PeerRestarted`: the id to use now.
    pub current: TaskId,
}

/// Something that can make a call: the kernel for tasks (userlib), a server's handler in host
/// tests. The `*-api` client crates are written against it.
pub trait Transport {
    /// Sends `msg` to `to` and returns the reply.
    fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError>;

    /// The current id of the task that answered the last successful [`Transport::call`], when
    /// the transport knows it (the kernel hands it over in `rdi` with every reply). A server
    /// restarted under a replayed request answers it with its new generation: the client
    /// learns the new id without a failed call.
    fn answered_by(&self) -> Option<TaskId> {
        None
    }
}

/// Why a client request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server answered with its error code.
    Server(u64),
    /// The server was restarted from its initial image ([`Error::StateLost`]): its state, and
    /// the effect of this request, are lost. Not retried: the caller must know.
    StateLost,
    /// The server crashed (and was not restarted): no reply.
    Crashed,
    /// Another kernel error.
    Kernel(Error),
}

/// A server endpoint as a client holds it: the id it last knew, and how many requests it
/// retried after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The id in use.
    pub id: TaskId,
    /// Requests retried after `PeerRestarted`.
    pub retries: u64,
    /// Requests answered `StateLost` (the server restarted from its initial image).
    pub lost: u64,
}

impl Endpoint {
    /// An endpoint for `id`.
    pub const fn new(id: TaskId) -> Self {
        Self {
            id,
            retries: 0,
            lost: 0,
        }
    }

    /// Calls the server. On `PeerRestarted` the endpoint takes the new id and sends the request
    /// again (once per restart): the kernel answers `PeerRestarted` only for a request that was
    /// not applied (the id was stale, or the server was rolled back to its boundary before
    /// it), so any request may be resent. On `StateLost` it takes the new id and fails with
    /// [`ClientError::StateLost`]. A reply label other than [`REPLY_OK`] is
    /// [`ClientError::Server`].
    pub fn call(&mut self, t: &mut impl Transport, msg: &Message) -> Result<Message, ClientError> {
        loop {
            match t.call(self.id, msg) {
                Ok(reply) => {
                    if let Some(id) = t.answered_by().filter(|id| id.index() == self.id.index()) {
                        self.id = id;
                    }
                    return if reply.label == REPLY_OK {
                        Ok(reply)
                    } else {
                        Err(ClientError::Server(reply.label))
                    };
                }
                Err(CallError {
                    error: Error::PeerRestarted,
                    current,
                }) => {
                    if current == self.id {
                        return Err(ClientError::Kernel(Error::PeerRestarted));
                    }
                    self.id = current;
                    self.retries += 1;
                }
                Err(CallError {
                    error: Error::StateLost,
                    current,
                }) => {
                    self.id = current;
                    self.lost += 1;
                    return Err(ClientError::StateLost);
                }
                Err(CallError {
                    error: Error::PeerCrashed,
                    ..
                }) => return Err(ClientError::Crashed),
                Err(e) => return Err(ClientError::Kernel(e.error)),
            }
        }
    }
}

/// A client of one server: its endpoint. The typed clients (one per server, in its `*-api`
/// crate) wrap one; their methods are [`Client::request`] with the request's arguments in and
/// its reply words out.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    /// The endpoint (id and retry count).
    pub ep: Endpoint,
}

impl Client {
    /// A client of the server `id`.
    pub const fn new(id: TaskId) -> Self {
        Self {
            ep: Endpoint::new(id),
        }
    }

    /// Sends request `label` with `words`; see [`Endpoint::call`].
    pub fn call(
        &mut self,
        t: &mut impl Transport,
        label: u64,
        words: [u64; MSG_WORDS],
    ) -> Result<Message, ClientError> {
        self.ep.call(t, &Message::new(label, words))
    }

    /// Sends request `label` with its first `N` words `args` (the rest zero) and returns the
    /// reply's words: the shape of every typed client's method.
    pub fn request<const N: usize>(
        &mut self,
        t: &mut impl Transport,
        label: u64,
        args: [u64; N],
    ) -> Result<[u64; MSG_WORDS], ClientError> {
        const { assert!(N <= MSG_WORDS) };
        let mut words = [0u64; MSG_WORDS];
        words[..N].copy_from_slice(&args);
        Ok(self.call(t, label, words)?.words)
    }
}

/// A transport that hands every call to a function: a server's handler in host tests.
#[derive(Clone, Copy, Debug)]
pub struct Loopback<F>(pub F);

impl<F: FnMut(TaskId, &Message) -> Message> Transport for Loopback<F> {
    fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError> {
        Ok((self.0)(to, msg))
    }
}

/// Packs up to 16 bytes of `name` into two words (little-endian, NUL-padded).
pub fn pack_name(name: &[u8]) -> [u64; 2] {
    let mut bytes = [0u8; 16];
    for (slot, b) in bytes.iter_mut().zip(name) {
        *slot = *b;
    }
    let mut words = [0u64; 2];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    words
}

/// The bytes of a name packed by [`pack_name`] (NUL-padded).
pub fn unpack_name(words: [u64; 2]) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&words[0].to_le_bytes());
    bytes[8..].copy_from_slice(&words[1].to_le_bytes());
    bytes
}

/// Packs up to `8 * N` bytes into words (little-endian, zero-padded).
pub fn pack_bytes<const N: usize>(data: &[u8]) -> [u64; N] {
    let mut words = [0u64; N];
    for (i, b) in data.iter().take(8 * N).enumerate() {
        words[i / 8] |= u64::from(*b) << (8 * (i % 8));
    }
    words
}

/// Unpacks words into bytes (`out` gets as many as fit).
pub fn unpack_bytes(words: &[u64], out: &mut [u8]) {
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = words.get(i / 8).map_or(0, |w| (w >> (8 * (i % 8))) as u8);
    }
}

#[cfg(test)]
mod client_tests {
    use super::*;

    /// Restarts the server once (generation 0 -> 1) with `error`, then answers with the label
    /// it got.
    struct Restarting(Option<Error>);

    impl Transport for Restarting {
        fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError> {
            if to.generation() == 0
                && let Some(error) = self.0.take()
            {
                return Err(CallError {
                    error,
                    current: TaskId::new(to.index(), 1),
                });
            }
            Ok(Message::new(msg.label, msg.words))
        }
    }

    #[test]
    fn requests_are_retried_after_a_rollback_but_not_after_state_loss() {
        let mut ep = Endpoint::new(TaskId::new(2, 0));
        let mut t = Restarting(Some(Error::PeerRestarted));
        let reply = ep.call(&mut t, &Message::new(0, [1; 6]));
        assert_eq!(reply, Ok(Message::new(0, [1; 6])));
        assert_eq!((ep.id.generation(), ep.retries), (1, 1));
        let mut ep = Endpoint::new(TaskId::new(2, 0));
        let reply = ep.call(
            &mut Restarting(Some(Error::StateLost)),
            &Message::new(0, [1; 6]),
        );
        assert_eq!(reply, Err(ClientError::StateLost));
        assert_eq!((ep.id.generation(), ep.retries, ep.lost), (1, 0, 1));
        assert_eq!(
            ep.call(&mut Restarting(None), &Message::new(5, [0; 6])),
            Err(ClientError::Server(5))
        );
        // A restart that names the id already in use is a kernel error, not a loop.
        let mut ep = Endpoint::new(TaskId::new(2, 1));
        struct Stuck;
        impl Transport for Stuck {
            fn call(&mut self, to: TaskId, _: &Message) -> Result<Message, CallError> {
                Err(CallError {
                    error: Error::PeerRestarted,
                    current: to,
                })
            }
        }
        assert_eq!(
            ep.call(&mut Stuck, &Message::new(5, [0; 6])),
            Err(ClientError::Kernel(Error::PeerRestarted))
        );
    }

    /// Answers every call as the server's generation 3 (a restart the client did not see).
    struct Replayed;

    impl Transport for Replayed {
        fn call(&mut self, _: TaskId, msg: &Message) -> Result<Message, CallError> {
            Ok(Message::new(REPLY_OK, msg.words))
        }
        fn answered_by(&self) -> Option<TaskId> {
            Some(TaskId::new(2, 3))
        }
    }

    #[test]
    fn a_reply_from_a_new_generation_updates_the_id_without_a_retry() {
        let mut ep = Endpoint::new(TaskId::new(2, 0));
        assert!(ep.call(&mut Replayed, &Message::new(1, [0; 6])).is_ok());
        assert_eq!((ep.id, ep.retries), (TaskId::new(2, 3), 0));
        // Another task's id is never taken over.
        let mut other = Endpoint::new(TaskId::new(4, 0));
        assert!(other.call(&mut Replayed, &Message::new(1, [0; 6])).is_ok());
        assert_eq!(other.id, TaskId::new(4, 0));
    }

    #[test]
    fn names_and_bytes_round_trip() {
        let w = pack_name(b"workload");
        assert_eq!(&unpack_name(w)[..9], b"workload\0");
        let words: [u64; 3] = pack_bytes(b"hello, world");
        let mut out = [0u8; 12];
        unpack_bytes(&words, &mut out);
        assert_eq!(&out, b"hello, world");
    }
}
