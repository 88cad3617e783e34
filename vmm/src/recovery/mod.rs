//! The recovery engine: per-server snapshots at message boundaries, and the restore of one
//! crashed server's pages while its peers keep their memory untouched. See docs/recovery.md.
//!
//! One file per phase: [`snapshots`] (boundary snapshots), [`declarations`] (request
//! declarations checked), [`translate`] (guest records into policy facts), [`decide`] (the
//! policy's decision as a plan), [`carry_out`] (restore, roll back peers, restart fresh),
//! [`isolation`] (the isolation check), [`protocol`] (the monitor page), [`report`] (the
//! records and the report); [`engine`] takes each call through them.
//!
//! It runs on the vCPU thread, inside the hypercalls of the guest kernel, so the guest is stopped
//! while it works: nothing is delivered into a server's region while it is snapshotted or
//! restored.
//!
//! ```text
//!  boot       every server's state arena copied as version 0 (its boot image)
//!  BOUNDARY   server S, boundary n: KVM's dirty log of S's slot | pages the VMM wrote
//!             ─► copy those pages into S's store as version n ─► clear the log for them
//!  FAULT      record + crash context ─► S's policy decides (policies crate) ─► restore S's
//!             pages dirtied since its last boundary (or its boot image) ─► verdict into the
//!             monitor page ─► the kernel restarts S
//!  RESTARTED  S runs again: latency = TSC now - TSC at the kernel's fault entry; the
//!             decision record is complete and printed
//! ```
//!
//! Everything the guest hands over is untrusted: task indices and boundary numbers are checked
//! against the engine's own tables, a bad one is a protocol violation (the VM stops with one
//! line), and nothing the guest writes can make the engine panic.

pub mod bench;
mod carry_out;
pub mod decide;
pub mod declarations;
pub mod dirty;
mod engine;
pub mod error;
pub mod events;
mod hot_pages;
mod isolation;
pub mod protocol;
pub mod report;
mod server;
mod snapshots;
pub mod translate;

pub use engine::Engine;
pub use error::RecoveryError;
pub use protocol::write_monitor_page;

/// Versions kept per server when nothing else is asked.
pub const DEFAULT_VERSIONS: usize = 4;
/// Fewest versions a store may keep (the last boundary and the one before).
pub const MIN_VERSIONS: usize = 2;
/// Most versions a store may keep.
pub const MAX_VERSIONS: usize = 1024;

/// How a run snapshots and recovers its servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// Snapshot servers at their boundaries and recover crashed ones (off: a crashed server
    /// stays stopped, as without this engine).
    pub enabled: bool,
    /// Versions kept per server (at least [`MIN_VERSIONS`]).
    pub versions: usize,
    /// Hash every other server's state arena around each restore and record whether it
    /// changed (costs a pass over guest memory per recovery).
    pub check_isolation: bool,
    /// Print a line per crash and per recovery on stderr.
    pub log_events: bool,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            versions: DEFAULT_VERSIONS,
            check_isolation: false,
            log_events: true,
        }
    }
}

#[cfg(test)]
mod tests;
