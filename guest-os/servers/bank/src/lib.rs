//! The bank server's state and request handling (interface: `bank-api`): [`ACCOUNTS`]
//! accounts, each open or not, with a balance. A failed request changes nothing.
//!
//! Every balance change is audited in `kv` and journaled in `queue` before the reply: kv's
//! counter `a` follows account `a`'s balance, and the account's journal queue gets an entry
//! (account, change, new balance) per change (`bank_api`'s doc). The handler takes the
//! transport both go through, so host tests route them to kv's and queue's real logic. An audit
//! or journal entry that fails is counted ([`Bank::audit_failures`],
//! [`Bank::journal_failures`]); the request still succeeds.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, Endpoint, MSG_WORDS, Message, REPLY_OK, TaskId, Transport};
use bank_api::{ACCOUNTS, code, op};
use kv_api::Kv;
use queue_api::Queue;
use zerocopy::FromZeros;

// Every account has its counter.
const _: () = assert!(ACCOUNTS as usize <= kv_api::COUNTERS);

/// One account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
pub struct Account {
    open: u64,
    balance: u64,
}

/// A peer the bank calls (kv, queue), as plain words valid as zeros: whether it was looked up,
/// and its endpoint (id and counts) between calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
struct Link {
    /// 1 once the peer was looked up.
    found: u64,
    /// Its id as last known.
    id: u64,
    /// The endpoint's counts.
    retries: u64,
    lost: u64,
}

impl Link {
    fn to(id: TaskId) -> Self {
        Self {
            found: 1,
            id: id.0,
            retries: 0,
            lost: 0,
        }
    }

    /// A client of the peer, if it was looked up.
    fn client(&self) -> Option<Client> {
        (self.found != 0).then_some(Client {
            ep: Endpoint {
                id: TaskId(self.id),
                retries: self.retries,
                lost: self.lost,
            },
        })
    }

    fn keep(&mut self, c: &Client) {
        (self.id, self.retries, self.lost) = (c.ep.id.0, c.ep.retries, c.ep.lost);
    }
}

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Bank {
    accounts: [Account; ACCOUNTS as usize],
    kv: Link,
    audit_failures: u64,
    queue: Link,
    journal_failures: u64,
}

/// A balance change to audit and journal: account, signed amount, new balance.
type Change = Option<(u64, i64, u64)>;

fn ok(words: [u64; MSG_WORDS]) -> Result<(Message, [Change; 2]), u64> {
    Ok((Message::new(REPLY_OK, words), [None; 2]))
}

/// Account `account`'s balance went up (`up`) or down by `amount` to `balance`: the change to
/// audit, with the amount as a counter delta (two's complement: it wraps as the counter does);
/// none for 0.
fn change(account: u64, amount: u64, up: bool, balance: u64) -> Change {
    let d = amount as i64;
    (amount != 0).then_some((account, if up { d } else { d.wrapping_neg() }, balance))
}

impl Bank {
    /// Audits go to kv at `kv` from now on (the task looks kv up before its first boundary).
    pub fn connect_audit(&mut self, kv: TaskId) {
        self.kv = Link::to(kv);
    }

    /// Journal entries go to the queue server at `queue` from now on (looked up like kv).
    pub fn connect_journal(&mut self, queue: TaskId) {
        self.queue = Link::to(queue);
    }

    /// True once kv was looked up ([`Bank::connect_audit`]).
    pub fn audit_connected(&self) -> bool {
        self.kv.found != 0
    }

    /// True once the queue server was looked up ([`Bank::connect_journal`]).
    pub fn journal_connected(&self) -> bool {
        self.queue.found != 0
    }

    /// Audits that failed (kv unreachable, crashed, lost its state, refused).
    pub fn audit_failures(&self) -> u64 {
        self.audit_failures
    }

    /// Journal entries that failed (the queue server unreachable, crashed, lost its state).
    pub fn journal_failures(&self) -> u64 {
        self.journal_failures
    }

