//! The workload against the real server logic on the host, through a transport that routes
//! each call to the server its id names (as the kernel would), the bank's audits included.

use super::*;
use abi::ipc::{CallError, Error, Message, TaskId};
use zerocopy::FromZeros;

struct Servers {
    names: Box<names::Table>,
    kv: Box<kv::Store>,
    fs: Box<fs::Files>,
    bank: Box<bank::Bank>,
    queue: Box<queue::Queues>,
    /// Calls made so far, and at which one a server restarts from its initial image.
    calls: u64,
    fresh_restart: Option<(&'static str, u64)>,
    /// Generation of each server (bumped by its fresh restart).
    generation: [u32; 16],
}

fn kernel(i: u16) -> Option<(TaskId, [u8; 16], u64)> {
    let t = sysmap::TASKS.get(usize::from(i))?;
    let mut name = [0u8; 16];
    name[..t.name.len()].copy_from_slice(t.name.as_bytes());
    Some((TaskId::new(i, 0), name, 0))
}

fn index_of(server: &str) -> u16 {
    let i = sysmap::TASKS.iter().position(|t| t.name == server);
    i.expect("a task of the system map") as u16
}

impl Transport for Servers {
    fn call(&mut self, to: TaskId, msg: &Message) -> Result<Message, CallError> {
        self.calls += 1;
        let name = sysmap::TASKS.get(usize::from(to.index())).map(|t| t.name);
        let i = usize::from(to.index());
        if let Some((server, at)) = self.fresh_restart
            && name == Some(server)
            && self.calls >= at
        {
            // The server restarts from its initial image under this request.
            self.fresh_restart = None;
            match server {
                "kv" => self.kv.zero(),
                "fs" => self.fs.zero(),
                "bank" => {
                    self.bank.zero();
                    self.bank.connect_audit(TaskId::new(index_of("kv"), 0));
                    self.bank.connect_journal(TaskId::new(index_of("queue"), 0));
                }
                "queue" => self.queue.zero(),
                _ => unreachable!("only modelled servers restart"),
            }
            self.generation[i] += 1;
            return Err(CallError {
                error: Error::StateLost,
                current: TaskId::new(to.index(), self.generation[i]),
            });
        }
        let current = TaskId::new(to.index(), self.generation.get(i).copied().unwrap_or(0));
        if name.is_some() && to != current {
            // An id from before the restart: told once, as the kernel does.
            return Err(CallError {
                error: Error::StateLost,
                current,
            });
        }
        Ok(match name {
            Some("names") => self.names.handle(msg, &mut kernel),
            Some("kv") => self.kv.handle(msg),
            Some("fs") => self.fs.handle(msg),
            Some("queue") => self.queue.handle(msg),
            Some("bank") => {
                let (kv, queue) = (&mut self.kv, &mut self.queue);
                let mut peers = abi::ipc::Loopback(|to: TaskId, m: &Message| {
                    if to.index() == index_of("kv") {
                        kv.handle(m)
                    } else {
                        assert_eq!(to.index(), index_of("queue"), "the bank calls kv and queue");
                        queue.handle(m)
                    }
                });
                self.bank.handle(msg, &mut peers)
            }
            _ => {
                return Err(CallError {
                    error: Error::NoSuchTask,
                    current: to,
                });
            }
        })
    }
}

/// The log's lines, and each progress round's figures (server task index, delta).
#[derive(Default)]
struct Collect(Vec<String>, Vec<(u16, WorkloadReport)>);

impl Collect {
    /// The sum of the progress figures published for `server`.
    fn published(&self, server: &str) -> WorkloadReport {
        let i = index_of(server);
        self.1
            .iter()
            .filter(|(s, _)| *s == i)
            .fold(WorkloadReport::ZERO, |a, (_, d)| a.plus(*d))
    }
}

impl Log for Collect {
    fn mismatch(&mut self, what: &[u8], detail: u64) {
        self.0
            .push(format!("{} {detail}", String::from_utf8_lossy(what)));
    }

    fn state_lost(&mut self, server: &str) {
        self.0.push(format!("{server} state lost: model reset"));
    }

    fn audit_skipped(&mut self, server: &str) {
        self.0
            .push(format!("audit not checked: {server} lost its state"));
    }

