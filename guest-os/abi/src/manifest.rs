//! The region manifest: how an image tells the VMM which guest-physical regions it uses.
//!
//! An image built for this monitor carries one ELF note (in a `PT_NOTE` segment) named
//! [`NOTE_NAME`] of type [`NOTE_TYPE_MANIFEST`] whose descriptor is a [`Manifest`]. Images without
//! it are "plain" ELF images and boot the Firecracker way, with no monitor interface.
//!
//! The manifest declares the kernel region, the monitor page and, per server, two regions: its
//! *state arena* (the memory a snapshot copies; the VMM registers it as its own KVM memslot with
//! dirty-page logging) and its *scratch* (stack, receive buffer; its own memslot, not logged);
//! and where in the kernel region its code lies (its *text area*, for fault injection).
//! The VMM validates every field (alignment, bounds, overlaps) before it builds memory.
//!
//! A guest declares its manifest as a static in a `.note.crashmon` section:
//!
//! ```
//! use abi::manifest::{Manifest, ManifestNote, Range, ServerDecl};
//! let mut manifest = Manifest::EMPTY;
//! manifest.kernel = Range::new(0x10_0000, 0x10_0000);
//! manifest.monitor_page = 0x20_0000;
//! manifest.server_count = 1;
//! manifest.servers[0] = ServerDecl::new(
//!     b"kv",
//!     Range::new(0x40_0000, 0x10_0000),
//!     Range::new(0x50_0000, 0x1_0000),
//! );
//! let note = ManifestNote::new(manifest);
//! assert_eq!(note.desc.servers[0].name_str(), Some("kv"));
//! ```

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The note's name field ("CRASHMON" with its NUL, padded to 4 bytes).
pub const NOTE_NAME: [u8; 12] = *b"CRASHMON\0\0\0\0";
/// The note's `namesz`: the name's length including its NUL.
pub const NOTE_NAMESZ: u32 = 9;
/// The note type of the manifest.
pub const NOTE_TYPE_MANIFEST: u32 = 0x4352_0001;
/// `Manifest::magic`.
pub const MANIFEST_MAGIC: u32 = 0x4d52_4d43; // "CMRM" little-endian
/// `Manifest::version` this contract describes.
pub const MANIFEST_VERSION: u16 = 2;
/// Most servers an image may declare.
pub const MAX_SERVERS: usize = 16;
/// Bytes in a server name (ASCII, NUL-padded; at least one byte used).
pub const SERVER_NAME_LEN: usize = 16;

/// A guest-physical range `[base, base + size)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Range {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Range {
    /// A range from its base and size.
    pub const fn new(base: u64, size: u64) -> Self {
        Self { base, size }
    }

    /// One past the last byte, or `None` when that overflows.
    pub const fn end(&self) -> Option<u64> {
        self.base.checked_add(self.size)
    }

    /// True when the two ranges share at least one byte (empty ranges share none).
    pub const fn overlaps(&self, other: &Range) -> bool {
        if self.size == 0 || other.size == 0 {
            return false;
        }
        // Saturating ends: a range reaching the top of the address space still compares right.
        let a_end = self.base.saturating_add(self.size);
        let b_end = other.base.saturating_add(other.size);
        self.base < b_end && other.base < a_end
    }

    /// True when `other` lies entirely inside `self`.
    pub const fn contains_range(&self, other: &Range) -> bool {
        match (self.end(), other.end()) {
            (Some(a_end), Some(b_end)) => other.base >= self.base && b_end <= a_end,
            _ => false,
        }
    }

    /// True when `addr` lies inside the range.
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr - self.base < self.size
    }
}

/// One server's regions.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ServerDecl {
    /// ASCII name (letters, digits, `-`, `_`), NUL-padded.
    pub name: [u8; SERVER_NAME_LEN],
    /// The state arena: snapshotted, dirty-logged memslot.
    pub state: Range,
    /// Stack and receive buffer: its own memslot, not logged.
    pub scratch: Range,
}

impl ServerDecl {
    /// A declaration; `name` longer than [`SERVER_NAME_LEN`] is cut.
    pub const fn new(name: &[u8], state: Range, scratch: Range) -> Self {
        let mut buf = [0u8; SERVER_NAME_LEN];
        let mut i = 0;
        while i < name.len() && i < SERVER_NAME_LEN {
            buf[i] = name[i];
            i += 1;
        }
        Self {
            name: buf,
            state,
            scratch,
        }
    }

    /// The name, if it is a valid server name: 1-16 bytes of `[A-Za-z0-9_-]`, then only NULs.
    pub fn name_str(&self) -> Option<&str> {
        server_name(&self.name)
    }
}

/// `bytes` as a server name, if valid: 1-16 bytes of `[A-Za-z0-9_-]`, then only NULs.
pub const fn server_name(bytes: &[u8; SERVER_NAME_LEN]) -> Option<&str> {
    let mut len = 0;
    while len < SERVER_NAME_LEN && bytes[len] != 0 {
        let b = bytes[len];
        if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        len += 1;
    }
    let (name, rest) = bytes.split_at(len);
    if name.is_empty() || !all_zero(rest) {
        return None;
    }
    match core::str::from_utf8(name) {
        Ok(name) => Some(name),
        Err(_) => None,
    }
}

/// True when every byte is zero.
pub(crate) const fn all_zero(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != 0 {
            return false;
        }
        i += 1;
    }
    true
}

