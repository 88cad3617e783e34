//! Per-region page snapshots: incremental copies at message boundaries, versioned, restored page
//! by page.
//!
//! A server's state arena is one guest memory region (one KVM memslot with dirty logging). This
//! crate keeps, outside guest RAM, the region's image as it was at the server's last boundaries:
//!
//! ```text
//!   guest region ──(dirty pages since the last boundary)──► commit(seq) ──► shadow = image@seq
//!                                                                     └──► undo delta (old pages)
//!   restore_latest: write shadow pages back, only for the pages dirtied since the boundary
//!                   that differ from them
//!   restore_to(older seq): also replay the undo deltas newer than it, newest first
//! ```
//!
//! * [`DirtyPages`] is a page bitmap: KVM's dirty log for the slot ORed with the pages the VMM
//!   wrote itself (KVM does not see those), e.g. from vm-memory's `AtomicBitmap`.
//! * The store trusts its dirty maps: a map must name every page written since the previous
//!   commit. Naming more costs a compare and changes nothing; a page left out is neither
//!   captured by the commit nor put back by a restore (its images keep the contents of the last
//!   commit that named it). Tests pin both.
//! * [`RegionSnapshots`] holds the shadow image (the newest version) plus up to `max_versions - 1`
//!   undo deltas, each holding the previous contents of the pages that changed between two
//!   versions. Memory use is one region copy plus the pages that changed in the window.
//! * Sequence numbers are the boundaries' own and strictly increase; a commit with a stale
//!   sequence number is refused, so a late or repeated commit can never overwrite a newer image.
//! * Every commit and restore returns [`Stats`] (pages, bytes, time).
//!
//! Nothing here knows KVM: the region is anything that implements [`PageIo`] (vm-memory's
//! `GuestRegionMmap` does), so the tests run on plain anonymous memory.
#![forbid(unsafe_code)]

mod dirty;
mod io;
mod store;

pub use dirty::DirtyPages;
pub use io::{PAGE_SIZE, PageIo};
pub use store::{RegionSnapshots, Stats};

/// Why a snapshot operation failed. Nothing is changed when one is returned.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SnapshotError {
    /// The region is not a whole number of pages, or is empty.
    #[error("region of {0} bytes is not a positive whole number of {PAGE_SIZE}-byte pages")]
    RegionSize(usize),
    /// A dirty bitmap of the wrong length.
    #[error("dirty bitmap covers {got} pages, the region has {expected}")]
    BitmapSize {
        /// Pages in the bitmap.
        got: usize,
        /// Pages in the region.
        expected: usize,
    },
    /// A commit whose sequence number does not follow the newest one.
    #[error("commit of sequence {got} refused: the newest version is {newest}")]
    StaleSequence {
        /// The refused number.
        got: u64,
        /// The newest committed number.
        newest: u64,
    },
    /// A restore to a version that is not (or no longer) kept.
    #[error("version {0} is not kept (kept: {1:?})")]
    NoSuchVersion(u64, Vec<u64>),
    /// `max_versions` below 1.
    #[error("a store must keep at least one version")]
    NoVersions,
    /// Reading or writing guest memory failed.
    #[error("guest memory access to page {page} failed: {reason}")]
    Memory {
        /// Page index in the region.
        page: usize,
        /// vm-memory's message.
        reason: String,
    },
}
