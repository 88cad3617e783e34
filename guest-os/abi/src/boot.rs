//! The boot-info block: what the VMM tells the guest at entry.
//!
//! The VMM writes a [`BootInfo`] at [`crate::layout::BOOT_INFO_ADDR`] and enters the image's ELF
//! entry point in 64-bit mode with its address in `rdi` (and `rsi`). It carries the memory map, the
//! command line, the server regions from the manifest (as validated), the monitor page and the KVM
//! backend, so that the guest kernel can pick the system-call entry that works on it.

use crate::manifest::{MAX_SERVERS, ServerDecl};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `BootInfo::magic`.
pub const BOOT_INFO_MAGIC: u64 = 0x4f46_4e49_544f_4f42; // "BOOTINFO" little-endian
/// `BootInfo::version` this contract describes.
pub const BOOT_INFO_VERSION: u32 = 1;
/// Capacity of the memory map.
pub const MAX_MEMMAP: usize = 80;

/// The KVM implementation the VM runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Backend {
    /// Hardware virtualisation (VMX or SVM): ring 0 native, SYSCALL works.
    Hardware = 1,
    /// KVM-PVM: ring 0 emulated (no SSE there), SYSCALL does not reach CPL 0.
    Pvm = 2,
}

impl Backend {
    /// The backend with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::Hardware),
            2 => Some(Self::Pvm),
            _ => None,
        }
    }

    /// Lower-case name, as in reports: `hardware` or `pvm`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::Pvm => "pvm",
        }
    }
}

/// What a memory-map entry holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MemKind {
    /// The VMM's boot structures (GDT, page tables, boot-info, stack, command line).
    Reserved = 1,
    /// The kernel region from the manifest.
    Kernel = 2,
    /// The monitor page.
    Monitor = 3,
    /// A server's state arena (`MemRange::server` says which).
    ServerState = 4,
    /// A server's scratch region.
    ServerScratch = 5,
    /// RAM nobody declared: free for the kernel to use.
    Free = 6,
}

impl MemKind {
    /// The kind with this number, if any.
    pub const fn from_number(n: u32) -> Option<Self> {
        match n {
            1 => Some(Self::Reserved),
            2 => Some(Self::Kernel),
            3 => Some(Self::Monitor),
            4 => Some(Self::ServerState),
            5 => Some(Self::ServerScratch),
            6 => Some(Self::Free),
            _ => None,
        }
    }
}

/// One memory-map entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MemRange {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// A [`MemKind`] number.
    pub kind: u32,
    /// Server index for the server kinds, else 0.
    pub server: u32,
}

/// The block at [`crate::layout::BOOT_INFO_ADDR`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u64,
    /// [`BOOT_INFO_VERSION`].
    pub version: u32,
    /// `size_of::<BootInfo>()`, so that a guest can check it reads the layout it was built for.
    pub size: u32,
    /// A [`Backend`] number.
    pub backend: u32,
    /// The hypercall port ([`crate::hypercall::HYPERCALL_PORT`]).
    pub hypercall_port: u32,
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// Guest-physical address of the monitor page.
    pub monitor_page: u64,
    /// Guest-physical address of the NUL-terminated command line.
    pub cmdline_addr: u64,
    /// Length of the command line without its NUL.
    pub cmdline_len: u64,
    /// Used entries of `memmap`, sorted by base, covering all of guest RAM without overlap.
    pub memmap_len: u32,
    /// Used entries of `servers`.
    pub server_count: u32,
    /// The memory map.
    pub memmap: [MemRange; MAX_MEMMAP],
    /// The servers, as declared in the manifest and validated by the VMM.
    pub servers: [ServerDecl; MAX_SERVERS],
}

impl BootInfo {
    /// A block with magic, version and size set and everything else zero.
    pub fn empty() -> Self {
        let mut info = Self::new_zeroed();
        info.magic = BOOT_INFO_MAGIC;
        info.version = BOOT_INFO_VERSION;
        info.size = core::mem::size_of::<Self>() as u32;
        info
    }

    /// True when magic, version and size match this contract.
    pub fn is_valid(&self) -> bool {
        self.magic == BOOT_INFO_MAGIC
            && self.version == BOOT_INFO_VERSION
            && self.size as usize == core::mem::size_of::<Self>()
    }

    /// The used memory-map entries.
    pub fn memory_map(&self) -> &[MemRange] {
        let n = (self.memmap_len as usize).min(MAX_MEMMAP);
        &self.memmap[..n]
    }

    /// The used server entries.
    pub fn declared_servers(&self) -> &[ServerDecl] {
        let n = (self.server_count as usize).min(MAX_SERVERS);
        &self.servers[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::PAGE_SIZE;

    #[test]
    fn boot_info_fits_its_page() {
        assert!(core::mem::size_of::<BootInfo>() as u64 <= PAGE_SIZE);
    }

    #[test]
    fn validity_needs_magic_version_and_size() {
        let mut info = BootInfo::empty();
        assert!(info.is_valid());
        info.version = 2;
        assert!(!info.is_valid());
        let mut info = BootInfo::empty();
        info.size -= 8;
        assert!(!info.is_valid());
    }

    #[test]
    fn enums_round_trip() {
        for b in [Backend::Hardware, Backend::Pvm] {
            assert_eq!(Backend::from_number(b as u32), Some(b));
        }
        assert_eq!(Backend::from_number(0), None);
        for n in 1..=6 {
            assert_eq!(MemKind::from_number(n).map(|k| k as u32), Some(n));
        }
        assert_eq!(MemKind::from_number(7), None);
    }

    #[test]
    fn lengths_are_clamped() {
        let mut info = BootInfo::empty();
        info.memmap_len = u32::MAX;
        info.server_count = u32::MAX;
        assert_eq!(info.memory_map().len(), MAX_MEMMAP);
        assert_eq!(info.declared_servers().len(), MAX_SERVERS);
    }
}
