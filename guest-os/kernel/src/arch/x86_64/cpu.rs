//! Privileged instructions: MSRs, control registers, FPU/SSE state, interrupts.
//!
//! FXSAVE/FXRSTOR save and restore the tasks' SSE state without naming an xmm register: the
//! kernel itself never executes an SSE instruction (KVM-PVM's emulator cannot).

use core::arch::asm;

/// IA32_EFER.
pub const MSR_EFER: u32 = 0xc000_0080;
/// EFER.NXE: no-execute page bit enabled.
pub const EFER_NXE: u64 = 1 << 11;

/// Reads MSR `msr`.
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the kernel reads only architectural MSRs it knows exist (EFER, APIC base).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Writes MSR `msr`.
///
/// # Safety
/// The write must not break the kernel's memory model (EFER.LME, paging bits untouched).
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller vouches for the MSR and value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// CR2: the faulting address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// Switches to the address space rooted at `root`.
///
/// # Safety
/// `root` must map the kernel (code, data, stacks) exactly where the current space does.
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: the caller vouches that the kernel stays mapped.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) };
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the counter (CR4.TSD is clear, and ring 0 may read it anyway).
    unsafe {
        asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(lo) | (u64::from(hi) << 32)
}

/// CPUID leaf `leaf` (subleaf 0): eax, ebx, ecx, edx.
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The 512-byte FXSAVE area of a task.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

impl FxArea {
    /// All zeros; [`FxArea::init`] makes it a valid initial state.
    pub const ZERO: FxArea = FxArea([0; 512]);

    /// The non-zero bytes of a fresh task's area: x87 control word 0x37f (offset 0), MXCSR
    /// 0x1f80 (offset 24).
    const FRESH: [(usize, u8); 4] = [(0, 0x7f), (1, 0x03), (24, 0x80), (25, 0x1f)];

    /// The state of a fresh task, built at compile time (the same as [`FxArea::init`] makes).
    pub const INITIAL: FxArea = {
        let mut a = [0u8; 512];
        let mut i = 0;
        while i < Self::FRESH.len() {
            a[Self::FRESH[i].0] = Self::FRESH[i].1;
            i += 1;
        }
        FxArea(a)
    };

    /// The state of a fresh task: x87 control word 0x37f, MXCSR 0x1f80, registers zero.
    pub fn init(&mut self) {
        for (at, byte) in Self::FRESH {
            self.0[at] = byte;
        }
    }
}

/// Saves the FPU/SSE state into `area`.
pub fn fxsave(area: &mut FxArea) {
    // SAFETY: `area` is a 512-byte, 16-aligned buffer, exactly what FXSAVE64 writes.
    unsafe {
        asm!("fxsave64 [{}]", in(reg) area.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// Loads the FPU/SSE state from `area`.
pub fn fxrstor(area: &FxArea) {
    // SAFETY: `area` is a 16-aligned 512-byte area holding a valid state (made by `init` or a
    // previous FXSAVE; reserved MXCSR bits stay zero since tasks cannot reach the area).
    unsafe {
        asm!("fxrstor64 [{}]", in(reg) area.0.as_ptr(), options(nostack, preserves_flags, readonly))
    };
}

/// Waits for an interrupt with interrupts enabled for exactly that long: `sti; hlt; cli` (the
/// `sti` shadow guarantees no interrupt is taken between it and the `hlt`).
pub fn wait_for_interrupt() {
    // SAFETY: the only interrupts enabled are the timer and spurious vectors, whose ring-0
    // handler touches nothing but an atomic counter and the LAPIC.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Resumes the task whose record is `regs` (the CR3, RSP0 and FPU state must be its own).
pub fn enter_user(regs: *const kernel::task::SavedRegs) -> ! {
    // SAFETY: `regs` is a complete record of a ring-3 context (user CS/SS, RFLAGS with IF);
    // `trap_restore` (the trap path's restore, `trap.rs`) pops it and returns to ring 3, never to this stack.
    unsafe { core::arch::asm!("mov rsp, {}", "jmp trap_restore", in(reg) regs, options(noreturn)) }
}
