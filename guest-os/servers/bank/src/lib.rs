//! The bank server's state and request handling (interface: `bank-api`): [`ACCOUNTS`]
//! accounts, each open or not, with a balance. A failed request changes nothing.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{MSG_WORDS, Message, REPLY_OK};
use bank_api::{ACCOUNTS, code, op};
use zerocopy::FromZeros;

/// One account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
pub struct Account {
    open: u64,
    balance: u64,
}

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Bank {
    accounts: [Account; ACCOUNTS as usize],
}

fn ok(words: [u64; MSG_WORDS]) -> Result<Message, u64> {
    Ok(Message::new(REPLY_OK, words))
}

impl Bank {
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

    /// Handles one request.
    pub fn handle(&mut self, msg: &Message) -> Message {
        self.dispatch(msg)
            .unwrap_or_else(|code| Message::new(code, [0; MSG_WORDS]))
    }

    fn dispatch(&mut self, msg: &Message) -> Result<Message, u64> {
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
                ok([acct.balance, 0, 0, 0, 0, 0])
            }
            op::WITHDRAW => {
                let acct = self.account(a)?;
                acct.balance = acct.balance.checked_sub(b).ok_or(code::INSUFFICIENT)?;
                ok([acct.balance, 0, 0, 0, 0, 0])
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
                ok([from, to, 0, 0, 0, 0])
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
    use abi::ipc::{ClientError, Loopback, TaskId};

    fn err<T>(c: u64) -> Result<T, ClientError> {
        Err(ClientError::Server(c))
    }

    #[test]
    fn money_moves_and_is_conserved() {
        let mut state = Box::new(Bank::new_zeroed());
        let mut t = Loopback(|_, m: &Message| state.handle(m));
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
    }
}
