//! The requests of the mix, one function per server: pick a request, predict the reply from
//! the model, send it, check it, update the model.

use crate::model::{ACCOUNTS, FILE_SPAN, KEYS, NAMES, QUEUES, file_name, name_bytes};
use crate::{Log, Run};
use abi::ipc::{ClientError, Transport};
use kv_api::Value;

impl<T: Transport, L: Log> Run<'_, T, L> {
    pub(crate) fn kv(&mut self) {
        let key = self.rng.below(KEYS as u64);
        let k = key as usize;
        let e = self.m.kv[k];
        let present = e.present != 0;
        match self.rng.below(100) {
            0..50 => {
                let len = self.rng.below(kv_api::VALUE_MAX as u64 + 1) as usize;
                let mut bytes = [0u8; kv_api::VALUE_MAX];
                for b in bytes.iter_mut().take(len) {
                    *b = self.rng.next_u64() as u8;
                }
                let value = Value::new(&bytes[..len]);
                let got = self.c.kv.put(self.t, key, &value);
                let ok = got.is_ok();
                self.check(b"kv put", got, Ok(present));
                if ok {
                    let slot = &mut self.m.kv[k];
                    (slot.present, slot.len, slot.bytes) = (1, len as u64, bytes);
                }
            }
            50..75 => {
                let got = self.c.kv.get(self.t, key);
                let want = if present {
                    Ok(Value::new(&e.bytes[..e.len as usize]))
                } else {
                    Err(kv_api::code::NOT_FOUND)
                };
                self.check(b"kv get", got, want);
            }
            75..90 => {
                let got = self.c.kv.delete(self.t, key);
                let ok = got.is_ok();
                self.check(
                    b"kv delete",
                    got,
                    if present {
                        Ok(())
                    } else {
                        Err(kv_api::code::NOT_FOUND)
                    },
                );
                if ok {
                    self.m.kv[k].present = 0;
                }
            }
            _ => {
                let cursor = self.rng.below(kv_api::CAPACITY as u64);
                match self.c.kv.scan(self.t, cursor) {
                    Ok(Some(entry)) => self.check_scan(entry),
                    Ok(None) => {}
                    Err(e) => self.check::<()>(b"kv scan", Err(e), Ok(())),
                }
            }
        }
    }

    /// A scanned entry must be in the model with the same length and first bytes (a load
    /// client's key, running beside the workload, is not the workload's to check).
    pub(crate) fn check_scan(&mut self, entry: kv_api::ScanEntry) {
        if entry.key >= kv_api::LOAD_KEY_BASE {
            return;
        }
        let good = self.m.kv.get(entry.key as usize).is_some_and(|e| {
            let n = (e.len as usize).min(kv_api::SCAN_BYTES);
            e.present != 0 && e.len as usize == entry.len && e.bytes[..n] == entry.prefix[..n]
        });
        if !good {
            self.mismatch(b"kv scan entry", entry.key);
        }
    }

    pub(crate) fn fs(&mut self) {
        let i = self.rng.below(NAMES as u64) as usize;
        let name = file_name(i);
        let name = name_bytes(&name);
        let f = self.m.files[i];
        let present = f.present != 0;
        let missing = |code| if present { Ok(()) } else { Err(code) };
        match self.rng.below(100) {
            0..15 => {
                let got = self.c.fs.create(self.t, name);
                match (got, present) {
                    (Ok(handle), false) => {
                        self.m.files[i] = crate::model::FileEntry {
                            present: 1,
                            handle,
                            size: 0,
                            data: [0; FILE_SPAN],
                        };
                    }
                    (got, _) => self.check(
                        b"fs create",
                        got.map(|_| ()),
                        if present {
                            Err(fs_api::code::EXISTS)
                        } else {
                            Ok(())
                        },
                    ),
                }
            }
            15..50 => {
                let len = 1 + self.rng.below(fs_api::WRITE_CHUNK as u64) as usize;
                let offset = self.rng.below((FILE_SPAN - fs_api::WRITE_CHUNK) as u64) as usize;
                let mut data = [0u8; fs_api::WRITE_CHUNK];
                for b in data.iter_mut().take(len) {
                    *b = self.rng.next_u64() as u8;
                }
                let got = self.c.fs.write(self.t, f.handle, offset, &data[..len]);
                let end = offset + len;
                let ok = got.is_ok();
                let want = if present {
                    Ok(f.size.max(end as u64) as usize)
                } else {
                    Err(fs_api::code::STALE)
                };
                self.check(b"fs write", got, want);
                if ok && present {
                    let e = &mut self.m.files[i];
                    e.data[offset..end].copy_from_slice(&data[..len]);
                    e.size = e.size.max(end as u64);
                }
            }
            50..80 => {
                let offset = self.rng.below(FILE_SPAN as u64) as usize;
                let want_len = 1 + self.rng.below(fs_api::READ_CHUNK as u64) as usize;
                let mut out = [0u8; fs_api::READ_CHUNK];
                let got = self
                    .c
                    .fs
                    .read(self.t, f.handle, offset, &mut out[..want_len]);
                let size = f.size as usize;
                let n = want_len.min(size.saturating_sub(offset));
                match (got, present) {
                    (Ok(got_n), true)
                        if got_n == n
                            && out[..n] == f.data[offset.min(size)..offset.min(size) + n] => {}
                    (got, _) => self.check(
                        b"fs read",
                        got.map(|_| ()),
                        missing(fs_api::code::STALE).and(Err(u64::MAX)),
                    ),
                }
            }
            80..90 => {
                let got = self.c.fs.unlink(self.t, name);
                let ok = got.is_ok();
                self.check(b"fs unlink", got, missing(fs_api::code::NOT_FOUND));
                if ok {
                    self.m.files[i].present = 0;
                }
            }
            90..95 => {
                let got = self.c.fs.open(self.t, name);
                self.check(
                    b"fs open",
                    got,
                    if present {
                        Ok((f.handle, f.size as usize))
                    } else {
                        Err(fs_api::code::NOT_FOUND)
                    },
                );
            }
            _ => {
                let cursor = self.rng.below(fs_api::FILES as u64);
                match self.c.fs.list(self.t, cursor) {
                    Ok(Some(l)) => {
                        self.check_listing(&l);
                    }
                    Ok(None) => {}
                    Err(e) => self.check::<()>(b"fs list", Err(e), Ok(())),
                }
            }
        }
    }

    /// A listed file must be in the model with the same size.
    pub(crate) fn check_listing(&mut self, l: &fs_api::Listing) -> Option<usize> {
        let found = (0..NAMES).find(|&i| {
            let name = file_name(i);
            let n = name_bytes(&name);
            l.name[..n.len()] == *n && l.name[n.len()..].iter().all(|&b| b == 0)
        });
        match found {
            Some(i) if self.m.files[i].present != 0 && self.m.files[i].size as usize == l.size => {
                Some(i)
            }
            _ => {
                self.mismatch(b"fs list entry", l.size as u64);
                None
            }
        }
    }

    pub(crate) fn bank(&mut self) {
        let a = self.rng.below(ACCOUNTS as u64);
        let acct = self.m.accounts[a as usize];
        let open = acct.open != 0;
        let amount = 1 + self.rng.below(500);
        let no_account = bank_api::code::NO_ACCOUNT;
        match self.rng.below(100) {
            0..10 => {
                let got = self.c.bank.open(self.t, a);
                let ok = got.is_ok();
                self.check(
                    b"bank open",
                    got,
                    if open {
                        Err(bank_api::code::EXISTS)
                    } else {
                        Ok(())
                    },
                );
                if ok {
                    self.m.accounts[a as usize] = crate::model::AccountEntry {
                        open: 1,
                        balance: 0,
                    };
                }
            }
            10..40 => {
                let got = self.c.bank.deposit(self.t, a, amount);
                let ok = got.is_ok();
                self.check(
                    b"bank deposit",
                    got,
                    if open {
                        Ok(acct.balance + amount)
                    } else {
                        Err(no_account)
                    },
                );
                if ok {
                    self.m.accounts[a as usize].balance += amount;
                    self.m.journaled += 1;
                }
            }
            40..65 => {
                let got = self.c.bank.withdraw(self.t, a, amount);
                let ok = got.is_ok();
                let want = match acct.balance.checked_sub(amount) {
                    _ if !open => Err(no_account),
                    Some(b) => Ok(b),
                    None => Err(bank_api::code::INSUFFICIENT),
                };
                self.check(b"bank withdraw", got, want);
                if ok {
                    self.m.accounts[a as usize].balance -= amount;
                    self.m.journaled += 1;
                }
            }
            65..90 => {
                let b = (a + 1 + self.rng.below(ACCOUNTS as u64 - 1)) % ACCOUNTS as u64;
                let to = self.m.accounts[b as usize];
                let got = self.c.bank.transfer(self.t, a, b, amount);
                let ok = got.is_ok();
                let want = if !open || to.open == 0 {
                    Err(no_account)
                } else {
                    match acct.balance.checked_sub(amount) {
                        Some(from) => Ok((from, to.balance + amount)),
                        None => Err(bank_api::code::INSUFFICIENT),
                    }
                };
                self.check(b"bank transfer", got, want);
                if ok {
                    self.m.accounts[a as usize].balance -= amount;
                    self.m.accounts[b as usize].balance += amount;
                    self.m.journaled += 2;
                }
            }
            _ => {
                let got = self.c.bank.balance(self.t, a);
                self.check(
                    b"bank balance",
                    got,
                    if open {
                        Ok(acct.balance)
                    } else {
                        Err(no_account)
                    },
                );
            }
        }
    }

    pub(crate) fn queue(&mut self) {
        let q = self.queue_rng.below(QUEUES as u64);
        let model = self.m.queues[q as usize];
        let empty = queue_api::code::EMPTY;
        let oldest = model.oldest().map(|e| queue_api::Entry {
            seq: e.seq,
            data: e.data,
        });
        match self.queue_rng.below(100) {
            0..35 => {
                let data = [self.queue_rng.next_u64(), self.queue_rng.next_u64(), q];
                let got = self.c.queue.push(self.t, q, data);
                let ok = got.is_ok();
                let mut after = model;
                let want = after.push(data);
                self.check(b"queue push", got, Ok(want));
                if ok {
                    self.m.queues[q as usize] = after;
                }
            }
            35..60 => {
                let got = self.c.queue.pop(self.t, q);
                let ok = got.is_ok();
                self.check(b"queue pop", got, oldest.ok_or(empty));
                if ok && model.len > 0 {
                    self.m.queues[q as usize].drop_oldest();
                }
            }
            60..75 => {
                let got = self.c.queue.peek(self.t, q);
                self.check(b"queue peek", got, oldest.ok_or(empty));
            }
            75..90 => {
                let got = self.c.queue.len(self.t, q);
                self.check(b"queue len", got, Ok((model.len, model.pushed)));
            }
            _ => {
                let upto = oldest.map_or(model.pushed, |e| e.seq + self.queue_rng.below(3));
                let got = self.c.queue.ack(self.t, q, upto);
                let ok = got.is_ok();
                let mut after = model;
                let left = after.ack(upto);
                self.check(b"queue ack", got, Ok(left));
                if ok {
                    self.m.queues[q as usize] = after;
                }
            }
        }
    }

    /// Counts a failed sweep request.
    pub(crate) fn sweep_error(&mut self, what: &[u8], e: ClientError) {
        self.check::<()>(what, Err(e), Ok(()));
    }
}
