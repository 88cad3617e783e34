//! The plain guest linked at 0x100000; see `testguests::plain`.
#![no_std]
#![no_main]

bare::entry!(main);

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    bare::panic::halt()
}

fn main(_rdi: u64, zero_page: u64) -> ! {
    testguests::plain::main(b"plainguest", zero_page)
}