    fn progress(&mut self, server: TaskId, delta: WorkloadReport) {
        assert_ne!(
            delta,
            WorkloadReport::ZERO,
            "an empty round is not published"
        );
        self.1.push((server.index(), delta));
    }
}

fn servers() -> Servers {
    let mut names = Box::new(names::Table::new_zeroed());
    names.load(&mut kernel);
    let mut bank = Box::new(bank::Bank::new_zeroed());
    bank.connect_audit(TaskId::new(index_of("kv"), 0));
    bank.connect_journal(TaskId::new(index_of("queue"), 0));
    Servers {
        names,
        kv: Box::new(kv::Store::new_zeroed()),
        fs: Box::new(fs::Files::new_zeroed()),
        bank,
        queue: Box::new(queue::Queues::new_zeroed()),
        calls: 0,
        fresh_restart: None,
        generation: [0; 16],
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
        assert!(log.0.is_empty(), "{:?}", log.0);
        // What was published while the run went on adds up to its figures, server by server,
        // and every server got its share of the mix (names 9/10 x 5 %, queue 1/10).
        let per = SERVERS.map(|s| log.published(s));
        let total = per.iter().fold(WorkloadReport::ZERO, |a, p| a.plus(*p));
        assert_eq!(total, f, "seed {seed}");
        assert!(per.iter().all(|p| p.ops > 100), "{per:?}");
        assert_eq!(per[4].ops, 500, "every tenth request is the queue's");
        // Rounds come every PUBLISH_EVERY requests, not per request.
        assert!(
            log.1.len() as u64 <= 5 * (5000 / PUBLISH_EVERY + 1),
            "{}",
            log.1.len()
        );
        assert!(model.kv.iter().any(|e| e.present != 0));
        assert!(model.files.iter().any(|e| e.present != 0 && e.size > 0));
        assert!(model.accounts.iter().any(|a| a.balance > 0));
        assert!(model.journaled > 0 && model.queues.iter().any(|q| q.pushed > 0));
        assert_eq!(t.bank.audit_failures(), 0);
        assert_eq!(t.bank.journal_failures(), 0);
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
    assert!(
        log.0.iter().any(|l| l.starts_with("sweep bank audit ")),
        "{:?}",
        log.0
    );
}

#[test]
fn an_audit_that_disagrees_is_a_mismatch_naming_the_account() {
    let mut t = servers();
    let mut log = Collect::default();
    let clients = connect(&mut t).expect("servers found");
    let mut model = Box::new(Model::new_zeroed());
    let f = run(&mut t, &mut log, clients, &mut model, 1000, 5);
    assert_eq!(f.mismatches, 0, "{:?}", log.0);
    // Someone else moves counter 3 (an account the workload uses, opened or not).
    let mut kv = kv_api::Kv::new(TaskId::new(index_of("kv"), 0));
    kv.add(&mut t, 3, 1).expect("an add");
    let f = run(&mut t, &mut log, clients, &mut model, 0, 5);
    assert_eq!(f.mismatches, 1, "{:?}", log.0);
    assert_eq!(log.0, ["sweep bank audit 3"]);
}

/// A journal entry the workload did not cause (a bank that journaled a change twice) is a
/// mismatch of the sweep.
#[test]
fn a_journal_with_an_entry_too_many_is_a_mismatch() {
    let mut t = servers();
    let mut log = Collect::default();
    let clients = connect(&mut t).expect("servers found");
    let mut model = Box::new(Model::new_zeroed());
    let f = run(&mut t, &mut log, clients, &mut model, 1000, 6);
    assert_eq!(f.mismatches, 0, "{:?}", log.0);
    assert!(model.journaled > 0);
    let mut queue = queue_api::Queue::new(TaskId::new(index_of("queue"), 0));
    queue
        .push(&mut t, bank_api::journal_queue(0), [1, 1, 1])
        .expect("a push");
    let f = run(&mut t, &mut log, clients, &mut model, 0, 6);
    assert_eq!(f.mismatches, 1, "{:?}", log.0);
    assert_eq!(
        log.0,
        [format!("sweep bank journal {}", model.journaled + 1)]
    );
}

#[test]
fn a_server_that_lost_its_state_resets_the_model_and_skips_the_audit() {
    for (server, at) in [("kv", 700), ("bank", 900), ("fs", 1100), ("queue", 1300)] {
        let mut t = servers();
        t.fresh_restart = Some((server, at));
        let mut log = Collect::default();
        let clients = connect(&mut t).expect("servers found");
        let mut model = Box::new(Model::new_zeroed());
        let f = run(&mut t, &mut log, clients, &mut model, 3000, 9);
        assert!(t.fresh_restart.is_none(), "{server}: the restart happened");
        assert_eq!(
            (f.lost, f.errors, f.mismatches),
            (1, 0, 0),
            "{server}: {:?}",
            log.0
        );
        let mut want = vec![format!("{server} state lost: model reset")];
        if server != "fs" {
            want.push(format!("audit not checked: {server} lost its state"));
        }
        assert_eq!(log.0, want, "{server}");
        // The lost request is published as the server's.
        for s in SERVERS {
            let lost = log.published(s).lost;
            assert_eq!(lost, u64::from(s == server), "{server}: {s} lost {lost}");
        }
        // The run went on against the restarted server, and the model followed it.
        match server {
            "kv" => assert!(model.kv.iter().any(|e| e.present != 0)),
            "bank" => assert!(model.accounts.iter().any(|a| a.open != 0)),
            "queue" => assert!(model.queues.iter().any(|q| q.pushed != 0)),
            _ => assert!(model.files.iter().any(|e| e.present != 0)),
        }
    }
}
