//! The workload task: runs the seeded request mix (`ops` and `seed` from the command line,
//! handed over by the kernel), waits for the load clients (see the `load` crate; their figures
//! are added to its own), prints exactly one line
//! `workload: ops=N errors=E retries=R lost=L mismatches=M`, hands the figures to the VMM and
//! stops the VM with status 0 only if there was no mismatch.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

userlib::entry!(main);

use abi::ipc::{ClientError, Message};
use abi::monitor::WorkloadReport;
use crasher_api::Crasher;
use names_api::Names;
use userlib::TaskId;
use userlib::console::Line;
use userlib::ipc::{self, Kernel};
use userlib::state::StaticCell;
use workload::{Log, connect, model::Model};

/// The model lives in the state arena.
static MODEL: StaticCell<Model> = StaticCell::new();
/// Exit status when the figures show mismatches (or the servers cannot be found).
const FAILED: u64 = 1;
/// Mismatches printed in detail (the rest are only counted).
const SHOWN: u64 = 5;

/// Prints mismatches, lost server states and a skipped audit check; pokes the crasher (the
/// test server) at the midpoint.
struct Console {
    shown: u64,
    crasher: Option<Crasher>,
}

impl Log for Console {
    fn midpoint(&mut self) {
        // The crasher takes its deliberate fault now, if it was given one. The poke is not one
        // of the workload's requests: its outcome is printed, not counted.
        let Some(crasher) = self.crasher.as_mut() else {
            return;
        };
        match crasher.poke(&mut Kernel::new()) {
            // Then a read-only question (what the VMM checks declarations with).
            Ok(()) => {
                if crasher.ping(&mut Kernel::new()).is_err() {
                    userlib::console::println(b"workload: the crasher's ping failed");
                }
            }
            Err(ClientError::Crashed) => {
                userlib::console::println(b"workload: the crasher crashed under its poke");
            }
            Err(_) => userlib::console::println(b"workload: the crasher's poke failed"),
        }
    }

    fn state_lost(&mut self, server: &str) {
        let mut l = Line::new();
        l.push(b"workload: ")
            .push(server.as_bytes())
            .push(b" state lost: model reset");
        l.print();
    }

    fn audit_skipped(&mut self, server: &str) {
        let mut l = Line::new();
        l.push(b"workload: audit not checked: ")
            .push(server.as_bytes())
            .push(b" lost its state");
        l.print();
    }

    fn progress(&mut self, server: TaskId, delta: WorkloadReport) {
        // Figures for the VMM's display only: a refusal costs the run nothing.
        let _ = ipc::progress(server, &delta);
    }

    fn mismatch(&mut self, what: &[u8], detail: u64) {
        self.shown += 1;
        if self.shown <= SHOWN {
            let mut l = Line::new();
            l.push(b"workload: mismatch in ")
                .push(what)
                .push(b" (")
                .push_dec(detail)
                .push(b")");
            l.print();
        }
    }
}

fn main(_me: TaskId, ops: u64, seed: u64) -> ! {
    let Some(model) = MODEL.take() else {
        ipc::panic(b"model taken twice")
    };
    let mut l = Line::new();
    l.push(b"workload: seed ").push_dec(seed).push(b", ");
    if ops != u64::MAX {
        l.push_dec(ops).push(b" ");
    }
    l.push(b"requests to names, kv, fs, bank, queue");
    if ops == u64::MAX {
        l.push(b" until the VM is stopped");
    }
    l.print();
    let mut t = Kernel::new();
    let Ok(clients) = connect(&mut t) else {
        userlib::console::println(b"workload: cannot look the servers up");
        stop(FAILED)
    };
    let mut names = clients.names;
    let crasher = names
        .lookup(&mut t, crasher_api::SERVER)
        .ok()
        .map(Crasher::new);
    let start = ipc::ticks();
    let mut console = Console { shown: 0, crasher };
    // Without requests of its own there is nothing to sweep (and the load clients' data, if
    // they run, is theirs).
    let mut f = match ops {
        0 => WorkloadReport::default(),
        _ => workload::run(&mut t, &mut console, clients, model, ops, seed),
    };
    let ticks = ipc::ticks() - start;
    // Its own requests' rate, over its own time: the load clients' figures are added after.
    let own = f.ops;
    wait_for_load_clients(&mut t, &mut names, &mut f);
    l.push(b"workload: ").push_dec(ticks * 10).push(b" ms");
    if let Some(rate) = (own * 100).checked_div(ticks).filter(|_| own > 0) {
        l.push(b", ").push_dec(rate).push(b" requests/s");
    }
    if f.ops > own {
        l.push(b"; the load clients made ")
            .push_dec(f.ops - own)
            .push(b" more requests");
    }
    l.print();
    // The result line comes last: it is what the run ends with.
    l.push(b"workload: ops=")
        .push_dec(f.ops)
        .push(b" errors=")
        .push_dec(f.errors);
    l.push(b" retries=")
        .push_dec(f.retries)
        .push(b" lost=")
        .push_dec(f.lost);
    l.push(b" mismatches=").push_dec(f.mismatches);
    l.print();
    if ipc::report(&f).is_err() {
        userlib::console::println(b"workload: the kernel refused the report");
    }
    stop(if f.mismatches == 0 { 0 } else { FAILED })
}

/// Waits for each load client (the system map's `Kind::Load` tasks) to finish (its WAIT reply)
/// and adds its figures to `f`.
fn wait_for_load_clients(t: &mut Kernel, names: &mut Names, f: &mut WorkloadReport) {
    for client in sysmap::TASKS
        .iter()
        .filter(|d| d.kind == sysmap::Kind::Load)
    {
        let name = client.name;
        let Ok(id) = names.lookup(t, name) else {
            continue;
        };
        let wait = Message::new(load::op::WAIT, [0; 6]);
        match ipc::call(id, &wait) {
            Ok(reply) => {
                let r = load::Figures::from_words(reply.words).report;
                f.ops += r.ops;
                f.errors += r.errors;
                f.retries += r.retries;
                f.lost += r.lost;
                f.mismatches += r.mismatches;
            }
            Err(_) => {
                let mut l = Line::new();
                l.push(b"workload: no figures from ").push(name.as_bytes());
                l.print();
                f.errors += 1;
            }
        }
    }
}

fn stop(status: u64) -> ! {
    let e = ipc::vm_exit(status);
    ipc::panic(match e.error {
        abi::ipc::Error::NotPermitted => b"may not stop the VM",
        _ => b"could not stop the VM",
    })
}
