//! The bank server `bank`: accounts holding balances, moved by deposits, withdrawals and
//! transfers. Its interface, defined once.
//!
//! ```text
//!  op        label  request words         reply words (label 0 = ok)
//!  OPEN      1      account               -
//!  DEPOSIT   2      account, amount       new balance
//!  WITHDRAW  3      account, amount       new balance
//!  TRANSFER  4      from, to, amount      from's balance, to's balance
//!  BALANCE   5      account               balance
//!  TOTAL     6      -                     sum of balances, accounts
//! ```
//!
//! Accounts are numbered `0..ACCOUNTS`. Errors: `NO_ACCOUNT`, `EXISTS` (OPEN),
//! `INSUFFICIENT` (WITHDRAW, TRANSFER: nothing changes), `BAD_REQUEST` (bad number, transfer
//! to the same account, an amount that would overflow).
//!
//! Audit: the bank records every balance change in the key-value server `kv` as well, before
//! it replies: DEPOSIT adds the amount to kv's counter numbered like the account, WITHDRAW
//! subtracts it, TRANSFER does both (two ADDs). So kv's counter `a` equals account `a`'s
//! balance (wrapping; 0 for an account never opened), a state spread over two servers. An audit
//! that fails (kv crashed, lost its state, ...) does not fail the request: the bank counts it
//! and says so on its console once; from then on the two disagree.
//!
//! Journal: every balance change also goes into the account's journal queue of the `queue`
//! server ([`journal_queue`]) as an entry (account, change as two's complement, new balance),
//! after the audit and before the reply. So the queue's push count of a journal queue equals
//! the number of balance changes of its accounts (a queue keeps the last 16 entries). A bank
//! that crashes after a change has two peers holding its effects: kv and queue.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{Client, ClientError, TaskId, Transport};

/// The server's name in the system map.
pub const SERVER: &str = "bank";
/// Accounts the bank holds.
pub const ACCOUNTS: u64 = 64;
/// Accounts that share one journal queue.
pub const JOURNAL_ACCOUNTS: u64 = 16;

/// The queue (of the `queue` server) where the bank journals account `account`'s balance
/// changes: one of the four from `queue_api::JOURNALS`, 16 accounts each.
pub const fn journal_queue(account: u64) -> u64 {
    queue_api::JOURNALS + account / JOURNAL_ACCOUNTS
}

const _: () = assert!(journal_queue(ACCOUNTS - 1) < queue_api::QUEUES);

abi::declare_requests! {
    server "bank";
    /// Open an account with balance 0.
    OPEN = 1, changes_state;
    /// Add to a balance.
    DEPOSIT = 2, changes_state;
    /// Take from a balance.
    WITHDRAW = 3, changes_state;
    /// Move between accounts.
    TRANSFER = 4, changes_state;
    /// Read a balance.
    BALANCE = 5, idempotent;
    /// Sum of all balances and number of open accounts.
    TOTAL = 6, idempotent;
}

/// Reply codes other than 0.
pub mod code {
    /// The account is not open.
    pub const NO_ACCOUNT: u64 = 1;
    /// OPEN of an open account.
    pub const EXISTS: u64 = 2;
    /// Not enough money.
    pub const INSUFFICIENT: u64 = 3;
    /// Malformed request.
    pub const BAD_REQUEST: u64 = 4;
}

/// A client of `bank`.
#[derive(Clone, Copy, Debug)]
pub struct Bank(pub Client);

impl Bank {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(Client::new(id))
    }

    /// Opens `account`.
    pub fn open(&mut self, t: &mut impl Transport, account: u64) -> Result<(), ClientError> {
        self.0.request(t, op::OPEN, [account]).map(|_| ())
    }

    /// Adds `amount`; returns the new balance.
    pub fn deposit(
        &mut self,
        t: &mut impl Transport,
        account: u64,
        amount: u64,
    ) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::DEPOSIT, [account, amount])?[0])
    }

    /// Takes `amount`; returns the new balance.
    pub fn withdraw(
        &mut self,
        t: &mut impl Transport,
        account: u64,
        amount: u64,
    ) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::WITHDRAW, [account, amount])?[0])
    }

    /// Moves `amount` from `from` to `to`; returns both new balances.
    pub fn transfer(
        &mut self,
        t: &mut impl Transport,
        from: u64,
        to: u64,
        amount: u64,
    ) -> Result<(u64, u64), ClientError> {
        let w = self.0.request(t, op::TRANSFER, [from, to, amount])?;
        Ok((w[0], w[1]))
    }

    /// The balance of `account`.
    pub fn balance(&mut self, t: &mut impl Transport, account: u64) -> Result<u64, ClientError> {
        Ok(self.0.request(t, op::BALANCE, [account])?[0])
    }

    /// Sum of balances and number of open accounts.
    pub fn total(&mut self, t: &mut impl Transport) -> Result<(u64, u64), ClientError> {
        let w = self.0.request(t, op::TOTAL, [])?;
        Ok((w[0], w[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_table_is_well_formed() {
        assert_eq!(REQUESTS.check(), Ok(()));
    }
}
