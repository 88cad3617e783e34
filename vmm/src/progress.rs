//! Figures the guest publishes while it runs, read from its monitor page whenever asked (the
//! control API, the metrics, `vmm demo`): each task's messages (the kernel copies them at every
//! timer tick) and, per server, what its clients' requests came to so far (`Sys::Progress`).
//! Guest-written and unchecked: shown and counted, never acted upon.

use crate::memory::GuestMemory;
use crate::report::WorkloadFigures;
use abi::manifest::MAX_SERVERS;
use abi::monitor::{MonitorPage, WorkloadReport};
use serde::Serialize;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::FromBytes;

/// One server's published figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ServerFigures {
    /// Its name.
    pub name: String,
    /// Messages it received.
    pub messages: u64,
    /// Its clients' requests so far, and how they went.
    pub requests: WorkloadFigures,
}

/// Where one VM's servers publish their figures.
#[derive(Debug)]
pub struct Progress {
    mem: GuestMemory,
    /// The monitor page's guest address.
    page: u64,
    /// The servers: name and task index.
    servers: Vec<(String, usize)>,
}

impl Progress {
    /// The figures of servers `servers` (name, task index) of the VM whose monitor page is at
    /// `page` in `mem`.
    pub fn new(mem: GuestMemory, page: u64, servers: Vec<(String, usize)>) -> Self {
        Self { mem, page, servers }
    }

    /// The servers' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|(n, _)| n.as_str())
    }

    /// Each server's figures as last published (zero for a task past the page's slots, or when
    /// the page cannot be read).
    pub fn servers(&self) -> Vec<ServerFigures> {
        self.servers
            .iter()
            .map(|(name, task)| {
                let (messages, requests) = self.read(*task);
                ServerFigures {
                    name: name.clone(),
                    messages,
                    requests: requests.into(),
                }
            })
            .collect()
    }

    /// The sum of every server's figures: the whole load so far.
    pub fn total(&self) -> WorkloadFigures {
        self.servers
            .iter()
            .map(|(_, task)| self.read(*task).1)
            .fold(WorkloadReport::ZERO, WorkloadReport::plus)
            .into()
    }

    fn read(&self, task: usize) -> (u64, WorkloadReport) {
        if task >= MAX_SERVERS {
            return (0, WorkloadReport::ZERO);
        }
        let mem = &self.mem;
        let at = |offset: usize| GuestAddress(self.page + offset as u64);
        let messages = std::mem::offset_of!(MonitorPage, messages) + task * 8;
        let progress = std::mem::offset_of!(MonitorPage, progress)
            + task * std::mem::size_of::<WorkloadReport>();
        let mut raw = [0u8; std::mem::size_of::<WorkloadReport>()];
        let requests = match mem.read_slice(&mut raw, at(progress)) {
            Ok(()) => WorkloadReport::read_from_bytes(&raw).unwrap_or_default(),
            Err(_) => WorkloadReport::ZERO,
        };
        (mem.read_obj(at(messages)).unwrap_or(0), requests)
    }
}
