//! The plain guest: an ELF image without a region manifest, booted the Firecracker way (long
//! mode, Linux zero page in RSI). It has no hypercalls; it stops by resetting through the
//! i8042 controller, and halts for good should the reset be ignored.
//!
//! ```text
//!  <name>: hello            always first
//!  cmdline=<command line>   from the zero page's cmd_line_ptr (empty when 0)
//!  storm done               after storm=N: N reads and N writes of port 0x99 and N 4-byte
//!                           reads and writes at guest-physical 0xd000_0000 (no RAM: MMIO exits)
//!  flood line <i> ...       flood=N lines
//!  blast abcd...            blast=N: N chunks of 4 KiB (64 lines of 64 bytes), each written by
//!                           one `rep outsb` without LSR polling: the densest flood a guest can make
//! ```

use crate::{flood, number_arg};
use bare::cpu::{inb, outb};
use bare::{boot, cpu, serial};

/// A port no device claims.
pub const UNKNOWN_PORT: u16 = 0x99;
/// A guest-physical address inside the identity map with no RAM behind it (MMIO exits).
pub const MMIO_ADDR: u64 = 0xd000_0000;

/// The plain guest's program; `name` is the binary's name, as printed in `<name>: hello`.
pub fn main(name: &[u8], zero_page: u64) -> ! {
    let cmdline = boot::zero_page_cmdline(zero_page);
    serial::write(name);
    serial::line(b": hello");
    serial::write(b"cmdline=");
    serial::line(cmdline);
    if let Some(n) = number_arg(name, cmdline, b"storm") {
        storm(n);
        serial::line(b"storm done");
    }
    if let Some(n) = number_arg(name, cmdline, b"flood") {
        flood(n);
    }
    if let Some(chunks) = number_arg(name, cmdline, b"blast") {
        blast(chunks);
    }
    cpu::reset()
}

/// One 4 KiB chunk of [`blast`] output: 64 lines of `blast ` then letters, each 64 bytes.
static BLAST_CHUNK: [u8; 4096] = blast_chunk();

const fn blast_chunk() -> [u8; 4096] {
    let mut chunk = [0u8; 4096];
    let mut i = 0;
    while i < chunk.len() {
        let col = i % 64;
        chunk[i] = if col == 63 {
            b'\n'
        } else if col < 6 {
            b"blast "[col]
        } else {
            b'a' + ((col - 6) % 26) as u8
        };
        i += 1;
    }
    chunk
}

/// Writes `chunks` copies of [`BLAST_CHUNK`] to COM1, one `rep outsb` per chunk.
fn blast(chunks: u64) {
    for _ in 0..chunks {
        // SAFETY: reads BLAST_CHUNK's 4096 bytes (rsi, rcx) and writes them to the UART's
        // holding register; DF is clear (the VMM enters with RFLAGS = 0x2 and nothing sets it).
        unsafe {
            core::arch::asm!(
                "rep outsb",
                in("dx") serial::COM1,
                inout("rsi") BLAST_CHUNK.as_ptr() => _,
                inout("rcx") BLAST_CHUNK.len() => _,
                options(nostack, readonly, preserves_flags)
            );
        }
    }
}

/// `rounds` port reads and writes of [`UNKNOWN_PORT`] and 4-byte MMIO reads and writes at
/// [`MMIO_ADDR`]: a burst of exits the VMM must handle (and ignore) without stopping.
fn storm(rounds: u64) {
    let mmio = MMIO_ADDR as *mut u32;
    for i in 0..rounds {
        // SAFETY: no device claims the port, so the access only exits to the VMM.
        let _ = unsafe { inb(UNKNOWN_PORT) };
        // SAFETY: as above.
        unsafe { outb(UNKNOWN_PORT, i as u8) };
        // SAFETY: MMIO_ADDR is identity-mapped (first 4 GiB) with no RAM behind it, so the
        // access exits to the VMM; no Rust object lives there; it is 4-aligned.
        let _ = unsafe { core::ptr::read_volatile(mmio) };
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(mmio, i as u32) };
    }
}
