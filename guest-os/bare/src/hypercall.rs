//! The monitor's hypercalls ([`abi::hypercall`]): one 4-byte `out` to the hypercall port from
//! ring 0, call number in `eax`, arguments in `rdi`, `rsi`, `r8`, `r9`. Only images that carry a
//! region manifest may use them.

use abi::hypercall::{HYPERCALL_PORT, Hypercall};
use core::arch::asm;

/// Makes hypercall `number` with arguments `args` (a0..a3) as they are, checked or not: the VMM
/// validates them, and the test guests use this to send it bad ones.
pub fn call(number: u32, args: [u64; 4]) {
    // SAFETY: the `out` traps to the VMM, which may read guest memory (LOG, FAULT) and write the
    // monitor page (FAULT's verdict) but changes no register; without `readonly`, the compiler
    // keeps no memory value across the call.
    unsafe {
        asm!(
            "out dx, eax",
            in("dx") HYPERCALL_PORT,
            in("eax") number,
            in("rdi") args[0],
            in("rsi") args[1],
            in("r8") args[2],
            in("r9") args[3],
            options(nostack, preserves_flags)
        );
    }
}

/// Makes a recovery call (FAULT, SNAPSHOTS, RESTARTED): everything it says is in its call word
/// `word` and the monitor page, and the VMM reads no register for it, so none is set (on
/// KVM-PVM every instruction of the kernel's recovery path is emulated).
pub fn recovery_call(word: u32) {
    // SAFETY: as in `call`.
    unsafe {
        asm!(
            "out dx, eax",
            in("dx") HYPERCALL_PORT,
            in("eax") word,
            options(nostack, preserves_flags)
        );
    }
}

/// Stops the VM; `vmm` exits with `status` (the VMM accepts 0..=63 and refuses the rest).
pub fn exit(status: u64) -> ! {
    call(Hypercall::Exit as u32, [status, 0, 0, 0]);
    crate::cpu::halt_forever()
}

/// Prints `line` as one line on the VMM's stderr (at most [`abi::hypercall::MAX_LOG_LEN`] bytes).
///
/// The VMM wants a guest-physical address; the image runs on the VMM's identity map, so the
/// virtual address is the physical one.
pub fn log(line: &[u8]) {
    let addr = line.as_ptr() as u64;
    call(Hypercall::Log as u32, [addr, line.len() as u64, 0, 0]);
}
