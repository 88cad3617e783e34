//! The final verification sweep: every key, file and account the model holds is read back
//! and compared, the servers' own listings must hold nothing the model does not, and kv's
//! audit counters must equal the balances. A server that stops answering (lost its state,
//! crashed) ends its part of the sweep; one that lost its state has its model reset.

use crate::model::{ACCOUNTS, KEYS, NAMES, QUEUES, file_name, name_bytes};
use crate::{Log, Run, at};
use abi::ipc::Transport;
use kv_api::Value;

impl<T: Transport, L: Log> Run<'_, T, L> {
    pub(crate) fn sweep(&mut self) {
        for (server, part) in [
            (at::KV, Self::sweep_kv as fn(&mut Self)),
            (at::FS, Self::sweep_fs),
            (at::BANK, Self::sweep_bank),
            (at::QUEUE, Self::sweep_queues),
        ] {
            self.cur = server;
            let before = self.losses();
            part(self);
            self.forget_lost(before);
        }
        // The audit is the bank's: its deposits and withdrawals are what kv counts.
        self.cur = at::BANK;
        self.sweep_audit();
    }

    /// Every queue holds the model's entries, in order (popped: the run is over), and has
    /// taken as many pushes.
    fn sweep_queues(&mut self) {
        for q in 0..QUEUES {
            let model = self.m.queues[q];
            let got = self.c.queue.len(self.t, q as u64);
            if !self.sweep_check(b"sweep queue len", got, Ok((model.len, model.pushed))) {
                return;
            }
            let mut left = model;
            while let Some(e) = left.oldest() {
                let want = queue_api::Entry {
                    seq: e.seq,
                    data: e.data,
                };
                let got = self.c.queue.pop(self.t, q as u64);
                if !self.sweep_check(b"sweep queue pop", got, Ok(want)) {
                    return;
                }
                left.drop_oldest();
            }
            self.m.queues[q] = left;
        }
    }

    fn sweep_kv(&mut self) {
        let mut cursor = 0;
        let mut seen = 0;
        loop {
            match self.c.kv.scan(self.t, cursor) {
                Ok(Some(entry)) => {
                    self.check_scan(entry);
                    // The load clients' keys are theirs to count.
                    seen += usize::from(entry.key < kv_api::LOAD_KEY_BASE);
                    cursor = entry.next;
                }
                Ok(None) => break,
                Err(e) => return self.sweep_error(b"sweep kv scan", e),
            }
        }
        let held = self.m.kv.iter().filter(|e| e.present != 0).count();
        if seen != held {
            self.mismatch(b"sweep kv count", seen as u64);
        }
        for key in 0..KEYS {
            let e = self.m.kv[key];
            if e.present != 0 {
                let got = self.c.kv.get(self.t, key as u64);
                let want = Ok(Value::new(&e.bytes[..e.len as usize]));
                if !self.sweep_check(b"sweep kv get", got, want) {
                    return;
                }
            }
        }
    }

    fn sweep_fs(&mut self) {
        let mut cursor = 0;
        let mut seen = 0;
        loop {
            match self.c.fs.list(self.t, cursor) {
                Ok(Some(l)) => {
                    self.check_listing(&l);
                    seen += 1;
                    cursor = l.next;
                }
                Ok(None) => break,
                Err(e) => return self.sweep_error(b"sweep fs list", e),
            }
        }
        if seen != self.m.files.iter().filter(|f| f.present != 0).count() {
            self.mismatch(b"sweep fs count", seen as u64);
        }
        for i in 0..NAMES {
            let f = self.m.files[i];
            if f.present == 0 {
                continue;
            }
            let name = file_name(i);
            let got = self.c.fs.open(self.t, name_bytes(&name));
            if !self.sweep_check(b"sweep fs open", got, Ok((f.handle, f.size as usize))) {
                return;
            }
            let mut at = 0;
            while at < f.size as usize {
                let mut out = [0u8; fs_api::READ_CHUNK];
                let n = fs_api::READ_CHUNK.min(f.size as usize - at);
                match self.c.fs.read(self.t, f.handle, at, &mut out[..n]) {
                    Ok(got) if got == n && out[..n] == f.data[at..at + n] => at += n,
                    Ok(_) => {
                        self.mismatch(b"sweep fs read", at as u64);
                        break;
                    }
                    Err(e) => return self.sweep_error(b"sweep fs read", e),
                }
            }
        }
    }

    fn sweep_bank(&mut self) {
        let open = self.m.accounts.iter().filter(|a| a.open != 0);
        let (sum, n) = open.fold((0, 0), |(s, n), a| (s + a.balance, n + 1));
        let got = self.c.bank.total(self.t);
        if !self.sweep_check(b"sweep bank total", got, Ok((sum, n))) {
            return;
        }
        for a in 0..ACCOUNTS {
            let acct = self.m.accounts[a];
            if acct.open != 0 {
                let got = self.c.bank.balance(self.t, a as u64);
                if !self.sweep_check(b"sweep bank balance", got, Ok(acct.balance)) {
                    return;
                }
            }
        }
    }

    /// The bank's audit trail (see `bank_api`): kv's counter of each of the workload's accounts
    /// equals its balance, and the journal queue of those accounts took one entry per balance
    /// change the workload made (its push count); unless kv, the bank or the queue server lost
    /// its state during the run.
    fn sweep_audit(&mut self) {
        let lost = [
            (kv_api::SERVER, self.c.kv.0.ep.lost),
            (bank_api::SERVER, self.c.bank.0.ep.lost),
            (queue_api::SERVER, self.c.queue.0.ep.lost),
        ];
        if let Some((server, _)) = lost.into_iter().find(|&(_, n)| n > 0) {
            return self.log.audit_skipped(server);
        }
        let journal = bank_api::journal_queue(0);
        match self.c.queue.len(self.t, journal) {
            Ok((_, pushed)) if pushed == self.m.journaled => {}
            Ok((_, pushed)) => self.mismatch(b"sweep bank journal", pushed),
            Err(e) => return self.sweep_error(b"sweep bank journal", e),
        }
        for a in 0..ACCOUNTS {
            let acct = self.m.accounts[a];
            let balance = if acct.open != 0 { acct.balance } else { 0 };
            let before = self.losses();
            match self.c.kv.counter(self.t, a as u64) {
                Ok(counter) if counter == balance => {}
                Ok(_) => self.mismatch(b"sweep bank audit", a as u64),
                Err(e) => {
                    self.sweep_error(b"sweep bank audit", e);
                    self.forget_lost(before);
                    return;
                }
            }
        }
    }
}
