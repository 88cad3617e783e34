//! Boundary snapshots: at each boundary of a server the engine copies the pages of its state
//! arena that changed since the previous one into its store, as that boundary's version.
//!
//! ```text
//!  BOUNDARY/SNAPSHOTS  server S, boundary n: KVM's dirty log of S's slot | pages the VMM wrote
//!                      ─► copy those that changed into S's store as version n
//!                      ─► write-protect again the pages not written often (HotPages)
//! ```

use crate::memory::GuestMemory;
use crate::outcome::Stop;
use crate::recovery::dirty::DirtyLog;
use crate::recovery::server::Server;

/// What one boundary snapshot did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Committed {
    /// Pages the dirty logs reported.
    pub(super) dirty: usize,
    /// Of those, pages that had changed and were copied.
    pub(super) copied: usize,
    /// Write-protect faults the server took to dirty them.
    pub(super) write_faults: u64,
}

impl Server {
    /// Takes its snapshot as version `seq` (its next boundary) and re-protects the pages not
    /// written often.
    pub(super) fn commit(
        &mut self,
        mem: &GuestMemory,
        log: &impl DirtyLog,
        seq: u64,
    ) -> Result<Committed, Stop> {
        let (region, dirty) = self.dirty_pages(mem, log)?;
        let stats = self
            .store
            .commit(region, &dirty, seq)
            .map_err(|e| self.snapshot_error(e))?;
        let faults_before = self.hot_pages.faults;
        let protect = self.hot_pages.next(&dirty, seq);
        let write_faults = self.hot_pages.faults - faults_before;
        log.clear(self.slot, &protect)
            .map_err(|e| self.log_error(e))?;
        self.boundaries = seq;
        Ok(Committed {
            dirty: dirty.count(),
            copied: stats.pages,
            write_faults,
        })
    }
}
