//! The workload against the real server logic on the host, through a transport that routes
//! each call to the server its id names (as the kernel would).

use super::*;
use abi::ipc::{CallError, Error, Message, TaskId};
use zerocopy::FromZeros;

struct Servers {
    names: Box<names::Table>,
    kv: Box<kv::Store>,
    fs: Box<fs::Files>,
    bank: Box<bank::Bank>,
}

fn kernel(i: u16) -> Option<(TaskId, [u8; 16], u64)> {
    let t = sysmap::TASKS.get(usize::from(i))?;
    let mut name = [0u8; 16];
    name[..t.name.len()].copy_from_slice(t.name.as_bytes());
    Some((TaskId::new(i, 0), name, 0))
}

impl Transport for Servers {
    fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError> {
        let name = sysmap::TASKS.get(usize::from(to.index())).map(|t| t.name);
        Ok(match name {
            Some("names") => self.names.handle(msg, &mut kernel),
            Some("kv") => self.kv.handle(msg),
            Some("fs") => self.fs.handle(msg),
            Some("bank") => self.bank.handle(msg),
            _ => {
                return Err(CallError {
                    error: Error::NoSuchTask,
                    current: to,
                });
            }
        })
    }
}

#[derive(Default)]
struct Collect(Vec<String>);

impl Log for Collect {
    fn mismatch(&mut self, what: &[u8], detail: u64) {
        self.0
            .push(format!("{} {detail}", String::from_utf8_lossy(what)));
    }
}

fn servers() -> Servers {
    let mut names = Box::new(names::Table::new_zeroed());
    names.load(&mut kernel);
    Servers {
        names,
        kv: Box::new(kv::Store::new_zeroed()),
        fs: Box::new(fs::Files::new_zeroed()),
        bank: Box::new(bank::Bank::new_zeroed()),
    }
}

#[test]
fn a_correct_system_gives_no_mismatch() {
    for seed in [1, 7, 12345] {
        let mut t = servers();
        let mut log = Collect::default();
        let clients = connect(&mut t).expect("servers found");
        let mut model = Box::new(Model::new_zeroed());
        let f = run(&mut t, &mut log, clients, &mut model, 5000, seed);
        assert_eq!(f.ops, 5000);
        assert_eq!(
            (f.errors, f.retries, f.lost, f.mismatches),
            (0, 0, 0, 0),
            "{:?}",
            log.0
        );
        assert!(model.kv.iter().any(|e| e.present != 0));
        assert!(model.files.iter().any(|e| e.present != 0 && e.size > 0));
        assert!(model.accounts.iter().any(|a| a.balance > 0));
    }
}

#[test]
fn a_server_that_forgets_is_caught() {
    let mut t = servers();
    let mut log = Collect::default();
    let clients = connect(&mut t).expect("servers found");
    let mut model = Box::new(Model::new_zeroed());
    run(&mut t, &mut log, clients, &mut model, 2000, 3);
    // The kv store loses its state behind the workload's back (a bad restore would).
    *t.kv = kv::Store::new_zeroed();
    let f = run(&mut t, &mut log, clients, &mut model, 500, 4);
    assert!(f.mismatches > 0, "a lost store went unnoticed");
}
