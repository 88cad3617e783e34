//! The `vmm` process exit-status contract.
//!
//! Statuses 0..=63 are the guest's own, passed through unchanged. Everything the VMM itself decides
//! has a reserved status outside that range, so a script can always tell "the guest said 2" from
//! "the command line was wrong".

/// Highest status a guest may pass through.
pub const GUEST_MAX: u8 = 63;
/// A guest status by convention: the bundled kernel's when it fails itself (a fault in ring 0,
/// a broken invariant). Fault injection's classification reads it as the kernel failing.
pub const KERNEL_FAULT: u8 = 62;
/// Bad command line (clap errors included; `--help` and `--version` exit 0).
pub const USAGE: u8 = 64;
/// The image is missing, unreadable, not an x86_64 ELF, or does not fit guest memory.
pub const IMAGE: u8 = 65;
/// A configuration value or file is invalid.
pub const CONFIG: u8 = 66;
/// The host cannot run the VM: no usable `/dev/kvm`, a missing KVM capability, out of memory.
pub const HOST: u8 = 67;
/// A VMM bug or unexpected host failure while the VM ran.
pub const VMM_INTERNAL: u8 = 70;
/// The guest triple-faulted (KVM_EXIT_SHUTDOWN).
pub const TRIPLE_FAULT: u8 = 80;
/// KVM could not run the guest (KVM_EXIT_INTERNAL_ERROR, failed entry), e.g. SSE in ring 0 on PVM.
pub const GUEST_INTERNAL_ERROR: u8 = 81;
/// The guest broke the monitor protocol: unknown or malformed hypercall, call from ring 3, bad port.
pub const GUEST_PROTOCOL: u8 = 82;
/// `--timeout` expired before the guest stopped.
pub const TIMEOUT: u8 = 83;
/// A recovery policy chose to fail-stop the VM.
pub const FAIL_STOP: u8 = 84;
/// `vmm fleet`: every case ran, and some are bad (silent corruption, timeout, propagation,
/// fail-stop, VMM error).
pub const FLEET_BAD: u8 = 85;
/// `vmm fleet`: cases are missing (a stopped run, shards not all merged).
pub const FLEET_INCOMPLETE: u8 = 86;
/// `vmm fleet replay`: the case did not reproduce (another concrete fault, class or signature).
pub const FLEET_NOT_REPRODUCED: u8 = 87;
/// `vmm ctl`: no VM answers at the socket.
pub const CTL_UNREACHABLE: u8 = 88;
/// Stopped by a signal: the status is `SIGNAL_BASE + signal number` (130 for SIGINT, 143 for SIGTERM).
pub const SIGNAL_BASE: u8 = 128;

/// One row of the exit-status table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// The first status of the row.
    pub first: u8,
    /// The last status of the row (equal to `first` for single codes).
    pub last: u8,
    /// Short name.
    pub name: &'static str,
    /// What it means.
    pub meaning: &'static str,
}

const fn row(first: u8, last: u8, name: &'static str, meaning: &'static str) -> StatusRow {
    StatusRow {
        first,
        last,
        name,
        meaning,
    }
}

/// The whole contract, in status order (the source for `vmm --help` and docs/exit-status.md).
pub const TABLE: &[StatusRow] = &[
    row(
        0,
        GUEST_MAX,
        "guest",
        "the guest's own exit status, passed through",
    ),
    row(USAGE, USAGE, "usage", "bad command line"),
    row(IMAGE, IMAGE, "image", "bad or missing guest image"),
    row(
        CONFIG,
        CONFIG,
        "config",
        "bad configuration value or file (vmm ctl: the VM refused the request)",
    ),
    row(
        HOST,
        HOST,
        "host",
        "host cannot run the VM (no /dev/kvm, missing capability)",
    ),
    row(
        VMM_INTERNAL,
        VMM_INTERNAL,
        "internal",
        "VMM bug or unexpected host failure",
    ),
    row(
        TRIPLE_FAULT,
        TRIPLE_FAULT,
        "triple-fault",
        "guest triple-faulted",
    ),
    row(
        GUEST_INTERNAL_ERROR,
        GUEST_INTERNAL_ERROR,
        "guest-internal-error",
        "KVM could not run the guest",
    ),
    row(
        GUEST_PROTOCOL,
        GUEST_PROTOCOL,
        "protocol",
        "guest broke the monitor protocol",
    ),
    row(TIMEOUT, TIMEOUT, "timeout", "--timeout expired"),
    row(
        FAIL_STOP,
        FAIL_STOP,
        "fail-stop",
        "a recovery policy stopped the VM",
    ),
    row(
        FLEET_BAD,
        FLEET_BAD,
        "fleet-bad",
        "vmm fleet: every case ran, some are bad (silent corruption, timeout, ...)",
    ),
    row(
        FLEET_INCOMPLETE,
        FLEET_INCOMPLETE,
        "fleet-incomplete",
        "vmm fleet: cases are missing (a stopped run, shards not merged)",
    ),
    row(
        FLEET_NOT_REPRODUCED,
        FLEET_NOT_REPRODUCED,
        "not-reproduced",
        "vmm fleet replay: the case did not reproduce",
    ),
    row(
        CTL_UNREACHABLE,
        CTL_UNREACHABLE,
        "ctl-unreachable",
        "vmm ctl: no VM answers at the socket",
    ),
    row(
        SIGNAL_BASE + 1,
        SIGNAL_BASE + 64,
        "signal",
        "stopped by signal N (130: SIGINT, Ctrl-C; 143: SIGTERM; 129: SIGHUP)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_ordered_and_disjoint() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].first <= pair[0].last);
            assert!(
                pair[0].last < pair[1].first,
                "{} overlaps {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn reserved_statuses_are_outside_the_guest_range() {
        for r in &TABLE[1..] {
            assert!(
                r.first > GUEST_MAX,
                "{} collides with guest statuses",
                r.name
            );
        }
        assert_eq!(SIGNAL_BASE + 2, 130);
        assert_eq!(SIGNAL_BASE + 15, 143);
    }
}
