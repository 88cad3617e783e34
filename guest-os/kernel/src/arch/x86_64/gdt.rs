//! The kernel's GDT and TSS. Same code and data selectors as the VMM's boot GDT (see
//! `abi::layout`), plus the TSS: RSP0 (where a trap from ring 3 saves the task's registers:
//! the end of its context record) and two IST stacks, for double faults and NMIs.

use core::arch::asm;

/// TSS selector (GDT entries 5 and 6).
pub const TSS_SELECTOR: u16 = 0x28;
/// IST index of the double-fault stack.
pub const IST_DOUBLE_FAULT: u8 = 1;
/// IST index of the NMI stack.
pub const IST_NMI: u8 = 2;

/// The 64-bit task-state segment.
#[derive(Debug)]
#[repr(C, packed(4))]
pub struct Tss {
    reserved0: u32,
    /// Stack for traps from ring 3.
    pub rsp0: u64,
    rsp1: u64,
    rsp2: u64,
    reserved1: u64,
    /// Interrupt stacks 1..7.
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    /// No I/O bitmap: ring 3 may not touch ports.
    iomap_base: u16,
}

const TSS_SIZE: usize = core::mem::size_of::<Tss>();

/// The TSS (written by [`init`] and by every context switch).
pub static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp0: 0,
    rsp1: 0,
    rsp2: 0,
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: TSS_SIZE as u16,
};

static mut GDT: [u64; 7] = [
    0,
    0x00af_9b00_0000_ffff, // 0x08 kernel code
    0x00cf_9300_0000_ffff, // 0x10 kernel data
    0x00cf_f300_0000_ffff, // 0x18 user data
    0x00af_fb00_0000_ffff, // 0x20 user code
    0,                     // 0x28 TSS (low)
    0,                     // 0x30 TSS (high)
];

/// Descriptor-table register operand.
#[repr(C, packed)]
struct Pointer {
    limit: u16,
    base: u64,
}

/// Loads the GDT (with the TSS at `ist` stacks) and the task register.
pub fn init(ist_double_fault: u64, ist_nmi: u64) {
    let tss = &raw mut TSS;
    // SAFETY: boot runs once, on one CPU, before any trap can use the TSS.
    unsafe {
        (*tss).ist[usize::from(IST_DOUBLE_FAULT) - 1] = ist_double_fault;
        (*tss).ist[usize::from(IST_NMI) - 1] = ist_nmi;
    }
    let base = tss as u64;
    let limit = (TSS_SIZE - 1) as u64;
    let low = (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, 64-bit TSS (available)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let gdt = &raw mut GDT;
    // SAFETY: as above; the descriptor describes the static TSS.
    unsafe {
        (*gdt)[5] = low;
        (*gdt)[6] = base >> 32;
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<[u64; 7]>() - 1) as u16,
        base: gdt as u64,
    };
    // SAFETY: the new GDT has the boot GDT's code and data descriptors at the same selectors, so
    // the loaded segment registers stay valid; `ltr` loads the TSS described above.
    unsafe {
        asm!("lgdt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags));
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nomem, nostack, preserves_flags));
    }
}

/// Sets where the next trap from ring 3 saves registers.
pub fn set_rsp0(top: u64) {
    // SAFETY: one CPU, interrupts masked in the kernel: nothing else touches the TSS now; the
    // field is written with an unaligned-safe write (the TSS is packed).
    unsafe { (&raw mut TSS.rsp0).write_unaligned(top) };
}
