//! Symbols the compiler and `core` call but a `-nostdlib` image has nobody else to provide:
//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` (all on [`crate::mem`]'s string
//! instructions, so none can turn into a call to itself) and the `rust_eh_personality` stub.
//!
//! Host unit tests link std, which brings its own, so this module is not compiled there.

use crate::mem;

/// Copies `n` bytes from `src` to `dest`; the ranges must not overlap.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads, `dest` for `n` bytes of writes, and the two
/// ranges must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { mem::copy_forward(dest, src, n) };
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads and `dest` for `n` bytes of writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { mem::copy(dest, src, n) };
    dest
}

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// `dest` must be valid for `n` bytes of writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { mem::fill(dest, c as u8, n) };
    dest
}

/// Compares `n` bytes as unsigned: negative, zero or positive.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes of reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { mem::compare(a, b, n) }
}

/// Compares `n` bytes for equality only: zero when equal, non-zero otherwise.
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes of reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's guarantee, passed on.
    unsafe { mem::compare(a, b, n) }
}

/// The unwinding personality routine `core` refers to; images abort on panic, so it never runs.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
