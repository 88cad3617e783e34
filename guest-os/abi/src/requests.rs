//! Request semantics as data: each server declares its requests once, in a table its `*-api`
//! crate defines ([`RequestTable`]), and the image carries every server's table, so that the
//! VMM learns what a request means from the image instead of from a list of names it knows.
//!
//! A request is a message label (1 to [`MAX_LABEL`]) with a name and two facts recovery needs:
//! whether it *changes state* (the kernel snapshots a server only at the boundaries that close a
//! state-changing request) and whether it is *idempotent* (delivering it twice has the effect of
//! once: a recovery policy may replay it). A label a table does not declare is taken at its most
//! cautious: state-changing, not idempotent.
//!
//! How a table reaches the VMM:
//!
//! ```text
//!  kv-api:  pub const REQUESTS: RequestTable = RequestTable::new(SERVER, &[...]);
//!  kv:      userlib::declare_requests!(kv_api::REQUESTS);   a RequestsNote in section
//!                                                            .crashmon.requests of the binary
//!  image build (guest-builder): every task's note, copied into the kernel image's PT_NOTE
//!           segment beside the region manifest (name "CRASHMON", type NOTE_TYPE_REQUESTS)
//!  vmm:     reads and checks every table when it reads the image (a bad one refuses the image)
//! ```
//!
//! An image built another way carries the same notes: one [`RequestsNote`] per server, in any
//! `PT_NOTE` segment. A server without one gets the cautious answer for every label.

use crate::manifest::{NOTE_NAME, NOTE_NAMESZ, SERVER_NAME_LEN, all_zero};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The note type of a request table.
pub const NOTE_TYPE_REQUESTS: u32 = 0x4352_0002;
/// Most requests one table declares.
pub const MAX_REQUESTS: usize = 32;
/// Largest label a table may declare (labels index a 64-bit mask; 0 is not a request).
pub const MAX_LABEL: u64 = 63;
/// Bytes of a request's name (ASCII capitals, digits and `_`, NUL-padded).
pub const REQUEST_NAME_LEN: usize = 12;

/// One declared request.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RequestDecl {
    /// The message label.
    pub label: u16,
    /// [`RequestDecl::CHANGES_STATE`], [`RequestDecl::IDEMPOTENT`].
    pub flags: u16,
    /// Its name, NUL-padded.
    pub name: [u8; REQUEST_NAME_LEN],
}

impl RequestDecl {
    /// `flags`: the request may change the server's state.
    pub const CHANGES_STATE: u16 = 1 << 0;
    /// `flags`: delivering it twice has the effect of delivering it once.
    pub const IDEMPOTENT: u16 = 1 << 1;

    /// A declaration; a name longer than [`REQUEST_NAME_LEN`] is cut (and then refused by
    /// [`RequestTable::check`] only if what is left is not a valid name).
    pub const fn new(label: u64, name: &str, flags: u16) -> Self {
        let mut buf = [0u8; REQUEST_NAME_LEN];
        let bytes = name.as_bytes();
        let mut i = 0;
        while i < bytes.len() && i < REQUEST_NAME_LEN {
            buf[i] = bytes[i];
            i += 1;
        }
        Self {
            label: if label > u16::MAX as u64 {
                u16::MAX
            } else {
                label as u16
            },
            flags,
            name: buf,
        }
    }

    /// True when it may change the server's state.
    pub const fn changes_state(&self) -> bool {
        self.flags & Self::CHANGES_STATE != 0
    }

    /// True when it is idempotent.
    pub const fn idempotent(&self) -> bool {
        self.flags & Self::IDEMPOTENT != 0
    }

    /// Its name, if valid: 1-12 bytes of `[A-Z0-9_]` starting with a letter, then only NULs.
    pub const fn name_str(&self) -> Option<&str> {
        let mut len = 0;
        while len < REQUEST_NAME_LEN && self.name[len] != 0 {
            let b = self.name[len];
            let first_ok = len > 0 || b.is_ascii_uppercase();
            if !first_ok || !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
                return None;
            }
            len += 1;
        }
        let (name, rest) = self.name.split_at(len);
        if name.is_empty() || !all_zero(rest) {
            return None;
        }
        match core::str::from_utf8(name) {
            Ok(name) => Some(name),
            Err(_) => None,
        }
    }

    /// True when every field is zero (an unused entry).
    const fn is_zero(&self) -> bool {
        self.label == 0 && self.flags == 0 && all_zero(&self.name)
    }
}

