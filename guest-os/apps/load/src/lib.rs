//! Load clients: one task per server (`kvload` for kv, ...), each driving its server alone with
//! a request mix of its own for a given time and checking every reply against its own model.
//! They make the servers independent of each other for `vmm bench recovery`: a crashed server
//! stalls only its own client. This crate is what they share; each client crate holds its mix
//! (a [`Mix`]: the requests it makes, its model, its namespace in the server).
//!
//! A client's command-line value is how long it runs, in timer ticks (`kvload=300`: 3 s), or
//! `forever` (until the VM is stopped); without one it runs nothing. While it runs it publishes
//! its figures every [`PUBLISH_EVERY`] requests (`Sys::Progress`), for the VMM to show. Either way it then answers the workload's [`op::WAIT`] with its figures,
//! which is how the workload waits for the clients (the system map's load clients,
//! tasks) before it stops the VM. The clients are meant for runs without the workload's own
//! requests (`ops=0`): the workload's final sweep checks that the servers hold nothing but its
//! own data, so each client keeps to a namespace the workload does not use.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{ClientError, MSG_WORDS, TaskId, Transport};
use abi::monitor::WorkloadReport;

/// The clients' interface (their only request).
pub mod op {
    /// Wait until the client's load is done; reply words: ops, errors, retries, lost,
    /// mismatches, ticks.
    pub const WAIT: u64 = 1;
}

/// A client's figures, as its WAIT reply carries them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Requests made (and answered).
    pub report: WorkloadReport,
    /// Timer ticks the load ran.
    pub ticks: u64,
}

impl Figures {
    /// The WAIT reply words.
    pub fn words(&self) -> [u64; MSG_WORDS] {
        let r = &self.report;
        [r.ops, r.errors, r.retries, r.lost, r.mismatches, self.ticks]
    }

    /// From WAIT reply words.
    pub fn from_words(w: [u64; MSG_WORDS]) -> Self {
        Self {
            report: WorkloadReport {
                ops: w[0],
                errors: w[1],
                retries: w[2],
                lost: w[3],
                mismatches: w[4],
            },
            ticks: w[5],
        }
    }
}

/// xorshift64*, as the workload's.
#[derive(Clone, Copy, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any; 0 is made odd).
    pub const fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// A number below `n` (0 for `n` of 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The figures a mix's checks add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests, errors, lost states, mismatches (retries come from the client's endpoint).
    pub figures: WorkloadReport,
}

impl Tally {
    /// Checks reply `got` against the model's `want` (a value, or a server error code): true
    /// when they agree (the mix then updates its model). A server that lost its state
    /// (`StateLost`) counts as lost, and the mix is told to forget its model; a crashed server
    /// or a kernel error counts as an error; anything else is a mismatch.
    pub fn check<V: PartialEq>(
        &mut self,
        got: Result<V, ClientError>,
        want: Result<V, u64>,
    ) -> bool {
        let ok = match (got, want) {
            (Ok(g), Ok(w)) => g == w,
            (Err(ClientError::Server(g)), Err(w)) => g == w,
            (Err(ClientError::StateLost), _) => {
                self.figures.lost += 1;
                return false;
            }
            (Err(ClientError::Crashed | ClientError::Kernel(_)), _) => {
                self.figures.errors += 1;
                return false;
            }
            _ => false,
        };
        if !ok {
            self.figures.mismatches += 1;
        }
        ok
    }
}

/// One client's request mix: what it asks its server, and what it believes the server holds.
pub trait Mix {
    /// The mix of a client of the server with id `server` (looked up by the caller).
    fn new(server: TaskId) -> Self;

    /// Makes one request, checks its reply with `tally` and updates the model.
    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally);

    /// The server lost its state (a fresh restart): forget the model.
    fn forget(&mut self);

    /// Requests its client resent after "peer restarted" so far.
    fn retries(&self) -> u64;
}

