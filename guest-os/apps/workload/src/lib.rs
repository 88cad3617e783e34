//! The workload: drives every server with a deterministic, seeded mix of requests (most of
//! them state-changing), keeps its own model of what each server should hold, checks every
//! reply and every read against it, and ends with a full verification sweep.
//!
//! ```text
//!  share         server  requests (in the mix)
//!  35 % of 9/10  kv      put 50, get 25, delete 15, scan 10
//!  30 % of 9/10  fs      create 15, write 35, read 30, unlink 10, open 5, list 5
//!  30 % of 9/10  bank    open 10, deposit 30, withdraw 25, transfer 25, balance 10
//!   5 % of 9/10  names   lookup of a random task
//!  every 10th    queue   push 35, pop 25, peek 15, len 15, ack 10 (queues 0..4)
//! ```
//!
//! (The queue's requests come from a generator of their own, every tenth request, so that the
//! other servers see the same sequence of requests whatever the queue's share.)
//!
//! Figures ([`abi::monitor::WorkloadReport`]): `ops` counts the requests of the mix (the final
//! sweep is not counted); `errors` replies that are kernel errors (a crashed server, ...);
//! `retries` requests resent after "peer restarted" (the server rolled back: not applied);
//! `lost` requests whose effect a server declared lost (it restarted from its initial image
//! under them); `mismatches` replies or reads that
//! disagree with the model. An expected refusal (e.g. `NOT_FOUND` for a key the model does not
//! hold) is a correct reply, not an error.
//!
//! A server that lost its state (its endpoint counted a `StateLost` answer: it restarted from
//! its initial image) is from then on expected to hold nothing of what it held: the model of
//! that server is reset, and the log says so ([`Log::state_lost`]).
//!
//! The sweep also checks the bank's audit: kv's counter of every account the workload uses
//! equals the account's balance (0 for one never opened); and its journal: the journal queue of
//! the workload's accounts took exactly one entry per balance change. Unless a server holding
//! one side lost its state during the run: then the two cannot agree and the check is skipped
//! ([`Log::audit_skipped`]).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod model;
pub mod rng;
mod sweep;

use abi::ipc::{ClientError, TaskId, Transport};
use abi::monitor::WorkloadReport;
use bank_api::Bank;
use fs_api::Fs;
use kv_api::Kv;
use model::Model;
use names_api::Names;
use queue_api::Queue;
use rng::Rng;

/// What the run tells its host: mismatches, servers that lost their state, a skipped audit
/// check (the task prints them; host tests collect them) and the midpoint of the mix.
pub trait Log {
    /// One line of diagnosis.
    fn mismatch(&mut self, what: &[u8], detail: u64);

    /// `server` lost its state (it answered `StateLost`): the model of it was reset.
    fn state_lost(&mut self, server: &str);

    /// The sweep did not check the bank's audit in kv because `server` lost its state.
    fn audit_skipped(&mut self, server: &str);

    /// Half of the requests are done (the task pokes the crasher here, so that a deliberate
    /// fault always strikes while the workload is running).
    fn midpoint(&mut self) {}

    /// Figures of `server`'s requests since the last call for it (every [`PUBLISH_EVERY`]
    /// requests, and after the sweep): the task hands them to the kernel, which publishes them
    /// for the VMM while the run goes on.
    fn progress(&mut self, _server: TaskId, _delta: WorkloadReport) {}
}

/// Requests between two [`Log::progress`] rounds.
pub const PUBLISH_EVERY: u64 = 64;

/// The servers the workload talks to, in the order of its per-server figures.
pub const SERVERS: [&str; 5] = [
    names_api::SERVER,
    kv_api::SERVER,
    fs_api::SERVER,
    bank_api::SERVER,
    queue_api::SERVER,
];

/// Indexes into [`SERVERS`].
mod at {
    pub const NAMES: usize = 0;
    pub const KV: usize = 1;
    pub const FS: usize = 2;
    pub const BANK: usize = 3;
    pub const QUEUE: usize = 4;
}

/// The clients of every server.
#[derive(Clone, Copy, Debug)]
pub struct Clients {
    /// Name server.
    pub names: Names,
    /// Key-value store.
    pub kv: Kv,
    /// File server.
    pub fs: Fs,
    /// Bank.
    pub bank: Bank,
    /// Queue server.
    pub queue: Queue,
}

/// A run in progress: transport, clients, model, figures.
#[allow(missing_debug_implementations)] // holds the transport and the log, which need not be Debug
pub struct Run<'a, T: Transport, L: Log> {
    t: &'a mut T,
    log: &'a mut L,
    c: Clients,
    m: &'a mut Model,
    rng: Rng,
    /// The queue requests' own generator.
    queue_rng: Rng,
    f: WorkloadReport,
    /// The server of the request in hand (an index into [`SERVERS`]).
    cur: usize,
    /// Per server: the figures of its requests (retries are its endpoint's).
    per: [WorkloadReport; 5],
    /// Per server: what [`Log::progress`] was given so far.
    published: [WorkloadReport; 5],
}

/// Looks every server up at the name server.
pub fn connect(t: &mut impl Transport) -> Result<Clients, ClientError> {
    let mut names = Names::well_known();
    let kv = Kv::new(names.lookup(t, kv_api::SERVER)?);
    let fs = Fs::new(names.lookup(t, fs_api::SERVER)?);
    let bank = Bank::new(names.lookup(t, bank_api::SERVER)?);
    let queue = Queue::new(names.lookup(t, queue_api::SERVER)?);
    Ok(Clients {
        names,
        kv,
        fs,
        bank,
        queue,
    })
}

