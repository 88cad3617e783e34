//! Request declarations, checked rather than trusted.
//!
//! A server's request table says which requests are read-only; the kernel skips the snapshot
//! at the boundary that closes one (the exit to the VMM is most of a boundary's cost under
//! KVM-PVM). That is safe only if the declaration is true: a "read-only" request that wrote the
//! server's state would leave the write out of every snapshot, and a rollback would lose it.
//! So the VMM trusts a declaration only once it has seen it hold:
//!
//! ```text
//!  label declared read-only ──► not trusted yet: the kernel snapshots its boundaries
//!       │  each snapshot of such a boundary: did it copy any changed page?
//!       ├─ no, CHECKS times ──► trusted: its bit goes into the monitor page's read_only mask,
//!       │                       the kernel skips its snapshots from then on
//!       └─ yes ──► mis-declared: reported (a stderr line, the report's misdeclared_requests),
//!                  taken as state-changing for good
//!  every RECHECK snapshots of the server: trust is withdrawn and earned again
//! ```
//!
//! A snapshot's changed pages may also hold writes of trusted requests handled since the last
//! snapshot (their boundaries were skipped): the label reported is the one whose check found
//! them. Pure logic: the engine feeds it each snapshot's label and changed-page count and
//! writes [`Declarations::trusted`] into the monitor page when it changes.

use abi::requests::{MAX_LABEL, RequestTable};

/// Clean snapshots of a read-only request's boundary before it is trusted.
pub const CHECKS: u8 = 4;
/// Snapshots of a server between two withdrawals of trust (everything is checked again).
pub const RECHECK: u64 = 256;

/// What a snapshot said about the request whose boundary it closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Nothing to check: the request is declared state-changing, or undeclared, or trusted.
    Nothing,
    /// A read-only request left the state as it was (`trusted`: it is trusted from now on).
    Held {
        /// This check earned it its trust.
        trusted: bool,
    },
    /// A request declared read-only changed `pages` pages of the server's state.
    Misdeclared {
        /// Pages it changed.
        pages: usize,
    },
}

/// One server's declarations and what the VMM has seen of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declarations {
    /// Labels declared read-only and not caught writing.
    read_only: u64,
    /// Labels declared read-only and caught writing.
    caught: u64,
    /// Of those, the ones trusted now (their boundaries are not snapshotted).
    trusted: u64,
    /// Clean checks per label since it was last untrusted.
    checks: [u8; MAX_LABEL as usize + 1],
    /// Snapshots seen, for the periodic recheck.
    snapshots: u64,
}

impl Declarations {
    /// The declarations of `table` (none: nothing is read-only).
    pub fn new(table: Option<&RequestTable>) -> Self {
        Self {
            read_only: table.map_or(0, RequestTable::read_only_mask),
            caught: 0,
            trusted: 0,
            checks: [0; MAX_LABEL as usize + 1],
            snapshots: 0,
        }
    }

    /// True when request `label` was declared read-only and caught changing state.
    pub fn caught(&self, label: u64) -> bool {
        self.caught & label_bit(label) != 0
    }

    /// The labels whose boundaries need no snapshot now (the monitor page's mask).
    pub fn trusted(&self) -> u64 {
        self.trusted
    }

    /// A snapshot of the boundary that closed request `label` (0: none) found `changed` pages
    /// changed since the server's previous snapshot.
    pub fn snapshot(&mut self, label: u16, changed: usize) -> Finding {
        self.snapshots += 1;
        if self.snapshots.is_multiple_of(RECHECK) {
            self.trusted = 0;
            self.checks = [0; MAX_LABEL as usize + 1];
        }
        let bit = label_bit(u64::from(label));
        if self.read_only & bit == 0 || self.trusted & bit != 0 {
            return Finding::Nothing;
        }
        if changed > 0 {
            self.read_only &= !bit;
            self.caught |= bit;
            return Finding::Misdeclared { pages: changed };
        }
        let count = &mut self.checks[usize::from(label)];
        *count = count.saturating_add(1);
        let trusted = *count >= CHECKS;
        if trusted {
            self.trusted |= bit;
        }
        Finding::Held { trusted }
    }
}

/// The mask bit of `label` (0 for a label no table can declare).
fn label_bit(label: u64) -> u64 {
    match label {
        1..=MAX_LABEL => 1 << label,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::requests::RequestDecl;

    fn kv() -> RequestTable {
        RequestTable::new(
            "kv",
            &[
                RequestDecl::new(1, "PUT", RequestDecl::CHANGES_STATE),
                RequestDecl::new(2, "GET", RequestDecl::IDEMPOTENT),
                RequestDecl::new(3, "SCAN", 0),
            ],
        )
    }

    #[test]
    fn a_read_only_request_is_trusted_after_clean_checks() {
        let mut d = Declarations::new(Some(&kv()));
        assert_eq!(d.trusted(), 0, "nothing is trusted at first");
        for i in 1..CHECKS {
            assert_eq!(d.snapshot(2, 0), Finding::Held { trusted: false }, "{i}");
        }
        assert_eq!(d.snapshot(2, 0), Finding::Held { trusted: true });
        assert_eq!(d.trusted(), 1 << 2);
        assert_eq!(d.snapshot(2, 5), Finding::Nothing, "trusted: not checked");
        assert_eq!(d.snapshot(1, 9), Finding::Nothing, "state-changing");
        assert_eq!(d.snapshot(0, 9), Finding::Nothing, "no request");
        assert_eq!(
            d.snapshot(7, 9),
            Finding::Nothing,
            "undeclared: state-changing"
        );
        assert_eq!(d.snapshot(u16::MAX, 9), Finding::Nothing);
    }

    #[test]
    fn a_read_only_request_that_writes_is_never_trusted() {
        let mut d = Declarations::new(Some(&kv()));
        assert_eq!(d.snapshot(3, 0), Finding::Held { trusted: false });
        assert_eq!(d.snapshot(3, 2), Finding::Misdeclared { pages: 2 });
        for _ in 0..2 * CHECKS {
            assert_eq!(d.snapshot(3, 0), Finding::Nothing, "reported once");
        }
        assert_eq!(d.trusted(), 0);
        assert!(d.caught(3) && !d.caught(2) && !d.caught(64));
        assert_eq!(Declarations::new(None).snapshot(2, 0), Finding::Nothing);
    }

    #[test]
    fn trust_is_withdrawn_and_earned_again_periodically() {
        let mut d = Declarations::new(Some(&kv()));
        for _ in 0..CHECKS {
            d.snapshot(2, 0);
        }
        assert_eq!(d.trusted(), 1 << 2);
        let mut seen = u64::from(CHECKS);
        while !(seen + 1).is_multiple_of(RECHECK) {
            d.snapshot(1, 1);
            seen += 1;
        }
        assert_eq!(d.trusted(), 1 << 2);
        // The RECHECK-th snapshot withdraws trust: this GET is checked again, and caught.
        assert_eq!(d.snapshot(2, 1), Finding::Misdeclared { pages: 1 });
        assert_eq!(d.trusted(), 0);
    }
}
