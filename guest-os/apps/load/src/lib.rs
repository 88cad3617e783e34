//! Load clients: one task per server (`namesload`, `kvload`, `fsload`, `bankload`), each
//! driving its server alone with a declared, state-changing request mix for a given time and
//! checking every reply against its own model. They make the servers independent of each other
//! for `vmm bench recovery`: a crashed server stalls only its own client.
//!
//! ```text
//!  client      server  mix (state-changing first)                     own namespace
//!  namesload   names   refresh 40 %, lookup 60 %                      -
//!  kvload      kv      put 50 %, delete 20 %, get 30 %                keys 1000..1016
//!  fsload      fs      write 60 %, read 40 % (one file, made first)   file "load"
//!  bankload    bank    deposit 40 %, withdraw 30 %, balance 30 %      account 63 (and kv's
//!                                                                     counter 63: the bank's
//!                                                                     audit)
//! ```
//!
//! kvload never touches kv's counters: they are the bank's audit. The workload uses accounts
//! `0..16` and keys `0..200`, clear of every client's namespace.
//!
//! A client's command-line value is how long it runs, in timer ticks (`kvload=300`: 3 s); without
//! one it runs nothing. Either way it then answers the workload's [`op::WAIT`] with its figures,
//! which is how the workload waits for the clients before it stops the VM. The clients are meant
//! for runs without the workload's own requests (`ops=0`): the workload's final sweep checks
//! that the servers hold nothing but its own data.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{ClientError, MSG_WORDS, TaskId, Transport};
use abi::monitor::WorkloadReport;
use bank_api::Bank;
use fs_api::Fs;
use kv_api::{Kv, Value};
use names_api::Names;

/// The clients' interface (their only request).
pub mod op {
    /// Wait until the client's load is done; reply words: ops, errors, retries, lost,
    /// mismatches, ticks.
    pub const WAIT: u64 = 1;
}

/// The client tasks, by the server each drives.
pub const CLIENTS: [&str; 4] = ["namesload", "kvload", "fsload", "bankload"];

/// The server a client drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// names.
    Names,
    /// kv.
    Kv,
    /// fs.
    Fs,
    /// bank.
    Bank,
}

impl Target {
    /// The server's name.
    pub const fn server(self) -> &'static str {
        match self {
            Self::Names => names_api::SERVER,
            Self::Kv => kv_api::SERVER,
            Self::Fs => fs_api::SERVER,
            Self::Bank => bank_api::SERVER,
        }
    }
}

/// First key of kvload's namespace.
pub const KV_BASE: u64 = 1000;
/// Keys kvload uses.
pub const KV_KEYS: usize = 16;
/// fsload's file.
pub const FILE: &[u8] = b"load";
/// Bytes of the file fsload writes into.
pub const FILE_SPAN: usize = 128;
/// bankload's account (the workload uses the first ones).
pub const ACCOUNT: u64 = bank_api::ACCOUNTS - 1;

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
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What a client believes its server holds (its own namespace only).
#[derive(Clone, Copy, Debug)]
struct Model {
    kv: [Option<Value>; KV_KEYS],
    file: Option<(u64, usize, [u8; FILE_SPAN])>,
    balance: Option<u64>,
}

/// One client's run in progress.
#[derive(Debug)]
pub struct Load {
    target: Target,
    rng: Rng,
    model: Model,
    names: Names,
    kv: Kv,
    fs: Fs,
    bank: Bank,
    f: WorkloadReport,
}

impl Load {
    /// A client of `target`, whose server has id `server` (looked up by the caller).
    pub fn new(target: Target, server: TaskId) -> Self {
        Self {
            target,
            rng: Rng(0x9e37_79b9 ^ target as u64 | 1),
            model: Model {
                kv: [None; KV_KEYS],
                file: None,
                balance: None,
            },
            names: Names(abi::ipc::Client::new(server)),
            kv: Kv::new(server),
            fs: Fs::new(server),
            bank: Bank::new(server),
            f: WorkloadReport::default(),
        }
    }

