//! The `bank` server task: `bank::Bank` in its state arena, served by userlib's loop. Before
//! its first boundary it looks kv and queue up at the name server: it audits every balance
//! change in kv and journals it in queue.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use bank::Bank;
use names_api::Names;
use userlib::console::println;
use userlib::ipc::Kernel;
use userlib::state::StaticCell;
use userlib::{Message, TaskId};

userlib::entry!(main);
userlib::requests_note!(bank_api::REQUESTS);

static STATE: StaticCell<Bank> = StaticCell::new();

fn main(_me: TaskId, _arg0: u64, _arg1: u64) -> ! {
    userlib::server::run_with(&STATE, b"bank", connect, handle)
}

/// Looks kv and queue up, unless the state (restored after a crash) already knows them.
fn connect(state: &mut Bank) {
    if !state.audit_connected() {
        match Names::well_known().lookup(&mut Kernel::new(), kv_api::SERVER) {
            Ok(kv) => state.connect_audit(kv),
            Err(_) => println(b"bank: kv not found: balance changes are not audited"),
        }
    }
    if !state.journal_connected() {
        match Names::well_known().lookup(&mut Kernel::new(), queue_api::SERVER) {
            Ok(queue) => state.connect_journal(queue),
            Err(_) => println(b"bank: queue not found: balance changes are not journaled"),
        }
    }
}

fn handle(state: &mut Bank, _: TaskId, msg: &Message) -> Option<Message> {
    let (audits, entries) = (state.audit_failures(), state.journal_failures());
    let reply = state.handle(msg, &mut Kernel::new());
    if audits == 0 && state.audit_failures() != 0 {
        println(b"bank: an audit in kv failed: kv's counters no longer follow the balances");
    }
    if entries == 0 && state.journal_failures() != 0 {
        println(b"bank: a journal entry failed: the journal no longer holds every change");
    }
    Some(reply)
}
