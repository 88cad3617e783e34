//! What the workload believes each server holds. Plain data valid as zeros: it lives in the
//! workload's state arena.

use zerocopy::FromZeros;

/// Keys the workload uses (0..KEYS).
pub const KEYS: usize = 200;
/// File names the workload uses (`f0`..).
pub const NAMES: usize = 16;
/// Accounts the workload uses (0..ACCOUNTS).
pub const ACCOUNTS: usize = 16;
/// Farthest a write reaches into a file.
pub const FILE_SPAN: usize = 256;
/// Queues the workload uses (0..QUEUES).
pub const QUEUES: usize = 4;

/// One key.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
pub struct KvEntry {
    /// 1 when present.
    pub present: u64,
    /// Value length.
    pub len: u64,
    /// Value bytes.
    pub bytes: [u8; kv_api::VALUE_MAX],
}

/// One file name.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
pub struct FileEntry {
    /// 1 when the file exists.
    pub present: u64,
    /// Its handle (the last one, stale once unlinked).
    pub handle: u64,
    /// Its size.
    pub size: u64,
    /// Its bytes.
    pub data: [u8; FILE_SPAN],
}

/// One account.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
pub struct AccountEntry {
    /// 1 when open.
    pub open: u64,
    /// Balance.
    pub balance: u64,
}

/// One queue entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromZeros)]
#[repr(C)]
pub struct QueueEntry {
    /// Its number in its queue.
    pub seq: u64,
    /// Its words.
    pub data: [u64; 3],
}

/// One queue: a ring of at most `queue_api::CAPACITY` entries, as the server keeps it.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
pub struct QueueModel {
    /// Index of the oldest entry in `entries`.
    pub head: u64,
    /// Entries held.
    pub len: u64,
    /// Entries pushed so far.
    pub pushed: u64,
    /// The ring.
    pub entries: [QueueEntry; queue_api::CAPACITY],
}

impl QueueModel {
    /// The oldest entry.
    pub fn oldest(&self) -> Option<QueueEntry> {
        (self.len > 0).then(|| self.entries[self.head as usize % queue_api::CAPACITY])
    }

    /// Drops the oldest entry.
    pub fn drop_oldest(&mut self) {
        self.head = (self.head + 1) % queue_api::CAPACITY as u64;
        self.len -= 1;
    }

    /// Appends `data` (dropping the oldest entry of a full queue); its number, and whether one
    /// was dropped.
    pub fn push(&mut self, data: [u64; 3]) -> (u64, bool) {
        let dropped = self.len == queue_api::CAPACITY as u64;
        if dropped {
            self.drop_oldest();
        }
        self.pushed += 1;
        let at = (self.head + self.len) as usize % queue_api::CAPACITY;
        self.entries[at] = QueueEntry {
            seq: self.pushed,
            data,
        };
        self.len += 1;
        (self.pushed, dropped)
    }

    /// Entries left after dropping every one numbered `seq` or lower.
    pub fn ack(&mut self, seq: u64) -> u64 {
        while self.oldest().is_some_and(|e| e.seq <= seq) {
            self.drop_oldest();
        }
        self.len
    }
}

/// The whole model.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Model {
    /// kv.
    pub kv: [KvEntry; KEYS],
    /// fs.
    pub files: [FileEntry; NAMES],
    /// bank.
    pub accounts: [AccountEntry; ACCOUNTS],
    /// queue.
    pub queues: [QueueModel; QUEUES],
    /// Balance changes of the workload's accounts the bank made: what its journal queue must
    /// have taken.
    pub journaled: u64,
}

// Every account has its audit counter in kv, and all of them share one journal queue.
const _: () = assert!(ACCOUNTS <= kv_api::COUNTERS);
const _: () = assert!(ACCOUNTS as u64 <= bank_api::JOURNAL_ACCOUNTS);
// The workload's queues are below the bank's journals.
const _: () = assert!((QUEUES as u64) < queue_api::JOURNALS);

impl Model {
    /// kv lost its state: no key is present.
    pub fn forget_kv(&mut self) {
        self.kv.zero();
    }

    /// fs lost its state: no file exists.
    pub fn forget_files(&mut self) {
        self.files.zero();
    }

    /// The bank lost its state: no account is open.
    pub fn forget_accounts(&mut self) {
        self.accounts.zero();
    }

    /// The queue server lost its state: every queue is empty, nothing pushed.
    pub fn forget_queues(&mut self) {
        self.queues.zero();
    }
}

/// The name of file `i`: `f0` .. `f15`.
pub fn file_name(i: usize) -> [u8; 3] {
    let i = i % NAMES;
    if i < 10 {
        [b'f', b'0' + i as u8, 0]
    } else {
        [b'f', b'1', b'0' + (i - 10) as u8]
    }
}

/// The used bytes of a file name.
pub fn name_bytes(name: &[u8; 3]) -> &[u8] {
    let len = name.iter().position(|&b| b == 0).unwrap_or(3);
    &name[..len]
}
