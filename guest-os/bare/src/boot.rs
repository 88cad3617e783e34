//! What the VMM hands the image at entry: the boot-info block (our images, pointer in RDI) or the
//! Linux zero page (plain images, pointer in RSI), and the command line either one points to.
//!
//! Pointers from the VMM are checked before they are read: they must lie in memory every VM has
//! (the reserved low area, or the first MiB for a plain image's command line), which the VMM
//! identity-maps.

use abi::BootInfo;
use abi::layout::{CMDLINE_MAX, MIN_MEMORY_MIB, RESERVED_END};

/// Offset of `cmd_line_ptr` (u32) in the Linux zero page (`struct boot_params`).
pub const ZERO_PAGE_CMD_LINE_PTR: u64 = 0x228;
/// Guest RAM every VM has: the first MiB.
const MIN_MEMORY: u64 = MIN_MEMORY_MIB << 20;

/// The boot-info block at `ptr`, if `ptr` is a plausible address in the reserved low area and the
/// block there has this contract's magic, version and size.
pub fn boot_info(ptr: u64) -> Option<&'static BootInfo> {
    let size = core::mem::size_of::<BootInfo>() as u64;
    let aligned = ptr.is_multiple_of(core::mem::align_of::<BootInfo>() as u64);
    let in_low_area = ptr.checked_add(size).is_some_and(|end| end <= RESERVED_END);
    if ptr == 0 || !aligned || !in_low_area {
        return None;
    }
    // SAFETY: the block lies in the reserved low area, which is RAM in every VM and
    // identity-mapped; it is aligned; `BootInfo` is plain data for which any bytes are a valid
    // value; and the guest never writes the VMM's reserved area, so the shared borrow holds.
    let info = unsafe { &*(ptr as *const BootInfo) };
    info.is_valid().then_some(info)
}

/// The command line the boot-info block points to; empty when the pointer or length is
/// implausible (outside guest RAM, or longer than the command-line page).
pub fn cmdline(info: &BootInfo) -> &'static [u8] {
    let (addr, len) = (info.cmdline_addr, info.cmdline_len);
    let fits = addr
        .checked_add(len)
        .is_some_and(|end| end <= info.mem_size);
    if addr == 0 || len >= CMDLINE_MAX || !fits {
        return &[];
    }
    // SAFETY: `[addr, addr + len)` is inside guest RAM, which the VMM identity-maps, and the
    // guest never writes the command line.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

/// The command line of a plain image, from the Linux zero page at `zero_page` (RSI at entry):
/// the NUL-terminated string at `cmd_line_ptr`, at most [`CMDLINE_MAX`] bytes; empty when
/// `cmd_line_ptr` is 0 or either pointer is implausible.
pub fn zero_page_cmdline(zero_page: u64) -> &'static [u8] {
    let in_low_area = zero_page
        .checked_add(abi::layout::PAGE_SIZE)
        .is_some_and(|end| end <= RESERVED_END);
    if zero_page == 0 || !zero_page.is_multiple_of(8) || !in_low_area {
        return &[];
    }
    let field = (zero_page + ZERO_PAGE_CMD_LINE_PTR) as *const u32;
    // SAFETY: the zero page lies in the reserved low area (RAM in every VM, identity-mapped);
    // the field is a 4-aligned u32 inside it, read by value without a borrow.
    let addr = u64::from(unsafe { core::ptr::read_volatile(field) });
    if addr == 0 || addr + CMDLINE_MAX > MIN_MEMORY {
        return &[];
    }
    // SAFETY: `[addr, addr + CMDLINE_MAX)` lies in the first MiB, which is RAM in every VM and
    // identity-mapped; the guest never writes the command line.
    let page = unsafe { core::slice::from_raw_parts(addr as *const u8, CMDLINE_MAX as usize) };
    let len = page.iter().position(|&b| b == 0).unwrap_or(page.len());
    page.get(..len).unwrap_or_default()
}
