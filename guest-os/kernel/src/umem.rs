//! User memory: pointers a task hands the kernel arrive as [`UserSlice`] (unvalidated) and
//! become a [`CheckedSlice`] only after a bounds check against the task's own regions. Only a
//! `CheckedSlice` can be turned into bytes (by the architecture layer, in the task's address
//! space, where those regions are mapped).

use abi::manifest::Range;

/// Longest slice the kernel accepts from a task (console text, panic messages).
pub const MAX_USER_SLICE: u64 = 256;

/// An address and length from a task's registers: not yet checked, not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserSlice {
    addr: u64,
    len: u64,
}

impl UserSlice {
    /// Wraps raw register values.
    pub const fn new(addr: u64, len: u64) -> Self {
        Self { addr, len }
    }
}

/// A slice that lies inside one of its task's readable regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedSlice {
    /// First byte (identity-mapped: virtual = physical).
    pub addr: u64,
    /// Length, at most [`MAX_USER_SLICE`].
    pub len: u64,
}

/// The regions a task can read: its text area, its state arena and its stack (its scratch
/// region without the guard page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regions {
    /// Code and read-only data.
    pub text: Range,
    /// The state arena.
    pub state: Range,
    /// The stack.
    pub stack: Range,
}

impl Regions {
    /// No memory at all.
    pub const EMPTY: Regions = Regions {
        text: Range::new(0, 0),
        state: Range::new(0, 0),
        stack: Range::new(0, 0),
    };

    /// `slice`, if it is at most [`MAX_USER_SLICE`] long and lies entirely inside one region.
    #[inline(always)]
    pub fn check(&self, slice: UserSlice) -> Option<CheckedSlice> {
        if slice.len > MAX_USER_SLICE {
            return None;
        }
        let range = Range::new(slice.addr, slice.len);
        range.end()?;
        // Spelled out, not iterated: no out-of-line call on this path (emulated ring 0).
        (self.text.contains_range(&range)
            || self.state.contains_range(&range)
            || self.stack.contains_range(&range))
        .then_some(CheckedSlice {
            addr: slice.addr,
            len: slice.len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Regions {
        Regions {
            text: Range::new(0x30_0000, 0x4_0000),
            state: Range::new(0x100_0000, 0x10_0000),
            stack: Range::new(0x110_1000, 0x1_f000),
        }
    }

    #[test]
    fn slices_inside_one_region_pass() {
        let r = regions();
        assert!(r.check(UserSlice::new(0x30_0000, 10)).is_some());
        assert!(r.check(UserSlice::new(0x10f_ff00, 256)).is_some());
        assert!(r.check(UserSlice::new(0x111_ffff, 1)).is_some());
        assert!(r.check(UserSlice::new(0x100_0000, 0)).is_some());
    }

    #[test]
    fn everything_else_fails() {
        let r = regions();
        for (addr, len) in [
            (0, 1),
            (0x10_0000, 8),    // kernel
            (0x110_0000, 8),   // guard page
            (0x10f_ffff, 2),   // runs off the state arena
            (0x100_0000, 257), // too long
            (u64::MAX, 2),     // wraps
            (0x112_0000, 1),   // past the stack
        ] {
            assert_eq!(r.check(UserSlice::new(addr, len)), None, "{addr:#x}+{len}");
        }
    }

    proptest::proptest! {
        #[test]
        fn checked_slices_always_lie_in_a_region(addr: u64, len in 0u64..512) {
            let r = regions();
            if let Some(c) = r.check(UserSlice::new(addr, len)) {
                let s = Range::new(c.addr, c.len);
                proptest::prop_assert!([r.text, r.state, r.stack].iter().any(|x| x.contains_range(&s)));
            }
        }
    }
}