/// Why a request table is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// `count` above [`MAX_REQUESTS`].
    TooMany(u16),
    /// The server name is not a valid server name.
    ServerName,
    /// A label of 0 or above [`MAX_LABEL`].
    Label(u16),
    /// The same label twice.
    DuplicateLabel(u16),
    /// A name that is not 1-12 of `[A-Z0-9_]` starting with a letter.
    Name(u16),
    /// Flags other than the two defined.
    Flags(u16),
    /// Bytes past `count`, or in the reserved field, that are not zero.
    Garbage,
}

impl TableError {
    /// What is wrong, without the numbers (for a compile-time error, where nothing can be
    /// formatted).
    pub const fn what(&self) -> &'static str {
        match self {
            Self::TooMany(_) => "a request table declares more than abi::requests::MAX_REQUESTS",
            Self::ServerName => "a request table's server name is not 1-16 of [A-Za-z0-9_-]",
            Self::Label(_) => "a request label is outside 1..=63",
            Self::DuplicateLabel(_) => "a request label is declared twice",
            Self::Name(_) => "a request name is not 1-12 of [A-Z0-9_] starting with a letter",
            Self::Flags(_) => "a request has unknown flags",
            Self::Garbage => "a request table's unused entries or reserved bytes are not zero",
        }
    }
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooMany(n) => write!(f, "declares {n} requests, at most {MAX_REQUESTS}"),
            Self::ServerName => f.write_str("its server name is not 1-16 of [A-Za-z0-9_-]"),
            Self::Label(l) => write!(f, "label {l} is outside 1..={MAX_LABEL}"),
            Self::DuplicateLabel(l) => write!(f, "label {l} is declared twice"),
            Self::Name(l) => write!(f, "label {l} has a name that is not 1-12 of [A-Z0-9_]"),
            Self::Flags(l) => write!(f, "label {l} has unknown flags"),
            Self::Garbage => f.write_str("unused entries or reserved bytes are not zero"),
        }
    }
}

/// One server's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RequestTable {
    /// The server's name as the manifest declares it (NUL-padded).
    pub server: [u8; SERVER_NAME_LEN],
    /// How many entries of `requests` are used.
    pub count: u16,
    /// Zero.
    pub reserved: [u8; 6],
    /// The declarations; entries past `count` are zero.
    pub requests: [RequestDecl; MAX_REQUESTS],
}

impl RequestTable {
    /// The table of server `server` declaring `requests` (at most [`MAX_REQUESTS`]: a longer
    /// list fails to compile where the table is a constant).
    pub const fn new(server: &str, requests: &[RequestDecl]) -> Self {
        assert!(requests.len() <= MAX_REQUESTS, "too many requests");
        let mut name = [0u8; SERVER_NAME_LEN];
        let bytes = server.as_bytes();
        let mut i = 0;
        while i < bytes.len() && i < SERVER_NAME_LEN {
            name[i] = bytes[i];
            i += 1;
        }
        let mut table = [RequestDecl {
            label: 0,
            flags: 0,
            name: [0; REQUEST_NAME_LEN],
        }; MAX_REQUESTS];
        let mut j = 0;
        while j < requests.len() {
            table[j] = requests[j];
            j += 1;
        }
        Self {
            server: name,
            count: requests.len() as u16,
            reserved: [0; 6],
            requests: table,
        }
    }

    /// The server's name, if valid.
    pub const fn server_str(&self) -> Option<&str> {
        crate::manifest::server_name(&self.server)
    }

    /// The declared requests (at most [`MAX_REQUESTS`], whatever `count` says).
    pub const fn declared(&self) -> &[RequestDecl] {
        let count = if (self.count as usize) < MAX_REQUESTS {
            self.count as usize
        } else {
            MAX_REQUESTS
        };
        self.requests.split_at(count).0
    }

    /// The declaration of `label`, if any.
    pub const fn find(&self, label: u64) -> Option<&RequestDecl> {
        let mut i = 0;
        while i < self.count as usize && i < MAX_REQUESTS {
            if self.requests[i].label as u64 == label {
                return Some(&self.requests[i]);
            }
            i += 1;
        }
        None
    }

