//! Port I/O, halting and the i8042 reset line.

use core::arch::asm;

/// The i8042 controller's command port.
pub const I8042_COMMAND_PORT: u16 = 0x64;
/// The i8042 command that pulses the CPU reset line (what the VMM treats as "reboot").
pub const I8042_RESET: u8 = 0xfe;

/// Writes one byte to an I/O port.
///
/// # Safety
/// The write must not break memory safety: the port must not belong to a device that writes
/// guest memory (there is none on this monitor) in a way the program does not expect.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the device; the instruction touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads one byte from an I/O port.
///
/// # Safety
/// As for [`outb`]: reading the port must have no effect on memory the program relies on.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the device; the instruction touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Writes four bytes to an I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the device; the instruction touches no memory.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads four bytes from an I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller vouches for the device; the instruction touches no memory.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Stops this CPU for good: interrupts off, then `hlt` in a loop (an NMI would only resume it
/// into the next `hlt`).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops the CPU; no memory or register the program uses changes.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// Spins forever without halting (the vCPU stays busy; used to test timeouts and signals).
pub fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Asks the i8042 controller to reset the machine, then halts in case nobody listens.
pub fn reset() -> ! {
    // SAFETY: the i8042 command port only triggers the reset line; it touches no guest memory.
    unsafe { outb(I8042_COMMAND_PORT, I8042_RESET) }
    halt_forever()
}