    fn account(&mut self, n: u64) -> Result<&mut Account, u64> {
        let a = self
            .accounts
            .get_mut(usize::try_from(n).map_err(|_| code::BAD_REQUEST)?)
            .ok_or(code::BAD_REQUEST)?;
        if a.open == 0 {
            return Err(code::NO_ACCOUNT);
        }
        Ok(a)
    }

    /// Handles one request; a balance change is audited in kv and journaled in the queue
    /// server through `t` before the reply.
    pub fn handle(&mut self, msg: &Message, t: &mut impl Transport) -> Message {
        match self.dispatch(msg) {
            Ok((reply, changes)) => {
                for (account, delta, balance) in changes.into_iter().flatten() {
                    self.audit(t, account, delta);
                    self.journal(t, account, delta, balance);
                }
                reply
            }
            Err(code) => Message::new(code, [0; MSG_WORDS]),
        }
    }

    /// Adds `delta` to kv's counter `account`; a failure is counted, not answered.
    fn audit(&mut self, t: &mut impl Transport, account: u64, delta: i64) {
        let Some(client) = self.kv.client() else {
            self.audit_failures += 1;
            return;
        };
        let mut kv = Kv(client);
        let done = kv.add(t, account, delta);
        self.kv.keep(&kv.0);
        if done.is_err() {
            self.audit_failures += 1;
        }
    }

    /// Pushes (account, delta, balance) into the account's journal queue; a failure is
    /// counted, not answered.
    fn journal(&mut self, t: &mut impl Transport, account: u64, delta: i64, balance: u64) {
        let Some(client) = self.queue.client() else {
            self.journal_failures += 1;
            return;
        };
        let mut queue = Queue(client);
        let entry = [account, delta as u64, balance];
        let done = queue.push(t, bank_api::journal_queue(account), entry);
        self.queue.keep(&queue.0);
        if done.is_err() {
            self.journal_failures += 1;
        }
    }