    /// The figures so far (retries from the client's endpoint).
    pub fn figures(&self) -> WorkloadReport {
        let retries = match self.target {
            Target::Names => self.names.0.ep.retries,
            Target::Kv => self.kv.0.ep.retries,
            Target::Fs => self.fs.0.ep.retries,
            Target::Bank => self.bank.0.ep.retries,
        };
        WorkloadReport { retries, ..self.f }
    }

    fn check<V: PartialEq>(&mut self, got: Result<V, ClientError>, want: Result<V, u64>) -> bool {
        let ok = match (got, want) {
            (Ok(g), Ok(w)) => g == w,
            (Err(ClientError::Server(g)), Err(w)) => g == w,
            (Err(ClientError::StateLost), _) => {
                self.f.lost += 1;
                // The server forgot everything: so does the model.
                self.model = Model {
                    kv: [None; KV_KEYS],
                    file: None,
                    balance: None,
                };
                return false;
            }
            (Err(ClientError::Crashed | ClientError::Kernel(_)), _) => {
                self.f.errors += 1;
                return false;
            }
            _ => false,
        };
        if !ok {
            self.f.mismatches += 1;
        }
        ok
    }

    /// Makes one request of the mix and checks its reply.
    pub fn step(&mut self, t: &mut impl Transport) {
        match self.target {
            Target::Names => self.names_step(t),
            Target::Kv => self.kv_step(t),
            Target::Fs => self.fs_step(t),
            Target::Bank => self.bank_step(t),
        }
        self.f.ops += 1;
    }

    fn names_step(&mut self, t: &mut impl Transport) {
        // Task 1 is kv in the bundled guest; what matters is the answer's stability.
        if self.rng.below(100) < 40 {
            let got = self.names.refresh(t, 1).map(|id| id.index());
            self.check(got, Ok(1));
        } else {
            let got = self.names.lookup(t, kv_api::SERVER).map(|id| id.index());
            self.check(got, Ok(1));
        }
    }

    fn kv_step(&mut self, t: &mut impl Transport) {
        let k = self.rng.below(KV_KEYS as u64) as usize;
        let key = KV_BASE + k as u64;
        let held = self.model.kv[k];
        match self.rng.below(100) {
            0..50 => {
                let n = self.f.ops.to_le_bytes();
                let v = Value::new(&[n[0], n[1], n[2], k as u8]);
                let got = self.kv.put(t, key, &v);
                if self.check(got, Ok(held.is_some())) {
                    self.model.kv[k] = Some(v);
                }
            }
            50..70 => {
                let got = self.kv.delete(t, key);
                let want = held.map(|_| ()).ok_or(kv_api::code::NOT_FOUND);
                if self.check(got, want) {
                    self.model.kv[k] = None;
                }
            }
            _ => {
                let got = self.kv.get(t, key);
                self.check(got, held.ok_or(kv_api::code::NOT_FOUND));
            }
        }
    }

    fn fs_step(&mut self, t: &mut impl Transport) {
        let Some((handle, size, data)) = self.model.file else {
            let got = self.fs.create(t, FILE);
            if let Ok(handle) = got {
                self.model.file = Some((handle, 0, [0; FILE_SPAN]));
            } else {
                self.check(got.map(|_| ()), Ok(()));
            }
            return;
        };
        let offset = self.rng.below((FILE_SPAN - fs_api::WRITE_CHUNK) as u64) as usize;
        if self.rng.below(100) < 60 {
            let len = 1 + self.rng.below(fs_api::WRITE_CHUNK as u64) as usize;
            let byte = self.f.ops as u8;
            let bytes = [byte; fs_api::WRITE_CHUNK];
            let got = self.fs.write(t, handle, offset, &bytes[..len]);
            let end = size.max(offset + len);
            if self.check(got, Ok(end)) {
                let mut data = data;
                data[offset..offset + len].copy_from_slice(&bytes[..len]);
                self.model.file = Some((handle, end, data));
            }
        } else {
            let mut out = [0u8; fs_api::READ_CHUNK];
            let got = self.fs.read(t, handle, offset, &mut out);
            let n = fs_api::READ_CHUNK.min(size.saturating_sub(offset));
            let same = got.map(|g| g == n && out[..n] == data[offset..offset + n]);
            self.check(same, Ok(true));
        }
    }

