//! The engine's side of the monitor page ([`abi::monitor`]): what it writes for the kernel.
//! The header, flags and fault plan before boot; a verdict during each FAULT; a server's
//! trusted read-only labels whenever they change.

use crate::memory::GuestMemory;
use crate::recovery::error::RecoveryError;
use abi::monitor::{
    FLAG_RECOVERY, FLAG_SNAPSHOTS, FaultPlan, MAX_PLANNED_FAULTS, MONITOR_MAGIC, MONITOR_VERSION,
    MonitorPage, Verdict, VerdictAction,
};
use std::time::Duration;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::IntoBytes;

/// Writes the monitor page the kernel reads at boot: the contract's header, the flags
/// (snapshots and recovery on when `recovering`) and the fault plan. No label is read-only
/// yet: the engine trusts a declaration only once it has seen it hold.
pub fn write_monitor_page(
    mem: &GuestMemory,
    page: u64,
    recovering: bool,
    plan: &[FaultPlan; MAX_PLANNED_FAULTS],
) -> Result<(), RecoveryError> {
    let flags = if recovering {
        FLAG_SNAPSHOTS | FLAG_RECOVERY
    } else {
        0
    };
    let contents = MonitorPage {
        magic: MONITOR_MAGIC,
        version: MONITOR_VERSION,
        flags,
        plan: *plan,
        ..MonitorPage::default()
    };
    mem.write_slice(contents.as_bytes(), GuestAddress(page))
        .map_err(|_| RecoveryError::MonitorPage(page))
}

/// The verdict on fault `fault_seq`: `action`, after `delay` (rounded up to the kernel's 10 ms
/// ticks).
pub fn write_verdict(
    mem: &GuestMemory,
    page: u64,
    fault_seq: u64,
    action: VerdictAction,
    delay: Option<Duration>,
) -> Result<(), RecoveryError> {
    let delay_ticks = delay.map_or(0, |d| d.as_millis().div_ceil(10));
    let verdict = Verdict {
        fault_seq,
        action: action as u32,
        delay_ticks: u32::try_from(delay_ticks).unwrap_or(u32::MAX),
    };
    let addr = page + std::mem::offset_of!(MonitorPage, verdict) as u64;
    mem.write_slice(verdict.as_bytes(), GuestAddress(addr))
        .map_err(|_| RecoveryError::MonitorPage(page))
}

/// Task `task`'s labels whose boundaries need no snapshot now.
pub fn write_read_only(
    mem: &GuestMemory,
    page: u64,
    task: usize,
    mask: u64,
) -> Result<(), RecoveryError> {
    let addr = page + std::mem::offset_of!(MonitorPage, read_only) as u64 + 8 * task as u64;
    mem.write_obj(mask, GuestAddress(addr))
        .map_err(|_| RecoveryError::MonitorPage(page))
}
