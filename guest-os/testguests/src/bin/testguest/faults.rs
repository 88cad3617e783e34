//! The misbehaving modes: each does one thing the VMM must stop (or, for `sse`, that KVM-PVM
//! cannot run). Should the VMM resume the guest anyway, it says so and exits with
//! [`crate::NOT_STOPPED`].

use crate::manifest::MANIFEST;
use crate::modes::not_stopped;
use abi::hypercall::{HYPERCALL_PORT, Hypercall};
use abi::layout::{USER_CS, USER_DS};
use bare::cpu::{inl, outb};
use bare::start::{STACK_SIZE, Stack};
use bare::{hypercall, serial};
use core::arch::asm;

/// A port no device claims.
const UNKNOWN_PORT: u16 = 0x99;
/// RFLAGS in ring 3: IOPL 3 (so that `out` reaches the VMM instead of faulting), bit 1 set,
/// interrupts off.
const USER_RFLAGS: u64 = 0x3002;

/// Loads an IDT with limit 0, then `ud2`: #UD, #GP and #DF all miss it -> triple fault.
///
/// `ud2`, not `int3`: on KVM-PVM, `int3` with an empty IDT is an emulation failure
/// (KVM_EXIT_INTERNAL_ERROR) instead of a shutdown.
pub fn triple_fault() -> ! {
    let empty_idtr = [0u64; 2];
    // SAFETY: from here on any exception shuts the VM down, which is the point; `lidt` reads
    // the 10-byte descriptor from the local array.
    unsafe { asm!("lidt [{}]", "ud2", in(reg) &empty_idtr, options(nostack, readonly)) };
    not_stopped(b"ud2 with an empty IDT")
}

/// Executes an SSE instruction in ring 0 (KVM-PVM's emulator cannot, and stops the VM), then
/// prints `sse ok` and exits 0.
pub fn sse() -> ! {
    sse_instruction_on_purpose();
    serial::line(b"sse ok");
    hypercall::exit(0)
}

/// The one xmm instruction an image may hold; the image checks allow exactly this function.
#[inline(never)]
fn sse_instruction_on_purpose() {
    // SAFETY: `xorps` only zeroes xmm0. xmm0 is not declared as clobbered (kernel-flavor builds
    // have no xmm register class); nothing holds a value in it across this never-inlined call,
    // as it is caller-saved. The VMM enables SSE (CR0.MP, CR4.OSFXSR) before entry.
    unsafe { asm!("xorps xmm0, xmm0", options(nomem, nostack, preserves_flags)) };
}

/// A hypercall with the unknown number 0xdead.
pub fn bad_hypercall() -> ! {
    hypercall::call(0xdead, [0; 4]);
    not_stopped(b"hypercall 0xdead")
}

/// EXIT with status 200 (the guest's range is 0..=63).
pub fn bad_exit() -> ! {
    hypercall::call(Hypercall::Exit as u32, [200, 0, 0, 0]);
    not_stopped(b"EXIT 200")
}

/// LOG of 16 bytes at 0xffff_ffff_0000, far outside guest RAM.
pub fn bad_log() -> ! {
    hypercall::call(Hypercall::Log as u32, [0xffff_ffff_0000, 16, 0, 0]);
    not_stopped(b"LOG at 0xffff_ffff_0000")
}

/// LOG text that would act on a terminal or make a line read backwards: an escape sequence
/// (clear the screen), a newline and a right-to-left override. Then EXIT 0: the text is allowed,
/// only escaped.
pub fn evil_log() -> ! {
    static TEXT: &[u8] = "log \x1b[2J\nforged line \u{202e}desrever".as_bytes();
    hypercall::log(TEXT);
    hypercall::exit(0)
}

/// LOG of 100000 bytes (inside the kernel region, so only the length is wrong).
pub fn long_log() -> ! {
    let addr = MANIFEST.desc.kernel.base;
    hypercall::call(Hypercall::Log as u32, [addr, 100_000, 0, 0]);
    not_stopped(b"LOG of 100000 bytes")
}

/// A 1-byte write to the hypercall port.
pub fn byte_hypercall() -> ! {
    // SAFETY: the port belongs to the VMM, which reads no memory for a 1-byte access.
    unsafe { outb(HYPERCALL_PORT, Hypercall::Exit as u8) };
    not_stopped(b"a 1-byte write to the hypercall port")
}

/// A 4-byte read of the hypercall port.
pub fn read_hypercall() -> ! {
    // SAFETY: the port belongs to the VMM; a read returns a value and touches no memory.
    let _ = unsafe { inl(HYPERCALL_PORT) };
    not_stopped(b"a read of the hypercall port")
}

/// A 1-byte write to a port no device claims (images of our kind are held to known ports).
pub fn unknown_port() -> ! {
    // SAFETY: no device claims the port; the write only exits to the VMM.
    unsafe { outb(UNKNOWN_PORT, 0) };
    not_stopped(b"a write to port 0x99")
}

/// The ring-3 stack of `user-hypercall`.
static mut USER_STACK: Stack = Stack::ZEROED;

/// `iretq` into ring 3 at [`ring3_exit`], which makes the EXIT hypercall from CPL 3.
pub fn user_hypercall() -> ! {
    // The System V ABI wants RSP + 8 16-aligned at a function's first instruction.
    let user_rsp = (&raw const USER_STACK) as u64 + STACK_SIZE as u64 - 8;
    let user_rip = ring3_exit as extern "C" fn() -> ! as usize as u64;
    // SAFETY: the frame is SS, RSP, RFLAGS, CS, RIP for a 64-bit return to CPL 3 through the
    // VMM's GDT (USER_CS, USER_DS); the VMM's identity map has the U bit on every page, so the
    // code and USER_STACK (used by nothing else) are reachable from ring 3.
    unsafe {
        asm!(
            "push {ss}",
            "push {rsp}",
            "push {rflags}",
            "push {cs}",
            "push {rip}",
            "iretq",
            ss = in(reg) u64::from(USER_DS),
            rsp = in(reg) user_rsp,
            rflags = in(reg) USER_RFLAGS,
            cs = in(reg) u64::from(USER_CS),
            rip = in(reg) user_rip,
            options(noreturn)
        )
    }
}

/// Runs in ring 3 (IOPL 3, so port I/O works): EXIT 0, which the VMM must refuse.
extern "C" fn ring3_exit() -> ! {
    hypercall::call(Hypercall::Exit as u32, [0; 4]);
    serial::line(b"testguest: the vmm resumed the guest after EXIT from ring 3");
    loop {
        core::hint::spin_loop();
    }
}