    /// True when request `label` may change the server's state (an undeclared label may).
    pub const fn changes_state(&self, label: u64) -> bool {
        match self.find(label) {
            Some(r) => r.changes_state(),
            None => true,
        }
    }

    /// True when request `label` is declared idempotent (an undeclared label is not).
    pub const fn idempotent(&self, label: u64) -> bool {
        match self.find(label) {
            Some(r) => r.idempotent(),
            None => false,
        }
    }

    /// The name of request `label`, if it is declared with a valid one.
    pub fn name_of(&self, label: u64) -> Option<&str> {
        self.find(label).and_then(RequestDecl::name_str)
    }

    /// Bit `l` set for each label `l` declared read-only (not state-changing).
    pub fn read_only_mask(&self) -> u64 {
        self.declared()
            .iter()
            .filter(|r| !r.changes_state() && u64::from(r.label) <= MAX_LABEL)
            .fold(0, |mask, r| mask | 1 << r.label)
    }

    /// Checks everything a reader must not trust: the count, the server name, every label
    /// (1 to [`MAX_LABEL`], each once), name and flags, and that unused bytes are zero.
    pub const fn check(&self) -> Result<(), TableError> {
        if self.count as usize > MAX_REQUESTS {
            return Err(TableError::TooMany(self.count));
        }
        if self.server_str().is_none() {
            return Err(TableError::ServerName);
        }
        let mut seen = 0u64;
        let declared = self.declared();
        let mut i = 0;
        while i < declared.len() {
            let r = &declared[i];
            if r.label == 0 || r.label as u64 > MAX_LABEL {
                return Err(TableError::Label(r.label));
            }
            if seen & 1 << r.label != 0 {
                return Err(TableError::DuplicateLabel(r.label));
            }
            seen |= 1 << r.label;
            if r.name_str().is_none() {
                return Err(TableError::Name(r.label));
            }
            if r.flags & !(RequestDecl::CHANGES_STATE | RequestDecl::IDEMPOTENT) != 0 {
                return Err(TableError::Flags(r.label));
            }
            i += 1;
        }
        if !all_zero(&self.reserved) {
            return Err(TableError::Garbage);
        }
        let mut j = declared.len();
        while j < MAX_REQUESTS {
            if !self.requests[j].is_zero() {
                return Err(TableError::Garbage);
            }
            j += 1;
        }
        Ok(())
    }
}

/// A request table as an ELF note: header, name, then the table as its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RequestsNote {
    /// [`NOTE_NAMESZ`].
    pub namesz: u32,
    /// `size_of::<RequestTable>()`.
    pub descsz: u32,
    /// [`NOTE_TYPE_REQUESTS`].
    pub ntype: u32,
    /// [`NOTE_NAME`].
    pub name: [u8; 12],
    /// The table.
    pub desc: RequestTable,
}

impl RequestsNote {
    /// The note carrying `table`.
    pub const fn new(table: RequestTable) -> Self {
        Self {
            namesz: NOTE_NAMESZ,
            descsz: core::mem::size_of::<RequestTable>() as u32,
            ntype: NOTE_TYPE_REQUESTS,
            name: NOTE_NAME,
            desc: table,
        }
    }
}

