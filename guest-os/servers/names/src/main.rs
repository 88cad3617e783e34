//! The name server task: `names::Table` in its state arena, filled from the kernel's task table
//! when it starts.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use userlib::TaskId;
use userlib::ipc::task_info;

fn kernel(index: u16) -> Option<(TaskId, [u8; 16], u64)> {
    task_info(index).ok()
}

// The cache is filled before the first boundary (every task is set up by the time names
// runs), so that no request but REFRESH writes it.
userlib::server_main!(
    b"names",
    names::Table,
    names_api::REQUESTS,
    init = |table| {
        if table.is_empty() {
            table.load(&mut kernel);
        }
    },
    |table, _, msg| Some(table.handle(msg, &mut kernel))
);