/// The manifest an image carries in its note.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Manifest {
    /// [`MANIFEST_MAGIC`].
    pub magic: u32,
    /// [`MANIFEST_VERSION`].
    pub version: u16,
    /// How many entries of `servers` are used (at most [`MAX_SERVERS`]).
    pub server_count: u16,
    /// The kernel's region: every loadable segment that is not a server's lies inside it.
    pub kernel: Range,
    /// Guest-physical address of the monitor page (one page, outside every other region).
    pub monitor_page: u64,
    /// Bit `i` set: entry `i` of `servers` is an *app* (a client task: its regions are
    /// declared like a server's, but it has no message boundaries and is never recovered);
    /// bits at or past `server_count` must be zero. Images that set none declare only servers.
    pub apps: u64,
    /// Server declarations; entries past `server_count` are ignored.
    pub servers: [ServerDecl; MAX_SERVERS],
    /// Per entry of `servers`: its text area (its code and read-only data, inside the kernel
    /// region), where the VMM finds the instructions a code fault rewrites (`vmm run --fault
    /// kv:flip-branch@N`: the image's executable segments inside it). Size 0: not declared
    /// (no code faults for it).
    pub text: [Range; MAX_SERVERS],
}

impl Manifest {
    /// A manifest with the magic and version set and nothing declared.
    pub const EMPTY: Manifest = Manifest {
        magic: MANIFEST_MAGIC,
        version: MANIFEST_VERSION,
        server_count: 0,
        kernel: Range::new(0, 0),
        monitor_page: 0,
        apps: 0,
        servers: [ServerDecl {
            name: [0; SERVER_NAME_LEN],
            state: Range::new(0, 0),
            scratch: Range::new(0, 0),
        }; MAX_SERVERS],
        text: [Range::new(0, 0); MAX_SERVERS],
    };

    /// True when entry `i` is declared an app (see [`Manifest::apps`]).
    pub const fn is_app(&self, i: usize) -> bool {
        i < 64 && self.apps & (1 << i) != 0
    }

    /// The declared servers (at most [`MAX_SERVERS`], whatever `server_count` says).
    pub fn declared_servers(&self) -> &[ServerDecl] {
        let n = usize::from(self.server_count).min(MAX_SERVERS);
        &self.servers[..n]
    }
}

/// The whole ELF note: header, name, then the manifest as its descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ManifestNote {
    /// [`NOTE_NAMESZ`].
    pub namesz: u32,
    /// Size of the descriptor: `size_of::<Manifest>()`.
    pub descsz: u32,
    /// [`NOTE_TYPE_MANIFEST`].
    pub ntype: u32,
    /// [`NOTE_NAME`].
    pub name: [u8; 12],
    /// The descriptor.
    pub desc: Manifest,
}

impl ManifestNote {
    /// The note carrying `manifest`.
    pub const fn new(manifest: Manifest) -> Self {
        Self {
            namesz: NOTE_NAMESZ,
            descsz: core::mem::size_of::<Manifest>() as u32,
            ntype: NOTE_TYPE_MANIFEST,
            name: NOTE_NAME,
            desc: manifest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_layout_is_what_elf_readers_expect() {
        // 12-byte header, 12-byte padded name, descriptor at an 8-byte boundary.
        assert_eq!(core::mem::offset_of!(ManifestNote, desc), 24);
        assert_eq!(core::mem::size_of::<Manifest>() % 8, 0);
        let note = ManifestNote::new(Manifest::EMPTY);
        let bytes = note.as_bytes();
        assert_eq!(&bytes[12..21], b"CRASHMON\0");
        assert_eq!(
            u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize,
            bytes.len() - 24
        );
    }

    #[test]
    fn server_names_are_checked() {
        let r = Range::new(0, 0);
        assert_eq!(
            ServerDecl::new(b"kv-store_2", r, r).name_str(),
            Some("kv-store_2")
        );
        assert_eq!(ServerDecl::new(b"", r, r).name_str(), None);
        assert_eq!(ServerDecl::new(b"bad name", r, r).name_str(), None);
        let mut decl = ServerDecl::new(b"kv", r, r);
        decl.name[5] = b'x'; // garbage after the NUL
        assert_eq!(decl.name_str(), None);
        assert_eq!(
            ServerDecl::new(b"sixteen-chars-ok", r, r).name_str(),
            Some("sixteen-chars-ok")
        );
    }

    #[test]
    fn range_arithmetic() {
        let a = Range::new(0x1000, 0x1000);
        assert!(a.overlaps(&Range::new(0x1fff, 1)));
        assert!(!a.overlaps(&Range::new(0x2000, 1)));
        assert!(!a.overlaps(&Range::new(0x1000, 0)));
        assert!(Range::new(u64::MAX - 1, 2).overlaps(&Range::new(u64::MAX - 1, 1)));
        assert!(a.contains_range(&Range::new(0x1800, 0x800)));
        assert!(!a.contains_range(&Range::new(0x1800, 0x801)));
        assert!(!a.contains_range(&Range::new(u64::MAX, 2)));
        assert!(a.contains(0x1fff) && !a.contains(0x2000));
        assert_eq!(Range::new(u64::MAX, 1).end(), None);
    }

    #[test]
    fn declared_servers_never_exceed_the_array() {
        let mut m = Manifest::EMPTY;
        m.server_count = u16::MAX;
        assert_eq!(m.declared_servers().len(), MAX_SERVERS);
    }
}
