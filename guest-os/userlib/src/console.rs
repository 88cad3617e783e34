//! Console output for tasks: a fixed-size line buffer with decimal and hex numbers, written with
//! one system call.

use crate::ipc;
use bare::num;

/// Longest line, in bytes (longer text is cut).
pub const LINE_MAX: usize = 160;

/// A line being built.
#[derive(Clone, Debug)]
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    /// Appends bytes (cut at [`LINE_MAX`]).
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
        self
    }

    /// Appends `value` in decimal.
    pub fn push_dec(&mut self, value: u64) -> &mut Self {
        let mut buf = [0u8; num::DEC_LEN];
        self.push(num::format_dec(value, &mut buf))
    }

    /// Appends `value` in hex with `0x`.
    pub fn push_hex(&mut self, value: u64) -> &mut Self {
        let mut buf = [0u8; num::HEX_LEN];
        self.push(num::format_hex(value, &mut buf))
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Writes the line and a newline to the console.
    pub fn print(&mut self) {
        self.push(b"\n");
        ipc::console_write(self.as_bytes());
        self.len = 0;
    }
}

impl Default for Line {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints `text` and a newline.
pub fn println(text: &[u8]) {
    Line::new().push(text).print();
}
