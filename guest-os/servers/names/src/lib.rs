//! The name server's state and request handling (interface: `names-api`): a cache of the
//! kernel's task table (names, endpoint ids with generations, states). The kernel owns the
//! generations; the cache is filled when the server starts and refreshed on request, both
//! through the `kernel` function the caller passes (the `TaskInfo` system call in the task).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{MSG_WORDS, Message, REPLY_OK, TaskId, pack_name};
use names_api::{code, op};
use zerocopy::FromZeros;

/// Most tasks cached.
pub const MAX_TASKS: usize = abi::manifest::MAX_SERVERS;

/// What the kernel says about task `index`: id, name, state; `None` past the last task.
pub type KernelInfo<'a> = &'a mut dyn FnMut(u16) -> Option<(TaskId, [u8; 16], u64)>;

/// One cached entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
pub struct Cached {
    name: [u64; 2],
    id: u64,
    state: u64,
}

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Table {
    entries: [Cached; MAX_TASKS],
    count: u64,
}

impl Table {
    /// Fills the cache from the kernel's task table.
    pub fn load(&mut self, kernel: KernelInfo<'_>) {
        let mut n = 0;
        while n < MAX_TASKS && self.refresh(n, kernel) {
            n += 1;
        }
        self.count = n as u64;
    }

    fn refresh(&mut self, index: usize, kernel: KernelInfo<'_>) -> bool {
        let Some((id, name, state)) = kernel(index as u16) else {
            return false;
        };
        let Some(e) = self.entries.get_mut(index) else {
            return false;
        };
        *e = Cached {
            name: pack_name(&name),
            id: id.0,
            state,
        };
        true
    }

    /// True before the cache is filled.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Handles one request. LOOKUP and ENTRY change nothing (they are declared read-only, and
    /// the VMM checks it); REFRESH writes the entry it re-reads.
    pub fn handle(&mut self, msg: &Message, kernel: KernelInfo<'_>) -> Message {
        let w = msg.words;
        let n = self.count as usize;
        let index = usize::try_from(w[0]).ok().filter(|&i| i < n);
        let reply = |words| Message::new(REPLY_OK, words);
        let fail = |code| Message::new(code, [0; MSG_WORDS]);
        match (msg.label, index) {
            // Names never change, generations do: the entry is found in the cache and its id
            // read again, so that a client never starts with an id older than the server's
            // last restart (after a fresh restart, such an id is answered "state lost").
            (op::LOOKUP, _) => match self.entries[..n]
                .iter()
                .position(|e| e.name == [w[0], w[1]])
            {
                Some(i) => match kernel(i as u16) {
                    Some((id, _, _)) => reply([id.0, 0, 0, 0, 0, 0]),
                    None => fail(code::NOT_FOUND),
                },
                None => fail(code::NOT_FOUND),
            },
            (op::ENTRY, Some(i)) => {
                let e = self.entries[i];
                reply([e.name[0], e.name[1], e.id, e.state, 0, 0])
            }
            (op::REFRESH, Some(i)) => {
                self.refresh(i, kernel);
                reply([self.entries[i].id, 0, 0, 0, 0, 0])
            }
            (op::ENTRY | op::REFRESH, None) => fail(code::NOT_FOUND),
            _ => fail(code::BAD_REQUEST),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::{ClientError, Loopback};
    use names_api::Names;

    fn kernel(generation: u32) -> impl FnMut(u16) -> Option<(TaskId, [u8; 16], u64)> {
        move |i| {
            let name: &[u8] = [b"names".as_slice(), b"kv", b"fs"].get(usize::from(i))?;
            let mut n = [0u8; 16];
            n[..name.len()].copy_from_slice(name);
            Some((TaskId::new(i, generation), n, 0))
        }
    }

    #[test]
    fn lookups_and_refreshes_answer_the_kernel_s_current_id() {
        let mut table = Box::new(Table::new_zeroed());
        assert!(table.is_empty());
        table.load(&mut kernel(0));
        assert!(!table.is_empty());
        let generation = core::cell::Cell::new(0);
        let mut t = Loopback(|_, m: &Message| table.handle(m, &mut kernel(generation.get())));
        let mut names = Names::well_known();
        assert_eq!(names.lookup(&mut t, "kv"), Ok(TaskId::new(1, 0)));
        assert_eq!(
            names.lookup(&mut t, "nope"),
            Err(ClientError::Server(code::NOT_FOUND))
        );
        assert_eq!(names.entry(&mut t, 2).map(|e| e.id), Ok(TaskId::new(2, 0)));
        assert_eq!(
            names.entry(&mut t, 3),
            Err(ClientError::Server(code::NOT_FOUND))
        );
        generation.set(4);
        assert_eq!(
            names.lookup(&mut t, "kv"),
            Ok(TaskId::new(1, 4)),
            "not the cached 0"
        );
        assert_eq!(
            names.entry(&mut t, 2).map(|e| e.id),
            Ok(TaskId::new(2, 0)),
            "cached"
        );
        assert_eq!(names.refresh(&mut t, 2), Ok(TaskId::new(2, 4)));
        assert_eq!(names.entry(&mut t, 2).map(|e| e.id), Ok(TaskId::new(2, 4)));
    }
}
