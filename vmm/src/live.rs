//! Faults planned while the VM runs ("crash kv with a panic at its next message"): written into
//! the monitor page's `live` area (`abi::monitor::LiveRequest`), which the guest kernel reads
//! at its next timer tick (10 ms) or as it idles. One request at a time; each waits for the
//! kernel's answer, bounded, so a paused or stopped guest makes an error, never a hang.
//!
//! A kind the VMM injects (`flip-branch`, `reg-flip`, ...) is also posted to the injector (its
//! [`LiveInbox`]) first: the kernel's INJECT at the server's next message finds it there, and
//! the injector corrupts, records and reports it as it does a `--fault`.

use crate::faults::injector::{LiveCommand, LiveInbox};
use crate::faults::spec::{FaultSpec, Target};
use crate::memory::GuestMemory;
use abi::fault::{Executor, FaultKind};
use abi::monitor::{LiveRequest, MonitorPage};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vm_memory::{Bytes, GuestAddress};

/// How long a request waits for the kernel's answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// Why a live request did not get its answer.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    /// No server of that name.
    #[error("no server {0:?} (servers: {1})")]
    UnknownServer(String, String),
    /// Not a kind that can be planned while the VM runs.
    #[error("no fault kind {0:?} (kinds: {1})")]
    Kind(String, String),
    /// The kernel did not answer in time (the guest is paused, stopped, or not our kernel).
    #[error("the guest kernel did not answer within {0:?}")]
    NoAnswer(Duration),
    /// Guest memory could not be written or read.
    #[error("the monitor page could not be {0}")]
    Memory(&'static str),
}

/// What the kernel did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Planned for the server's next message.
    Planned,
    /// The pending one was cancelled.
    Cancelled,
    /// Nothing was pending to cancel.
    NothingPending,
    /// The server's plan has no room.
    Full,
    /// The kernel refused it (an unknown task or kind: a mismatch of VMM and kernel).
    Refused(u32),
}

/// The VMM's side of live faults for one VM.
#[derive(Debug)]
pub struct LiveFaults {
    mem: GuestMemory,
    /// The `live` area's guest address.
    area: u64,
    /// Server names by task index (`None`: an app).
    tasks: Vec<Option<String>>,
    /// The last `seq` used; held while a request waits for its answer.
    seq: Mutex<u64>,
    /// The injector's inbox, for the VMM's kinds.
    inbox: LiveInbox,
}

/// The kinds a live fault can be: those a server executes, then those the VMM injects.
pub fn kinds() -> Vec<&'static str> {
    let by = |e: Executor| {
        FaultKind::ALL
            .into_iter()
            .filter(move |k| k.executor() == e)
    };
    by(Executor::Server)
        .chain(by(Executor::Vmm))
        .map(FaultKind::name)
        .collect()
}

impl LiveFaults {
    /// Live faults for the VM whose monitor page is at `page` in `mem`; `tasks` names its
    /// servers by task index (`None` for an app); the VMM's kinds go to the injector through
    /// `inbox`.
    pub fn new(mem: GuestMemory, page: u64, tasks: Vec<Option<String>>, inbox: LiveInbox) -> Self {
        Self {
            mem,
            area: page + std::mem::offset_of!(MonitorPage, live) as u64,
            tasks,
            seq: Mutex::new(0),
            inbox,
        }
    }

    fn post(&self, command: LiveCommand) {
        self.inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(command);
    }

    /// The task index of server `name`.
    fn task(&self, name: &str) -> Result<u32, LiveError> {
        self.tasks
            .iter()
            .position(|t| t.as_deref() == Some(name))
            .map(|i| i as u32)
            .ok_or_else(|| {
                LiveError::UnknownServer(
                    name.to_owned(),
                    self.tasks
                        .iter()
                        .flatten()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
    }

    /// Plans `kind` for server `name`'s next message.
    pub fn plan(&self, name: &str, kind: &str) -> Result<Outcome, LiveError> {
        let task = self.task(name)?;
        let k = FaultKind::from_name(kind)
            .ok_or_else(|| LiveError::Kind(kind.to_owned(), kinds().join(", ")))?;
        // The injector learns of it before the kernel can make it due. (A kind a server
        // executes still goes there too: to drop a VMM kind it replaces.)
        match k.executor() {
            Executor::Vmm => self.post(LiveCommand::Plan(FaultSpec::new(
                Target::Server(name.to_owned()),
                k,
                0,
            ))),
            Executor::Server => self.post(LiveCommand::Cancel(name.to_owned())),
        }
        let outcome = self.request(task, k as u32);
        // Refused by the kernel: the injector forgets it too. (Not when the kernel did not
        // answer: it may still plan it, and then the injector must know it.)
        if matches!(outcome, Ok(Outcome::Full | Outcome::Refused(_))) {
            self.post(LiveCommand::Cancel(name.to_owned()));
        }
        outcome
    }

    /// Cancels server `name`'s pending live fault.
    pub fn cancel(&self, name: &str) -> Result<Outcome, LiveError> {
        let task = self.task(name)?;
        self.post(LiveCommand::Cancel(name.to_owned()));
        self.request(task, LiveRequest::CANCEL)
    }

    fn request(&self, task: u32, kind: u32) -> Result<Outcome, LiveError> {
        let mut seq = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *seq += 1;
        let at = |field: usize| GuestAddress(self.area + field as u64);
        let write = |v: u32, field| {
            self.mem
                .write_obj(v, at(field))
                .map_err(|_| LiveError::Memory("written"))
        };
        write(task, std::mem::offset_of!(LiveRequest, task))?;
        write(kind, std::mem::offset_of!(LiveRequest, kind))?;
        // `seq` last, released: the kernel that sees it sees the task and kind.
        self.mem
            .store(
                *seq,
                at(std::mem::offset_of!(LiveRequest, seq)),
                std::sync::atomic::Ordering::Release,
            )
            .map_err(|_| LiveError::Memory("written"))?;
        let started = Instant::now();
        loop {
            let done: u64 = self
                .mem
                .load(
                    at(std::mem::offset_of!(LiveRequest, done)),
                    std::sync::atomic::Ordering::Acquire,
                )
                .map_err(|_| LiveError::Memory("read"))?;
            if done == *seq {
                let result: u32 = self
                    .mem
                    .read_obj(at(std::mem::offset_of!(LiveRequest, result)))
                    .map_err(|_| LiveError::Memory("read"))?;
                return Ok(match result {
                    LiveRequest::PLANNED => Outcome::Planned,
                    LiveRequest::CANCELLED => Outcome::Cancelled,
                    LiveRequest::NOTHING_PENDING => Outcome::NothingPending,
                    LiveRequest::FULL => Outcome::Full,
                    other => Outcome::Refused(other),
                });
            }
            if started.elapsed() > ANSWER_WITHIN {
                return Err(LiveError::NoAnswer(ANSWER_WITHIN));
            }
            // The kernel answers at its next tick (10 ms): waiting on guest memory, polled.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
