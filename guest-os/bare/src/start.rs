//! The image entry point: [`entry!`](crate::entry!) defines `_start`, which switches to the image's own stack
//! and calls the image's main function with the entry values of RDI and RSI.
//!
//! ```ignore
//! bare::entry!(main);
//! fn main(rdi: u64, rsi: u64) -> ! { bare::cpu::halt_forever() }
//! ```
//!
//! The VMM enters with RDI = boot-info (our images) and RSI = boot-info or zero page (all images),
//! a small boot stack in its reserved area and interrupts off. `_start` leaves that stack at
//! once: an image's stack belongs in the image (`.bss`, inside its kernel region).

/// Bytes of the entry stack.
pub const STACK_SIZE: usize = 32 * 1024;

/// A stack: [`STACK_SIZE`] bytes, 16-byte aligned as the System V ABI wants at a call.
#[derive(Debug)]
#[repr(C, align(16))]
pub struct Stack(pub [u8; STACK_SIZE]);

impl Stack {
    /// A zeroed stack (it lands in `.bss`).
    pub const ZEROED: Stack = Stack([0; STACK_SIZE]);
}

/// Defines the image's `_start` (on its own [`Stack`] in `.bss`) calling `$main(rdi, rsi)`,
/// where `$main: fn(u64, u64) -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The stack `_start` switches to.
        static mut BARE_ENTRY_STACK: $crate::start::Stack = $crate::start::Stack::ZEROED;

        /// The ELF entry point: own stack, clear frame pointer, then the image's main with the
        /// entry RDI and RSI untouched. Should main ever return, the CPU halts.
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "lea rsp, [rip + {stack} + {size}]",
                "xor ebp, ebp",
                "call {main}",
                "2:",
                "cli",
                "hlt",
                "jmp 2b",
                stack = sym BARE_ENTRY_STACK,
                size = const $crate::start::STACK_SIZE,
                main = sym bare_entry_main,
            )
        }

        extern "C" fn bare_entry_main(rdi: u64, rsi: u64) -> ! {
            $main(rdi, rsi)
        }
    };
}