/// Requests between two progress publications.
pub const PUBLISH_EVERY: u64 = 64;

/// A client's command-line value: how many ticks to run (`forever`: `u64::MAX`; none, or not a
/// number: 0), NUL-padded as the kernel hands it over. The kernel checked it at boot.
pub fn ticks_of(arg: &[u8]) -> u64 {
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    if arg == b"forever" {
        return u64::MAX;
    }
    arg.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        })
}

/// One client's run in progress.
#[derive(Debug)]
pub struct Load<M> {
    mix: M,
    tally: Tally,
    /// What [`Load::progress`] handed out so far.
    published: WorkloadReport,
}

impl<M: Mix> Load<M> {
    /// A run against the server with id `server`.
    pub fn new(server: TaskId) -> Self {
        Self {
            mix: M::new(server),
            tally: Tally::default(),
            published: WorkloadReport::ZERO,
        }
    }

    /// Makes one request of the mix and checks its reply.
    pub fn step(&mut self, t: &mut impl Transport) {
        let lost = self.tally.figures.lost;
        self.mix.step(t, &mut self.tally);
        if self.tally.figures.lost != lost {
            self.mix.forget();
        }
        self.tally.figures.ops += 1;
    }

    /// The figures so far.
    pub fn figures(&self) -> WorkloadReport {
        WorkloadReport {
            retries: self.mix.retries(),
            ..self.tally.figures
        }
    }

    /// The figures since the last call (`None` when nothing changed): what the client publishes.
    pub fn progress(&mut self) -> Option<WorkloadReport> {
        let now = self.figures();
        let delta = now.since(self.published);
        self.published = now;
        (delta != WorkloadReport::ZERO).then_some(delta)
    }

    /// The mix (its model), for tests.
    pub fn mix(&self) -> &M {
        &self.mix
    }
}

/// Runs `steps` requests of mix `M` against a server whose handler `handle` answers them
/// (a host test against the real server logic); returns the figures.
pub fn run_against<M: Mix>(
    steps: usize,
    handle: impl FnMut(&abi::ipc::Message) -> abi::ipc::Message,
) -> (WorkloadReport, Load<M>) {
    let mut handle = handle;
    let mut t = abi::ipc::Loopback(|_, m: &abi::ipc::Message| handle(m));
    let mut load = Load::<M>::new(TaskId::new(1, 0));
    for _ in 0..steps {
        load.step(&mut t);
    }
    (load.figures(), load)
}

