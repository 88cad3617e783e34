//! The fixed guest-physical layout the VMM builds below [`RESERVED_END`] before entering the guest.
//!
//! ```text
//!  0x0000_0000 +--------------------------+
//!              | (unused)                 |
//!  0x0000_0500 | GDT (5 descriptors)      |
//!  0x0000_1000 | PML4                     |
//!  0x0000_2000 | PDPT                     |
//!  0x0000_3000 | 4 page directories       |  identity map of the first 4 GiB, 2 MiB pages
//!  0x0000_7000 | boot-info / zero page    |  pointer passed in RDI (our images) and RSI (all)
//!  0x0000_8000 | boot stack (RSP = 0x8ff0)|
//!  0x0000_9000 | command line (NUL-ended) |
//!  0x0000_A000 +--------------------------+  RESERVED_END: images may load from here up
//! ```
//!
//! The same layout serves our own images and plain ELF images (which follow Firecracker's 64-bit
//! boot convention: zero page pointer in RSI, GDT at 0x500, CS = 0x08, DS = 0x10).

/// Size of a guest page.
pub const PAGE_SIZE: u64 = 0x1000;
/// Guest-physical address of the GDT the VMM installs.
pub const GDT_ADDR: u64 = 0x500;
/// Number of descriptors in that GDT.
pub const GDT_ENTRIES: usize = 5;
/// Top-level page table.
pub const PML4_ADDR: u64 = 0x1000;
/// Page-directory-pointer table (covers 512 GiB; the first 4 entries are used).
pub const PDPT_ADDR: u64 = 0x2000;
/// First of [`PD_COUNT`] page directories, one per GiB of identity map.
pub const PD_ADDR: u64 = 0x3000;
/// Number of page directories: the identity map covers `PD_COUNT` GiB.
pub const PD_COUNT: u64 = 4;
/// Bytes of guest-physical space identity-mapped at entry (the first 4 GiB).
pub const IDENTITY_MAP_SIZE: u64 = PD_COUNT << 30;
/// The boot-info block (our images) or Linux-style zero page (plain images).
pub const BOOT_INFO_ADDR: u64 = 0x7000;
/// Initial stack pointer at entry (16-byte aligned, inside the reserved stack page).
pub const BOOT_STACK_TOP: u64 = 0x8ff0;
/// The guest command line, NUL-terminated.
pub const CMDLINE_ADDR: u64 = 0x9000;
/// Capacity of the command-line page, including the terminating NUL.
pub const CMDLINE_MAX: u64 = 0x1000;
/// End of the VMM-owned low area: no image segment or declared region may start below this.
pub const RESERVED_END: u64 = 0xA000;

/// Kernel code selector (GDT entry 1, 64-bit, DPL 0).
pub const KERNEL_CS: u16 = 0x08;
/// Kernel data selector (GDT entry 2, DPL 0).
pub const KERNEL_DS: u16 = 0x10;
/// User data selector (GDT entry 3, DPL 3), with RPL 3.
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector (GDT entry 4, 64-bit, DPL 3), with RPL 3.
pub const USER_CS: u16 = 0x20 | 3;

/// Guest RAM used when `--memory` is not given, in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// Largest guest RAM accepted, in MiB: RAM stays below the 32-bit MMIO hole at 3 GiB.
pub const MAX_MEMORY_MIB: u64 = 3072;
/// Smallest guest RAM accepted, in MiB.
pub const MIN_MEMORY_MIB: u64 = 1;

/// Rounds `value` up to a multiple of [`PAGE_SIZE`]; `None` on overflow.
pub const fn page_align_up(value: u64) -> Option<u64> {
    match value.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v & !(PAGE_SIZE - 1)),
        None => None,
    }
}

/// True when `value` is a multiple of [`PAGE_SIZE`].
pub const fn is_page_aligned(value: u64) -> bool {
    value & (PAGE_SIZE - 1) == 0
}

// Compile-time checks of the layout: every boot structure inside the reserved area, in order,
// and all of guest RAM inside the identity map.
const _: () = {
    assert!(GDT_ADDR + GDT_ENTRIES as u64 * 8 <= PML4_ADDR);
    assert!(PD_ADDR + PD_COUNT * PAGE_SIZE <= BOOT_INFO_ADDR);
    assert!(BOOT_INFO_ADDR + PAGE_SIZE <= BOOT_STACK_TOP);
    assert!(BOOT_STACK_TOP <= CMDLINE_ADDR);
    assert!(CMDLINE_ADDR + CMDLINE_MAX <= RESERVED_END);
    assert!(MAX_MEMORY_MIB << 20 <= IDENTITY_MAP_SIZE);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_alignment_helpers() {
        assert_eq!(page_align_up(0), Some(0));
        assert_eq!(page_align_up(1), Some(PAGE_SIZE));
        assert_eq!(page_align_up(PAGE_SIZE), Some(PAGE_SIZE));
        assert_eq!(page_align_up(u64::MAX), None);
        assert!(is_page_aligned(0x3000));
        assert!(!is_page_aligned(0x3001));
    }
}
