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
}

// Every account has its audit counter in kv.
const _: () = assert!(ACCOUNTS <= kv_api::COUNTERS);

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
