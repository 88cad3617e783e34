//! bankload's mix: its own account ([`ACCOUNT`], opened first), deposits 40 %, withdrawals 30 %,
//! balance reads 30 %. Its balance changes are audited in kv's counter of the same number. The
//! workload uses the accounts below it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{TaskId, Transport};
use bank_api::Bank;
use load::{Mix, Rng, Tally};

/// bankload's account (the last one).
pub const ACCOUNT: u64 = bank_api::ACCOUNTS - 1;

/// The mix, and the balance bankload believes its account holds (`None`: not opened yet).
#[derive(Debug)]
pub struct BankMix {
    bank: Bank,
    rng: Rng,
    balance: Option<u64>,
}

impl BankMix {
    /// The balance it believes its account holds.
    pub fn balance(&self) -> Option<u64> {
        self.balance
    }
}

impl Mix for BankMix {
    fn new(server: TaskId) -> Self {
        Self {
            bank: Bank::new(server),
            rng: Rng::new(0x9e37_79b9 ^ 3),
            balance: None,
        }
    }

    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally) {
        let Some(balance) = self.balance else {
            let got = self.bank.open(t, ACCOUNT);
            if tally.check(got, Ok(())) {
                self.balance = Some(0);
            }
            return;
        };
        let amount = 1 + self.rng.below(100);
        match self.rng.below(100) {
            0..40 => {
                let got = self.bank.deposit(t, ACCOUNT, amount);
                if tally.check(got, Ok(balance + amount)) {
                    self.balance = Some(balance + amount);
                }
            }
            40..70 => {
                let got = self.bank.withdraw(t, ACCOUNT, amount);
                let want = balance
                    .checked_sub(amount)
                    .ok_or(bank_api::code::INSUFFICIENT);
                if let (true, Ok(b)) = (tally.check(got, want), want) {
                    self.balance = Some(b);
                }
            }
            _ => {
                let got = self.bank.balance(t, ACCOUNT);
                tally.check(got, Ok(balance));
            }
        }
    }

    fn forget(&mut self) {
        self.balance = None;
    }

    fn retries(&self) -> u64 {
        self.bank.0.ep.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::{Loopback, Message};
    use kv_api::Kv;
    use zerocopy::FromZeros;

    /// Against the real bank, auditing in the real kv: every reply checks out, and kv's
    /// counter of the account equals its balance.
    /// The workload may run beside it: it uses the accounts below this client's.
    #[test]
    fn its_namespace_is_clear_of_the_workload_s() {
        assert!(workload::model::ACCOUNTS as u64 <= ACCOUNT);
    }

    #[test]
    fn checks_out_against_the_real_server_logic() {
        let mut kv = Box::new(kv::Store::new_zeroed());
        let mut bank = Box::new(bank::Bank::new_zeroed());
        bank.connect_audit(TaskId::new(1, 0));
        let (f, load) = load::run_against::<BankMix>(2000, |m| {
            bank.handle(m, &mut Loopback(|_, m: &Message| kv.handle(m)))
        });
        assert_eq!(
            (f.ops, f.errors, f.mismatches, f.lost),
            (2000, 0, 0, 0),
            "{f:?}"
        );
        let balance = load.mix().balance().expect("the account was opened");
        let counter = Kv::new(TaskId::new(1, 0))
            .counter(&mut Loopback(|_, m: &Message| kv.handle(m)), ACCOUNT);
        assert_eq!(counter, Ok(balance));
        assert_eq!(bank.audit_failures(), 0);
    }
}