    /// Applies one request: its reply and the balance changes to audit.
    fn dispatch(&mut self, msg: &Message) -> Result<(Message, [Change; 2]), u64> {
        let [a, b, c, ..] = msg.words;
        match msg.label {
            op::OPEN => match self.account(a) {
                Ok(_) => Err(code::EXISTS),
                Err(code::NO_ACCOUNT) => {
                    self.accounts[a as usize] = Account {
                        open: 1,
                        balance: 0,
                    };
                    ok([0; MSG_WORDS])
                }
                Err(e) => Err(e),
            },
            op::DEPOSIT => {
                let acct = self.account(a)?;
                acct.balance = acct.balance.checked_add(b).ok_or(code::BAD_REQUEST)?;
                let balance = acct.balance;
                let (reply, _) = ok([balance, 0, 0, 0, 0, 0])?;
                Ok((reply, [change(a, b, true, balance), None]))
            }
            op::WITHDRAW => {
                let acct = self.account(a)?;
                acct.balance = acct.balance.checked_sub(b).ok_or(code::INSUFFICIENT)?;
                let balance = acct.balance;
                let (reply, _) = ok([balance, 0, 0, 0, 0, 0])?;
                Ok((reply, [change(a, b, false, balance), None]))
            }
            op::TRANSFER => {
                if a == b {
                    return Err(code::BAD_REQUEST);
                }
                let to = self.account(b)?.balance;
                let from = self.account(a)?.balance;
                let from = from.checked_sub(c).ok_or(code::INSUFFICIENT)?;
                let to = to.checked_add(c).ok_or(code::BAD_REQUEST)?;
                self.account(a)?.balance = from;
                self.account(b)?.balance = to;
                let (reply, _) = ok([from, to, 0, 0, 0, 0])?;
                Ok((reply, [change(a, c, false, from), change(b, c, true, to)]))
            }
            op::BALANCE => ok([self.account(a)?.balance, 0, 0, 0, 0, 0]),
            op::TOTAL => {
                let open = self.accounts.iter().filter(|a| a.open != 0);
                let (sum, n) =
                    open.fold((0u64, 0u64), |(s, n), a| (s.wrapping_add(a.balance), n + 1));
                ok([sum, n, 0, 0, 0, 0])
            }
            _ => Err(code::BAD_REQUEST),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::{CallError, ClientError, Error, Loopback, TaskId};
    use std::cell::RefCell;

    fn err<T>(c: u64) -> Result<T, ClientError> {
        Err(ClientError::Server(c))
    }

    const KV: TaskId = TaskId::new(1, 0);
    const QUEUE: TaskId = TaskId::new(5, 0);

    /// A bank connected to a kv store and a queue server (the real logic); every call goes to
    /// the bank, its audits to the store, its journal entries to the queues.
    struct System {
        bank: Box<Bank>,
        kv: RefCell<Box<kv::Store>>,
        queue: RefCell<Box<queue::Queues>>,
    }

    impl System {
        fn new() -> Self {
            let mut bank = Box::new(Bank::new_zeroed());
            bank.connect_audit(KV);
            bank.connect_journal(QUEUE);
            Self {
                bank,
                kv: RefCell::new(Box::new(kv::Store::new_zeroed())),
                queue: RefCell::new(Box::new(queue::Queues::new_zeroed())),
            }
        }

        /// The entries of account `account`'s journal queue, oldest first.
        fn journal(&self, account: u64) -> Vec<[u64; 3]> {
            let mut q = Queue::new(QUEUE);
            let mut queues = self.queue.borrow_mut();
            let mut t = Loopback(|_, m: &Message| queues.handle(m));
            let q_no = bank_api::journal_queue(account);
            let mut out = Vec::new();
            while let Ok(e) = q.pop(&mut t, q_no) {
                out.push(e.data);
            }
            out
        }

        fn counter(&self, account: u64) -> u64 {
            let mut kv = Kv::new(KV);
            let mut store = self.kv.borrow_mut();
            let mut t = Loopback(|_, m: &Message| store.handle(m));
            kv.counter(&mut t, account).expect("a counter")
        }
    }

    impl Transport for System {
        fn call(&mut self, _: TaskId, msg: &Message) -> Result<Message, CallError> {
            let (store, queues) = (&self.kv, &self.queue);
            let mut peers = Loopback(|to: TaskId, m: &Message| match to {
                KV => store.borrow_mut().handle(m),
                QUEUE => queues.borrow_mut().handle(m),
                other => panic!("the bank calls kv and queue only, not {other:?}"),
            });
            Ok(self.bank.handle(msg, &mut peers))
        }
    }

    #[test]
    fn money_moves_and_is_conserved() {
        let mut t = System::new();
        let mut bank = bank_api::Bank::new(TaskId::new(3, 0));
        assert_eq!(bank.deposit(&mut t, 1, 5), err(code::NO_ACCOUNT));
        assert_eq!(bank.open(&mut t, 1), Ok(()));
        assert_eq!(bank.open(&mut t, 1), err(code::EXISTS));
        assert_eq!(bank.open(&mut t, 2), Ok(()));
        assert_eq!(bank.open(&mut t, ACCOUNTS), err(code::BAD_REQUEST));
        assert_eq!(bank.deposit(&mut t, 1, 100), Ok(100));
        assert_eq!(bank.withdraw(&mut t, 1, 101), err(code::INSUFFICIENT));
        assert_eq!(bank.transfer(&mut t, 1, 2, 30), Ok((70, 30)));
        assert_eq!(bank.transfer(&mut t, 1, 2, 71), err(code::INSUFFICIENT));
        assert_eq!(bank.transfer(&mut t, 1, 1, 1), err(code::BAD_REQUEST));
        assert_eq!(bank.transfer(&mut t, 1, 3, 1), err(code::NO_ACCOUNT));
        assert_eq!(bank.balance(&mut t, 1), Ok(70));
        assert_eq!(bank.deposit(&mut t, 2, u64::MAX), err(code::BAD_REQUEST));
        assert_eq!(bank.total(&mut t), Ok((100, 2)));
        assert_eq!((t.counter(1), t.counter(2), t.counter(3)), (70, 30, 0));
        assert_eq!(t.bank.audit_failures(), 0);
        // Accounts 1 and 2 journal into the same queue: every change, in order.
        let minus = |n: u64| n.wrapping_neg();
        assert_eq!(
            t.journal(1),
            [[1, 100, 100], [1, minus(30), 70], [2, 30, 30]]
        );
        assert_eq!(t.bank.journal_failures(), 0);
    }

    #[test]
    fn a_failed_audit_is_counted_and_the_request_still_answered() {
        let mut state = Box::new(Bank::new_zeroed());
        let mut bank = bank_api::Bank::new(TaskId::new(3, 0));
        let crashed = |_: TaskId, _: &Message| -> Result<Message, CallError> {
            Err(CallError {
                error: Error::PeerCrashed,
                current: KV,
            })
        };
        struct Fails<F>(F);
        impl<F: FnMut(TaskId, &Message) -> Result<Message, CallError>> Transport for Fails<F> {
            fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError> {
                (self.0)(to, msg)
            }
        }
        // Not connected yet: no audit can be made.
        let mut t = Loopback(|_, m: &Message| state.handle(m, &mut Fails(crashed)));
        assert_eq!(bank.open(&mut t, 4), Ok(()));
        assert_eq!(bank.deposit(&mut t, 4, 10), Ok(10));
        assert_eq!(state.audit_failures(), 1);
        state.connect_audit(KV);
        let mut t = Loopback(|_, m: &Message| state.handle(m, &mut Fails(crashed)));
        assert_eq!(bank.withdraw(&mut t, 4, 3), Ok(7));
        assert_eq!(bank.open(&mut t, 5), Ok(()));
        assert_eq!(
            bank.transfer(&mut t, 4, 5, 2),
            Ok((5, 2)),
            "two audits fail"
        );
        assert_eq!(
            bank.deposit(&mut t, 4, 0),
            Ok(5),
            "nothing changed: no audit"
        );
        assert_eq!(bank.balance(&mut t, 4), Ok(5));
        assert_eq!(state.audit_failures(), 4);
        assert_eq!(
            state.journal_failures(),
            4,
            "not connected: none journaled either"
        );
    }

    proptest::proptest! {
        /// Any sequence of requests leaves kv's counters equal to the balances.
        #[test]
        fn counters_follow_the_balances(
            ops in proptest::collection::vec((0u64..6, 0u64..ACCOUNTS + 1, 0u64..ACCOUNTS, 0u64..1000), 0..400),
        ) {
            let mut t = System::new();
            let mut bank = bank_api::Bank::new(TaskId::new(3, 0));
            for (what, a, b, amount) in ops {
                let _ = match what {
                    0 => bank.open(&mut t, a).map(|_| 0),
                    1 => bank.deposit(&mut t, a, amount),
                    2 => bank.withdraw(&mut t, a, amount),
                    3 => bank.transfer(&mut t, a, b, amount).map(|(f, _)| f),
                    4 => bank.balance(&mut t, a),
                    _ => bank.deposit(&mut t, a, u64::MAX - amount),
                };
            }
            let mut open = 0;
            for a in 0..ACCOUNTS {
                let balance = match bank.balance(&mut t, a) {
                    Ok(b) => { open += 1; b }
                    Err(ClientError::Server(code::NO_ACCOUNT)) => 0,
                    Err(e) => return Err(proptest::test_runner::TestCaseError::fail(format!("{e:?}"))),
                };
                proptest::prop_assert_eq!(t.counter(a), balance, "account {}", a);
            }
            proptest::prop_assert_eq!(bank.total(&mut t).map(|(_, n)| n), Ok(open));
            proptest::prop_assert_eq!(t.bank.audit_failures(), 0);
            proptest::prop_assert_eq!(t.bank.journal_failures(), 0);
        }
    }
}
