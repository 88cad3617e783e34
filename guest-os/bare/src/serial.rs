//! COM1 (the 16550 UART at 0x3f8): polled output and input. Lines end in `\n` only.

use crate::cpu::{inb, outb};
use crate::num;

/// COM1's base port: transmit/receive holding register.
pub const COM1: u16 = 0x3f8;
/// Line status register.
const LSR: u16 = COM1 + 5;
/// LSR bit: a received byte is waiting.
const LSR_DATA_READY: u8 = 1 << 0;
/// LSR bit: the transmit holding register is empty.
const LSR_THR_EMPTY: u8 = 1 << 5;

fn line_status() -> u8 {
    // SAFETY: reading the UART's line status register has no side effect on memory.
    unsafe { inb(LSR) }
}

/// Writes one byte, waiting until the UART can take it.
#[inline(never)]
pub fn write_byte(byte: u8) {
    while line_status() & LSR_THR_EMPTY == 0 {
        core::hint::spin_loop();
    }
    // SAFETY: writing the UART's holding register only transmits the byte.
    unsafe { outb(COM1, byte) }
}

/// Writes bytes as they are.
#[inline(never)]
pub fn write(bytes: &[u8]) {
    for &b in bytes {
        write_byte(b);
    }
}

/// Writes bytes followed by `\n`.
pub fn line(bytes: &[u8]) {
    write(bytes);
    write_byte(b'\n');
}

/// Writes `value` in decimal.
pub fn write_dec(value: u64) {
    let mut buf = [0u8; num::DEC_LEN];
    write(num::format_dec(value, &mut buf));
}

/// Writes `value` in lower-case hex with a `0x` prefix.
pub fn write_hex(value: u64) {
    let mut buf = [0u8; num::HEX_LEN];
    write(num::format_hex(value, &mut buf));
}

/// Reads one byte, waiting until one arrives.
pub fn read_byte() -> u8 {
    while line_status() & LSR_DATA_READY == 0 {
        core::hint::spin_loop();
    }
    // SAFETY: reading the UART's receive register only takes the waiting byte.
    unsafe { inb(COM1) }
}

/// Reads bytes into `buf` until `\n` (not stored); returns the bytes kept. A line longer than
/// `buf` is read to its end, and its tail dropped. A `\r` before the `\n` is dropped too.
pub fn read_line(buf: &mut [u8]) -> &[u8] {
    let mut len = 0;
    loop {
        let byte = read_byte();
        if byte == b'\n' {
            break;
        }
        if let Some(slot) = buf.get_mut(len) {
            *slot = byte;
            len += 1;
        }
    }
    let line = buf.get(..len).unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}