/// Runs `ops` requests of the mix from `seed`, then the sweep; returns the figures.
pub fn run(
    t: &mut impl Transport,
    log: &mut impl Log,
    clients: Clients,
    model: &mut Model,
    ops: u64,
    seed: u64,
) -> WorkloadReport {
    let mut run = Run {
        t,
        log,
        c: clients,
        m: model,
        rng: Rng::new(seed),
        queue_rng: Rng::new(seed ^ 0x0051_5545_5545),
        f: WorkloadReport::default(),
        cur: at::NAMES,
        per: [WorkloadReport::ZERO; 5],
        published: [WorkloadReport::ZERO; 5],
    };
    for i in 0..ops {
        if i == ops / 2 {
            run.log.midpoint();
        }
        let before = run.losses();
        if i % 10 == 9 {
            run.cur = at::QUEUE;
            run.queue();
        } else {
            run.one();
        }
        run.forget_lost(before);
        run.f.ops += 1;
        run.per[run.cur].ops += 1;
        if (i + 1) % PUBLISH_EVERY == 0 {
            run.publish();
        }
    }
    run.sweep();
    run.publish();
    run.f.retries = run.c.names.0.ep.retries
        + run.c.kv.0.ep.retries
        + run.c.fs.0.ep.retries
        + run.c.bank.0.ep.retries
        + run.c.queue.0.ep.retries;
    run.f
}

/// The servers whose state the workload models, in [`Run::losses`] order.
const MODELLED: [&str; 4] = [
    kv_api::SERVER,
    fs_api::SERVER,
    bank_api::SERVER,
    queue_api::SERVER,
];

impl<T: Transport, L: Log> Run<'_, T, L> {
    /// How many requests each modelled server answered `StateLost` so far (its endpoint's
    /// count), in [`MODELLED`] order.
    fn losses(&self) -> [u64; 4] {
        [
            self.c.kv.0.ep.lost,
            self.c.fs.0.ep.lost,
            self.c.bank.0.ep.lost,
            self.c.queue.0.ep.lost,
        ]
    }

    /// Resets the model of every server that lost its state since `before` ([`Run::losses`]).
    fn forget_lost(&mut self, before: [u64; 4]) {
        for (i, (now, then)) in self.losses().into_iter().zip(before).enumerate() {
            if now == then {
                continue;
            }
            match i {
                0 => self.m.forget_kv(),
                1 => self.m.forget_files(),
                2 => self.m.forget_accounts(),
                _ => self.m.forget_queues(),
            }
            self.log.state_lost(MODELLED[i]);
        }
    }

    fn one(&mut self) {
        let (server, request): (usize, fn(&mut Self)) = match self.rng.below(100) {
            0..35 => (at::KV, Self::kv),
            35..65 => (at::FS, Self::fs),
            65..95 => (at::BANK, Self::bank),
            _ => (at::NAMES, Self::names),
        };
        self.cur = server;
        request(self);
    }

    /// Hands [`Log::progress`] what changed for each server since the last round.
    fn publish(&mut self) {
        let eps = [
            self.c.names.0.ep,
            self.c.kv.0.ep,
            self.c.fs.0.ep,
            self.c.bank.0.ep,
            self.c.queue.0.ep,
        ];
        for (i, ep) in eps.iter().enumerate() {
            let now = WorkloadReport {
                retries: ep.retries,
                ..self.per[i]
            };
            let delta = now.since(self.published[i]);
            if delta != WorkloadReport::ZERO {
                self.log.progress(ep.id, delta);
                self.published[i] = now;
            }
        }
    }

    /// Compares a reply with the model's expectation.
    fn check<V: PartialEq>(
        &mut self,
        what: &[u8],
        got: Result<V, ClientError>,
        want: Result<V, u64>,
    ) {
        let before = self.f;
        self.judge(what, got, want);
        self.per[self.cur] = self.per[self.cur].plus(self.f.since(before));
    }

    /// [`Run::check`]'s verdict, counted in the run's figures.
    fn judge<V: PartialEq>(
        &mut self,
        what: &[u8],
        got: Result<V, ClientError>,
        want: Result<V, u64>,
    ) {
        match (got, want) {
            (Ok(g), Ok(w)) if g == w => {}
            (Err(ClientError::Server(g)), Err(w)) if g == w => {}
            (Err(ClientError::StateLost), _) => self.f.lost += 1,
            (Err(ClientError::Crashed | ClientError::Kernel(_)), _) => self.f.errors += 1,
            (Err(ClientError::Server(code)), _) => self.mismatch(what, code),
            (Ok(_), _) => self.mismatch(what, 0),
        }
    }

    /// [`Run::check`] for the sweep: false when the server did not answer (it lost its state,
    /// crashed, ...), which ends the sweep of that server.
    fn sweep_check<V: PartialEq>(
        &mut self,
        what: &[u8],
        got: Result<V, ClientError>,
        want: Result<V, u64>,
    ) -> bool {
        let answered = matches!(got, Ok(_) | Err(ClientError::Server(_)));
        self.check(what, got, want);
        answered
    }

    fn mismatch(&mut self, what: &[u8], detail: u64) {
        self.f.mismatches += 1;
        self.log.mismatch(what, detail);
    }

    fn names(&mut self) {
        let index = self.rng.below(sysmap::TASKS.len() as u64) as usize;
        let name = sysmap::TASKS[index].name;
        let got = self
            .c
            .names
            .lookup(self.t, name)
            .map(|id: TaskId| usize::from(id.index()));
        self.check(b"names lookup", got, Ok(index));
    }
}

mod ops;

#[cfg(test)]
mod tests;
