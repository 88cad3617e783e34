//! The local APIC in x2APIC mode (MSRs, no MMIO mapping needed): a periodic timer at
//! [`TICK_HZ`] on [`super::idt::TIMER_VECTOR`], LINT0 (the PIC) masked.
//!
//! KVM's LAPIC timer counts at 1 GHz; with the divider at 16 a 10 ms period is 625 000 counts.

use super::cpu::{cpuid, rdmsr, wrmsr};
use super::idt::{SPURIOUS_VECTOR, TIMER_VECTOR};

/// Timer interrupts per second.
pub const TICK_HZ: u64 = 100;
const APIC_BASE_MSR: u32 = 0x1b;
const APIC_ENABLE: u64 = 1 << 11;
const X2APIC_ENABLE: u64 = 1 << 10;
const SVR: u32 = 0x80f;
const EOI: u32 = 0x80b;
const LVT_TIMER: u32 = 0x832;
const LVT_LINT0: u32 = 0x835;
const TIMER_INITIAL: u32 = 0x838;
const TIMER_DIVIDE: u32 = 0x83e;
const LVT_MASKED: u64 = 1 << 16;
const LVT_PERIODIC: u64 = 1 << 17;
const DIVIDE_BY_16: u64 = 0x3;
const BUS_HZ: u64 = 1_000_000_000;

/// True when the CPU offers x2APIC mode.
pub fn has_x2apic() -> bool {
    cpuid(1)[2] & (1 << 21) != 0
}

/// Enables the LAPIC in x2APIC mode and starts the periodic timer.
pub fn init() {
    // SAFETY: these MSRs only configure the LAPIC; its interrupts are masked by RFLAGS.IF in
    // the kernel, and their vectors have IDT entries.
    unsafe {
        wrmsr(
            APIC_BASE_MSR,
            rdmsr(APIC_BASE_MSR) | APIC_ENABLE | X2APIC_ENABLE,
        );
        wrmsr(SVR, 0x100 | u64::from(SPURIOUS_VECTOR));
        wrmsr(LVT_LINT0, LVT_MASKED);
        wrmsr(TIMER_DIVIDE, DIVIDE_BY_16);
        wrmsr(LVT_TIMER, u64::from(TIMER_VECTOR) | LVT_PERIODIC);
        wrmsr(TIMER_INITIAL, BUS_HZ / 16 / TICK_HZ);
    }
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    // SAFETY: writing 0 to the x2APIC EOI register only ends the current interrupt.
    unsafe { wrmsr(EOI, 0) };
}