    fn bank_step(&mut self, t: &mut impl Transport) {
        let Some(balance) = self.model.balance else {
            let got = self.bank.open(t, ACCOUNT);
            if self.check(got, Ok(())) {
                self.model.balance = Some(0);
            }
            return;
        };
        let amount = 1 + self.rng.below(100);
        match self.rng.below(100) {
            0..40 => {
                let got = self.bank.deposit(t, ACCOUNT, amount);
                if self.check(got, Ok(balance + amount)) {
                    self.model.balance = Some(balance + amount);
                }
            }
            40..70 => {
                let got = self.bank.withdraw(t, ACCOUNT, amount);
                let want = balance
                    .checked_sub(amount)
                    .ok_or(bank_api::code::INSUFFICIENT);
                if let (true, Ok(b)) = (self.check(got, want), want) {
                    self.model.balance = Some(b);
                }
            }
            _ => {
                let got = self.bank.balance(t, ACCOUNT);
                self.check(got, Ok(balance));
            }
        }
    }
}

/// The task of a load client: looks its server up, runs its load for the ticks its command-line
/// value says (none: no load), prints one line, then answers WAIT requests with its figures
/// forever. Expands in a client binary, which depends on `userlib`.
#[macro_export]
macro_rules! task_main {
    ($name:literal, $target:expr) => {
        userlib::entry!(main);

        fn main(_me: userlib::TaskId, a0: u64, a1: u64) -> ! {
            let arg = abi::ipc::unpack_name([a0, a1]);
            let ticks = arg
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |n, b| {
                    n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
                });
            let mut t = userlib::ipc::Kernel::new();
            let mut figures = $crate::Figures::default();
            if ticks > 0 {
                let target = $target;
                let mut names = names_api::Names::well_known();
                let Ok(server) = names.lookup(&mut t, target.server()) else {
                    userlib::ipc::panic(b"cannot find my server")
                };
                let mut load = $crate::Load::new(target, server);
                let start = userlib::ipc::ticks();
                while userlib::ipc::ticks() - start < ticks {
                    load.step(&mut t);
                }
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
    use abi::ipc::{Loopback, Message};
    use zerocopy::FromZeros;

    fn run(target: Target, steps: usize) -> WorkloadReport {
        let mut kv = Box::new(kv::Store::new_zeroed());
        let mut fs = Box::new(fs::Files::new_zeroed());
        let mut bank = Box::new(bank::Bank::new_zeroed());
        let mut names = Box::new(names::Table::new_zeroed());
        let mut kernel = |i: u16| {
            let name: &[u8] = [b"names".as_slice(), b"kv"].get(usize::from(i))?;
            let mut n = [0u8; 16];
            n[..name.len()].copy_from_slice(name);
            Some((TaskId::new(i, 0), n, 0))
        };
        bank.connect_audit(TaskId::new(1, 0));
        names.load(&mut kernel);
        let mut t = Loopback(|_, m: &Message| match target {
            Target::Kv => kv.handle(m),
            Target::Fs => fs.handle(m),
            Target::Bank => bank.handle(m, &mut Loopback(|_, m: &Message| kv.handle(m))),
            Target::Names => names.handle(m, &mut kernel),
        });
        let mut load = Load::new(target, TaskId::new(1, 0));
        for _ in 0..steps {
            load.step(&mut t);
        }
        if target == Target::Bank {
            // bankload's balance is audited in kv's counter of its account.
            let balance = load.model.balance.expect("the account was opened");
            let mut c = Kv::new(TaskId::new(1, 0));
            let counter = c.counter(&mut Loopback(|_, m: &Message| kv.handle(m)), ACCOUNT);
            assert_eq!(counter, Ok(balance));
            assert_eq!(bank.audit_failures(), 0);
        }
        load.figures()
    }

    #[test]
    fn every_client_checks_out_against_the_real_server_logic() {
        for target in [Target::Names, Target::Kv, Target::Fs, Target::Bank] {
            let f = run(target, 2000);
            assert_eq!(f.ops, 2000, "{target:?}");
            assert_eq!(
                (f.errors, f.mismatches, f.lost),
                (0, 0, 0),
                "{target:?}: {f:?}"
            );
        }
    }

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
}
