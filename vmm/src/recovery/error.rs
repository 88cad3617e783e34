//! Why the recovery engine could not set up or go on (a leaf: the VMM's stop reasons wrap it).

use crate::recovery::{MAX_VERSIONS, MIN_VERSIONS};
use snapshot::SnapshotError;

/// Why the engine could not set up or go on.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// A snapshot store operation failed.
    #[error("snapshot of server {server}: {source}")]
    Snapshot {
        /// The server.
        server: String,
        /// What failed.
        source: SnapshotError,
    },
    /// KVM's dirty log could not be read or cleared.
    #[error("dirty log of server {server} (slot {slot}): {source}")]
    DirtyLog {
        /// The server.
        server: String,
        /// Its state slot.
        slot: u32,
        /// The ioctl's error.
        source: kvm_ioctls::Error,
    },
    /// The layout's memory and slots do not match (a VMM bug).
    #[error("server {0}: no memory region for its state arena")]
    NoRegion(String),
    /// The monitor page cannot be written.
    #[error("cannot write the monitor page at {0:#x}")]
    MonitorPage(u64),
    /// A bad number of versions.
    #[error("--snapshot-versions {0}: must be between {MIN_VERSIONS} and {MAX_VERSIONS}")]
    Versions(usize),
}
