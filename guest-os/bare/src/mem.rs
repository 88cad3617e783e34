//! The memory primitives behind the C functions of [`crate::rt`], under their own names so that
//! host tests can run them next to std's.
//!
//! They are string instructions in inline assembly: the optimiser cannot recognise a copy loop
//! in them and turn it back into a call to `memcpy` (which would recurse), and under KVM-PVM's
//! emulator one `rep movsb` is far cheaper than a loop. The direction flag is clear on entry
//! (System V ABI; the VMM enters the guest with RFLAGS = 0x2) and clear again on return.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest`, first byte first.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads, `dest` for `n` bytes of writes, and the ranges
/// must not overlap unless `dest` lies below `src`.
#[inline]
pub unsafe fn copy_forward(dest: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller guarantees both ranges; `rep movsb` touches exactly those bytes, in
    // ascending order, and only the registers named here.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// `src` must be valid for `n` bytes of reads and `dest` for `n` bytes of writes.
#[inline]
pub unsafe fn copy(dest: *mut u8, src: *const u8, n: usize) {
    let dest_inside_src = (dest as usize).wrapping_sub(src as usize) < n;
    if !dest_inside_src {
        // SAFETY: the caller's guarantee; with `dest` below `src` or past its end, a forward
        // copy never reads a byte it already wrote.
        unsafe { copy_forward(dest, src, n) };
        return;
    }
    // SAFETY: the caller guarantees both ranges; copying from the last byte down (`std` sets
    // the direction flag, `cld` clears it again) reads every source byte before it is
    // overwritten. `n` is non-zero here (the test above failed), so `n - 1` does not wrap.
    unsafe {
        asm!(
            "std",
            "rep movsb",
            "cld",
            inout("rcx") n => _,
            inout("rdi") dest.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _,
            options(nostack)
        );
    }
}

/// Fills `n` bytes at `dest` with `value`.
///
/// # Safety
/// `dest` must be valid for `n` bytes of writes.
#[inline]
pub unsafe fn fill(dest: *mut u8, value: u8, n: usize) {
    // SAFETY: the caller guarantees `dest` for `n` bytes; `rep stosb` writes exactly those.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") value,
            options(nostack, preserves_flags)
        );
    }
}

/// Compares `n` bytes: negative, zero or positive as the first differing byte of `a` is below,
/// equal to or above that of `b` (as unsigned bytes).
///
/// # Safety
/// `a` and `b` must be valid for `n` bytes of reads.
#[inline]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let a_end: *const u8;
    let b_end: *const u8;
    let equal: u8;
    // SAFETY: the caller guarantees both ranges; `repe cmpsb` reads at most `n` bytes of each
    // and stops after the first difference, leaving `rsi`/`rdi` one past it.
    unsafe {
        asm!(
            "repe cmpsb",
            "sete {equal}",
            equal = out(reg_byte) equal,
            inout("rcx") n => _,
            inout("rsi") a => a_end,
            inout("rdi") b => b_end,
            options(nostack, readonly)
        );
    }
    if equal != 0 {
        return 0;
    }
    // SAFETY: the scan stopped on a difference, one byte before each end pointer, inside the
    // ranges the caller vouched for.
    let (x, y) = unsafe { (*a_end.sub(1), *b_end.sub(1)) };
    i32::from(x) - i32::from(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn copy_forward_copies() {
        let src = pattern(300);
        let mut dest = vec![0u8; 300];
        // SAFETY: both vectors hold 300 bytes and do not overlap.
        unsafe { copy_forward(dest.as_mut_ptr(), src.as_ptr(), 300) };
        assert_eq!(dest, src);
    }

    #[test]
    fn copy_handles_overlap_both_ways() {
        for (from, to) in [(0, 5), (5, 0), (3, 4), (4, 3), (10, 10)] {
            let mut ours = pattern(64);
            let mut std = pattern(64);
            std.copy_within(from..from + 40, to);
            let base = ours.as_mut_ptr();
            // SAFETY: both ranges lie inside the 64-byte vector.
            unsafe { copy(base.add(to), base.add(from), 40) };
            assert_eq!(ours, std, "copy {from} -> {to}");
        }
    }

    #[test]
    fn copy_of_nothing_touches_nothing() {
        let mut buf = pattern(8);
        let base = buf.as_mut_ptr();
        // SAFETY: zero bytes are read or written.
        unsafe { copy(base.add(1), base, 0) };
        assert_eq!(buf, pattern(8));
    }

    #[test]
    fn fill_fills_exactly() {
        let mut buf = vec![1u8; 32];
        // SAFETY: bytes 4..20 lie inside the vector.
        unsafe { fill(buf.as_mut_ptr().add(4), 0xab, 16) };
        assert!(buf[..4].iter().all(|&b| b == 1));
        assert!(buf[4..20].iter().all(|&b| b == 0xab));
        assert!(buf[20..].iter().all(|&b| b == 1));
    }

    #[test]
    fn compare_orders_like_slices() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"", b""),
            (b"abc", b"abc"),
            (b"abc", b"abd"),
            (b"abd", b"abc"),
            (b"\x00", b"\xff"),
            (b"\xffz", b"\x00a"),
        ];
        for (a, b) in cases {
            // SAFETY: both slices hold `a.len()` bytes.
            let ours = unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) };
            assert_eq!(ours.signum(), a.cmp(b) as i32, "{a:?} vs {b:?}");
        }
    }
}
