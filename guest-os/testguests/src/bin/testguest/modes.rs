//! The well-behaved modes: what a correct VMM runs to completion.

use crate::manifest::MANIFEST;
use crate::{CHECK_FAILED, NOT_STOPPED};
use abi::layout::{PAGE_SIZE, RESERVED_END, is_page_aligned};
use abi::manifest::Range;
use abi::{Backend, BootInfo, ServerDecl};
use bare::{cpu, hypercall, serial};

/// Prints what the VMM handed over, logs a line, exits with `exit=N` (default 0).
pub fn hello(info: &BootInfo, cmdline: &[u8]) -> ! {
    serial::line(b"testguest: hello");
    serial::write(b"cmdline=");
    serial::line(cmdline);
    serial::write(b"backend=");
    serial::line(backend_name(info.backend));
    serial::write(b"memmap=");
    serial::write_dec(info.memory_map().len() as u64);
    serial::line(b"");
    for server in info.declared_servers() {
        print_server(server);
    }
    hypercall::log(b"testguest log line");
    let status = testguests::number_arg(b"testguest", cmdline, b"exit").unwrap_or(0);
    hypercall::exit(status)
}

fn backend_name(number: u32) -> &'static [u8] {
    match Backend::from_number(number) {
        Some(backend) => backend.name().as_bytes(),
        None => b"unknown",
    }
}

/// `server <name> state=<base>+<size> scratch=<base>+<size>`
fn print_server(server: &ServerDecl) {
    let name = server.name.split(|&b| b == 0).next().unwrap_or_default();
    serial::write(b"server ");
    serial::write(name);
    serial::write(b" state=");
    print_range(server.state);
    serial::write(b" scratch=");
    print_range(server.scratch);
    serial::line(b"");
}

fn print_range(range: Range) {
    serial::write_hex(range.base);
    serial::write(b"+");
    serial::write_hex(range.size);
}

/// `ready`, then echoes one line read from COM1 as `got: <line>`.
pub fn echo() -> ! {
    serial::line(b"ready");
    let mut buf = [0u8; 256];
    let line = serial::read_line(&mut buf);
    serial::write(b"got: ");
    serial::line(line);
    hypercall::exit(0)
}

/// Writes `server index + 1` into the first and last byte of every page of every server's state
/// arena and scratch, then reads all of them back.
pub fn regions(info: &BootInfo) -> ! {
    let servers = info.declared_servers();
    for (index, server) in servers.iter().enumerate() {
        for range in [server.state, server.scratch] {
            if !is_writable_region(info, range) {
                serial::write(b"regions: refusing to write ");
                print_range(range);
                serial::line(b"");
                hypercall::exit(CHECK_FAILED)
            }
            fill_pages(range, pattern(index));
        }
    }
    for (index, server) in servers.iter().enumerate() {
        for range in [server.state, server.scratch] {
            if let Some(addr) = first_mismatch(range, pattern(index)) {
                serial::write(b"regions bad at ");
                serial::write_hex(addr);
                serial::line(b"");
                hypercall::exit(CHECK_FAILED)
            }
        }
    }
    serial::line(b"regions ok");
    hypercall::exit(0)
}

fn pattern(server_index: usize) -> u8 {
    (server_index as u8).wrapping_add(1)
}

/// A server region the guest may scribble on: non-empty, page-aligned, inside guest RAM, above
/// the VMM's reserved area and clear of this image's kernel region.
fn is_writable_region(info: &BootInfo, range: Range) -> bool {
    range.size != 0
        && is_page_aligned(range.base)
        && is_page_aligned(range.size)
        && range.base >= RESERVED_END
        && range.end().is_some_and(|end| end <= info.mem_size)
        && !range.overlaps(&MANIFEST.desc.kernel)
}

/// The first and last byte of each page of `range`.
fn page_ends(range: Range) -> impl Iterator<Item = *mut u8> {
    let pages = range.size / PAGE_SIZE;
    (0..pages).flat_map(move |page| {
        let base = range.base + page * PAGE_SIZE;
        [base as *mut u8, (base + PAGE_SIZE - 1) as *mut u8]
    })
}

/// `range` must have passed [`is_writable_region`].
fn fill_pages(range: Range, value: u8) {
    for byte in page_ends(range) {
        // SAFETY: the range is guest RAM (checked against mem_size), identity-mapped, given to a
        // server that does not run in this guest, and clear of the image and the VMM's area, so
        // no Rust object lives there.
        unsafe { core::ptr::write_volatile(byte, value) };
    }
}

fn first_mismatch(range: Range, value: u8) -> Option<u64> {
    page_ends(range).find_map(|byte| {
        // SAFETY: as in `fill_pages`; this only reads what it wrote.
        let found = unsafe { core::ptr::read_volatile(byte) };
        (found != value).then_some(byte as u64)
    })
}

/// `spinning`, then a busy loop (for `--timeout` and signals on a running vCPU).
pub fn spin() -> ! {
    serial::line(b"spinning");
    cpu::spin_forever()
}

/// `halting`, then `cli; hlt` for good.
pub fn halt() -> ! {
    serial::line(b"halting");
    cpu::halt_forever()
}

/// Reports that the VMM let the guest go on after `what`, and exits with [`NOT_STOPPED`].
pub fn not_stopped(what: &[u8]) -> ! {
    serial::write(b"testguest: the vmm resumed the guest after ");
    serial::line(what);
    hypercall::exit(NOT_STOPPED)
}
