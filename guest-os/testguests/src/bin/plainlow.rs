//! The plain guest linked low, at 0x10000 (just above the VMM's reserved area); see
//! `testguests::plain`.
#![no_std]
#![no_main]

bare::entry!(main);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    bare::panic::halt()
}

fn main(_rdi: u64, zero_page: u64) -> ! {
    testguests::plain::main(b"plainlow", zero_page)
}
