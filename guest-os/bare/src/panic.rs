//! What an image's `#[panic_handler]` calls. Nothing is formatted: the panic message would need
//! `core::fmt`, which must not run in ring 0.
//!
//! ```ignore
//! #[panic_handler]
//! fn panic(_: &core::panic::PanicInfo) -> ! {
//!     bare::panic::exit_with_status()
//! }
//! ```

use crate::{cpu, hypercall, serial};

/// Status an image of our kind exits with after a panic (the highest a guest may use).
pub const PANIC_STATUS: u64 = abi::status::GUEST_MAX as u64;

/// For images of our kind: prints `panic` on COM1 and stops the VM with [`PANIC_STATUS`].
pub fn exit_with_status() -> ! {
    serial::line(b"panic");
    hypercall::exit(PANIC_STATUS)
}

/// For plain images (no hypercalls): prints `panic` on COM1 and halts for good, so that the
/// run ends in a timeout rather than in a reset that could pass for success.
pub fn halt() -> ! {
    serial::line(b"panic");
    cpu::halt_forever()
}