/// Declares a server's requests once, in its `*-api` crate: the `op` module of label constants
/// and the `REQUESTS` table ([`RequestTable`]). Each request is `NAME = LABEL` followed by its
/// facts, `changes_state` and `idempotent` (none: read-only, not idempotent).
///
/// ```
/// abi::declare_requests! {
///     server "kv";
///     /// Store a value under a key.
///     PUT = 1, changes_state, idempotent;
///     /// Read a key's value.
///     GET = 2, idempotent;
/// }
/// assert_eq!(op::GET, 2);
/// assert!(REQUESTS.changes_state(op::PUT) && !REQUESTS.changes_state(op::GET));
/// assert_eq!(REQUESTS.name_of(op::PUT), Some("PUT"));
/// ```
///
/// A table the VMM would refuse ([`RequestTable::check`]) fails to compile, naming what is
/// wrong: a label outside 1..=63,
///
/// ```compile_fail,E0080
/// abi::declare_requests! { server "kv"; GET = 64, idempotent; }
/// ```
///
/// a label declared twice, or a name that is not capitals, digits and `_`:
///
/// ```compile_fail,E0080
/// abi::declare_requests! { server "kv"; GET = 2, idempotent; PEEK = 2, idempotent; }
/// ```
///
/// ```compile_fail,E0080
/// abi::declare_requests! { server "kv"; Get = 2, idempotent; }
/// ```
#[macro_export]
macro_rules! declare_requests {
    (server $server:literal; $($(#[$doc:meta])* $name:ident = $label:literal $(, $flag:ident)* ;)+) => {
        /// Opcodes (message labels).
        pub mod op {
            $($(#[$doc])* pub const $name: u64 = $label;)+
        }

        /// Every request of this server with what recovery needs to know of it, declared once
        /// (`abi::requests`): the image carries this table, the kernel and the VMM read it.
        pub const REQUESTS: $crate::requests::RequestTable = $crate::requests::RequestTable::new(
            $server,
            &[$($crate::requests::RequestDecl::new(
                $label,
                stringify!($name),
                0 $(| $crate::declare_requests!(@flag $flag))*,
            ),)+],
        );

        // A table the VMM would refuse does not compile.
        const _: () = match REQUESTS.check() {
            Ok(()) => (),
            Err(e) => panic!("{}", e.what()),
        };
    };
    (@flag changes_state) => {
        $crate::requests::RequestDecl::CHANGES_STATE
    };
    (@flag idempotent) => {
        $crate::requests::RequestDecl::IDEMPOTENT
    };
}

/// The name of the section a server binary carries its [`RequestsNote`] in (not loaded; the
/// image build copies it into the kernel image's notes).
pub const REQUESTS_SECTION: &str = ".crashmon.requests";

#[cfg(test)]
mod tests {
    use super::*;

    const S: u16 = RequestDecl::CHANGES_STATE;
    const I: u16 = RequestDecl::IDEMPOTENT;

    fn table() -> RequestTable {
        RequestTable::new(
            "kv",
            &[
                RequestDecl::new(1, "PUT", S | I),
                RequestDecl::new(2, "GET", I),
                RequestDecl::new(3, "DELETE", S),
            ],
        )
    }

    #[test]
    fn answers_come_from_the_table_and_strangers_are_cautious() {
        let t = table();
        assert_eq!(t.check(), Ok(()));
        assert_eq!(t.server_str(), Some("kv"));
        assert!(t.changes_state(1) && t.idempotent(1));
        assert!(!t.changes_state(2) && t.idempotent(2));
        assert!(t.changes_state(3) && !t.idempotent(3));
        assert!(t.changes_state(9) && !t.idempotent(9), "undeclared");
        assert_eq!(t.name_of(3), Some("DELETE"));
        assert_eq!(t.name_of(9), None);
        assert_eq!(t.read_only_mask(), 1 << 2);
    }

    #[test]
    fn the_note_layout_matches_the_manifest_s() {
        assert_eq!(core::mem::offset_of!(RequestsNote, desc), 24);
        assert_eq!(core::mem::size_of::<RequestTable>() % 8, 0);
        assert_eq!(core::mem::size_of::<RequestDecl>(), 16);
    }

    #[test]
    fn malformed_tables_are_refused() {
        let bad = |f: &dyn Fn(&mut RequestTable)| {
            let mut t = table();
            f(&mut t);
            t.check().expect_err("refused")
        };
        assert_eq!(bad(&|t| t.count = 33), TableError::TooMany(33));
        assert_eq!(bad(&|t| t.server = [b' '; 16]), TableError::ServerName);
        assert_eq!(bad(&|t| t.requests[0].label = 0), TableError::Label(0));
        assert_eq!(bad(&|t| t.requests[0].label = 64), TableError::Label(64));
        assert_eq!(
            bad(&|t| t.requests[1].label = 1),
            TableError::DuplicateLabel(1)
        );
        assert_eq!(
            bad(&|t| t.requests[0].name = *b"put\0\0\0\0\0\0\0\0\0"),
            TableError::Name(1)
        );
        assert_eq!(bad(&|t| t.requests[0].name = [0; 12]), TableError::Name(1));
        assert_eq!(bad(&|t| t.requests[0].flags = 4), TableError::Flags(1));
        assert_eq!(bad(&|t| t.requests[5].label = 7), TableError::Garbage);
        assert_eq!(bad(&|t| t.reserved[2] = 1), TableError::Garbage);
    }
}
