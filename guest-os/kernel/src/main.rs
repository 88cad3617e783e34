//! The guest kernel. For now it is the demo banner guest: it reports what the VMM handed it and
//! stops; the microkernel (tasks, IPC, servers in ring 3) comes later.
//!
//! Rules for everything in this crate (it runs in ring 0, which KVM-PVM emulates):
//! - no SSE/xmm instruction: built with SSE disabled (`Flavor::Kernel`), no `core::fmt`, no
//!   floats; numbers are printed by hand (`bare::serial`);
//! - no panics on any path the guest controls; parsers return `Option`;
//! - short paths: every instruction is emulated, every port access is a VM exit.
//!
//! Boot: the VMM enters `_start` with RDI = boot-info. The banner goes to COM1, a LOG hypercall
//! says the guest is up, and an EXIT hypercall stops the VM with status 0, or N given `exit=N`.
#![no_std]
#![no_main]

mod manifest;

use abi::{Backend, BootInfo};
use bare::{boot, cmdline, hypercall, serial};

bare::entry!(main);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    bare::panic::exit_with_status()
}

/// Status when the VMM's boot-info block is missing or of another contract version.
const BAD_BOOT_INFO_STATUS: u64 = 1;

fn main(boot_info: u64, _rsi: u64) -> ! {
    let Some(info) = boot::boot_info(boot_info) else {
        serial::line(b"crashmon demo guest: no valid boot-info block (another abi version?)");
        hypercall::exit(BAD_BOOT_INFO_STATUS)
    };
    let cmdline = boot::cmdline(info);
    banner(info, cmdline);
    hypercall::log(b"demo guest up");
    hypercall::exit(exit_status(cmdline))
}

/// `crashmon demo guest: backend=pvm memory=128MiB servers=2 cmdline="..."`
fn banner(info: &BootInfo, cmdline: &[u8]) {
    serial::write(b"crashmon demo guest: backend=");
    serial::write(backend_name(info.backend));
    serial::write(b" memory=");
    serial::write_dec(info.mem_size >> 20);
    serial::write(b"MiB servers=");
    serial::write_dec(u64::from(info.server_count));
    serial::write(b" cmdline=\"");
    serial::write(cmdline);
    serial::line(b"\"");
}

fn backend_name(number: u32) -> &'static [u8] {
    match Backend::from_number(number) {
        Some(backend) => backend.name().as_bytes(),
        None => b"unknown",
    }
}

/// `exit=N` from the command line, else 0; a value that is not a number is reported and ignored.
fn exit_status(cmdline: &[u8]) -> u64 {
    match cmdline::dec_arg(cmdline, b"exit") {
        Some(Ok(status)) => status,
        Some(Err(bad)) => {
            serial::write(b"crashmon demo guest: ignoring exit=");
            serial::line(bad);
            0
        }
        None => 0,
    }
}