/// The task of a load client of server `$server` (its name) with mix `$mix`: looks its server
/// up, runs its load for the ticks its command-line value says (none: no load), prints one
/// line, then answers WAIT requests with its figures forever. Expands in a client binary,
/// which depends on `userlib`, `abi` and `names-api`.
#[macro_export]
macro_rules! task_main {
    ($name:literal, $server:expr, $mix:ty) => {
        userlib::entry!(main);

        fn main(_me: userlib::TaskId, a0: u64, a1: u64) -> ! {
            let arg = abi::ipc::unpack_name([a0, a1]);
            let ticks = $crate::ticks_of(&arg);
            let mut t = userlib::ipc::Kernel::new();
            let mut figures = $crate::Figures::default();
            if ticks > 0 {
                let mut names = names_api::Names::well_known();
                let Ok(server) = names.lookup(&mut t, $server) else {
                    userlib::ipc::panic(b"cannot find my server")
                };
                let mut load = $crate::Load::<$mix>::new(server);
                let start = userlib::ipc::ticks();
                let mut steps = 0u64;
                let publish = |load: &mut $crate::Load<$mix>| {
                    if let Some(delta) = load.progress() {
                        // For the VMM's display only: a refusal costs the run nothing.
                        let _ = userlib::ipc::progress(server, &delta);
                    }
                };
                while userlib::ipc::ticks() - start < ticks {
                    load.step(&mut t);
                    steps += 1;
                    if steps % $crate::PUBLISH_EVERY == 0 {
                        publish(&mut load);
                    }
                }
                publish(&mut load);
                figures = $crate::Figures {
                    report: load.figures(),
                    ticks: userlib::ipc::ticks() - start,
                };
                let r = figures.report;
                let mut l = userlib::console::Line::new();
                l.push($name)
                    .push(b": ")
                    .push_dec(r.ops)
                    .push(b" requests in ");
                l.push_dec(figures.ticks * 10)
                    .push(b" ms, retries ")
                    .push_dec(r.retries);
                l.push(b", lost ")
                    .push_dec(r.lost)
                    .push(b", errors ")
                    .push_dec(r.errors);
                l.push(b", mismatches ").push_dec(r.mismatches);
                l.print();
            }
            let reply = abi::ipc::Message::new(abi::ipc::REPLY_OK, figures.words());
            let mut incoming = userlib::ipc::recv();
            loop {
                incoming = userlib::ipc::reply_recv(incoming.sender, &reply);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_through_the_wait_reply() {
        let f = Figures {
            report: WorkloadReport {
                ops: 1,
                errors: 2,
                retries: 3,
                lost: 4,
                mismatches: 5,
            },
            ticks: 6,
        };
        assert_eq!(Figures::from_words(f.words()), f);
    }

    #[test]
    fn a_clients_value_is_ticks_or_forever() {
        assert_eq!(ticks_of(b"300"), 300);
        assert_eq!(ticks_of(b"forever"), u64::MAX);
        assert_eq!(ticks_of(b"forever\0\0\0\0\0\0\0\0\0"), u64::MAX);
        assert_eq!(ticks_of(b"12\0\0"), 12);
        assert_eq!(ticks_of(b""), 0);
        assert_eq!(ticks_of(b"9999999999999999"), 9_999_999_999_999_999);
    }

    /// Progress hands out each change once: the deltas add up to the figures.
    #[test]
    fn progress_deltas_add_up_to_the_figures() {
        struct Count(u64);
        impl Mix for Count {
            fn new(_: TaskId) -> Self {
                Self(0)
            }
            fn step(&mut self, _: &mut impl Transport, tally: &mut Tally) {
                self.0 += 1;
                // Every third reply disagrees.
                tally.check(Ok(self.0 % 3), Ok(1));
            }
            fn forget(&mut self) {}
            fn retries(&self) -> u64 {
                self.0 / 5
            }
        }
        let mut t = abi::ipc::Loopback(|_, m: &abi::ipc::Message| *m);
        let mut load = Load::<Count>::new(TaskId::new(1, 0));
        let mut sum = WorkloadReport::ZERO;
        for i in 0..100 {
            load.step(&mut t);
            if i % 7 == 0 {
                sum = sum.plus(load.progress().expect("a request was made"));
            }
        }
        assert_eq!(load.progress().map(|d| sum.plus(d)), Some(load.figures()));
        assert_eq!(load.progress(), None, "nothing new");
        assert_eq!((load.figures().ops, load.figures().retries), (100, 20));
        assert!(load.figures().mismatches > 60);
    }

    #[test]
    fn the_tally_counts_what_each_reply_was() {
        let mut t = Tally::default();
        assert!(t.check(Ok(3), Ok(3)));
        assert!(t.check::<u8>(Err(ClientError::Server(2)), Err(2)));
        assert!(!t.check(Ok(3), Ok(4)));
        assert!(!t.check::<u8>(Err(ClientError::Server(1)), Err(2)));
        assert!(!t.check::<u8>(Ok(1), Err(2)));
        assert!(!t.check(Err(ClientError::StateLost), Ok(1)));
        assert!(!t.check(Err(ClientError::Crashed), Ok(1)));
        let f = t.figures;
        assert_eq!((f.mismatches, f.lost, f.errors), (3, 1, 1));
    }
}
