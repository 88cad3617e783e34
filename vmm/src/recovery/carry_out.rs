//! Carrying a decision out: putting a crashed server's state arena back (to its last boundary,
//! or to its boot image for a fresh restart) and rolling its peers back to the snapshots a
//! consistent cut names. The pages written are clean again afterwards, for KVM (write-protected
//! anew) and for the VMM's own bitmap.

use crate::memory::GuestMemory;
use crate::outcome::Stop;
use crate::recovery::dirty::DirtyLog;
use crate::recovery::server::{Region, Server, vmm_bitmap};
use snapshot::{DirtyPages, PAGE_SIZE, RegionSnapshots, SnapshotError};
use vm_memory::Bytes;

impl Server {
    /// Puts the state arena back: to its last boundary, or (`fresh`) to its boot image, which
    /// then also becomes its only snapshot (of a store keeping `versions`). Returns the pages
    /// written.
    pub(super) fn restore(
        &mut self,
        mem: &GuestMemory,
        log: &impl DirtyLog,
        fresh: bool,
        versions: usize,
    ) -> Result<u64, Stop> {
        let (region, dirty) = self.dirty_pages(mem, log)?;
        // Before its first boundary the only version is the boot image: a plain restore.
        let pages = if fresh && self.boundaries != 0 {
            let written = self.write_boot_image(region)?;
            let (store, _) = RegionSnapshots::new(region, self.boundaries, versions)
                .map_err(|e| self.snapshot_error(e))?;
            self.store = store;
            written
        } else {
            self.store
                .restore_latest(region, &dirty)
                .map_err(|e| self.snapshot_error(e))?
                .pages as u64
        };
        self.clean(region, log, &dirty)?;
        Ok(pages)
    }

    /// Writes the boot image back over every page that differs from it; returns how many.
    fn write_boot_image(&self, region: &Region) -> Result<u64, Stop> {
        let mut written = 0;
        let mut buf = vec![0u8; PAGE_SIZE];
        for (p, boot) in self.boot.chunks_exact(PAGE_SIZE).enumerate() {
            let addr = vm_memory::MemoryRegionAddress((p * PAGE_SIZE) as u64);
            let mem_err = |e: vm_memory::guest_memory::Error| {
                self.snapshot_error(SnapshotError::Memory {
                    page: p,
                    reason: e.to_string(),
                })
            };
            region.read_slice(&mut buf, addr).map_err(mem_err)?;
            if buf != boot {
                region.write_slice(boot, addr).map_err(mem_err)?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Rolls this server back to its kept version `to`, as the peer of a crashed server (part
    /// of a consistent cut): its state arena goes back, its kernel state stays (the kernel
    /// reported it waiting at a boundary, having done nothing since but handle the crashed
    /// server's messages). The kernel goes on counting its snapshots from where it was, and
    /// names that number in later recovery windows, so the restored image is kept under it too
    /// (a version equal to `to`). Returns the pages written.
    pub(super) fn roll_back_to(
        &mut self,
        mem: &GuestMemory,
        log: &impl DirtyLog,
        to: u64,
    ) -> Result<u64, Stop> {
        let (region, dirty) = self.dirty_pages(mem, log)?;
        let stats = self
            .store
            .restore_to(region, to, &dirty)
            .map_err(|e| self.snapshot_error(e))?;
        if to < self.boundaries {
            let unchanged = DirtyPages::clean(self.store.pages());
            self.store
                .commit(region, &unchanged, self.boundaries)
                .map_err(|e| self.snapshot_error(e))?;
        }
        self.clean(region, log, &dirty)?;
        self.peer_rollbacks += 1;
        Ok(stats.pages as u64)
    }

    /// The region equals its snapshot on every page in `dirty`: clean again, for KVM and for
    /// the VMM's own bitmap.
    fn clean(&self, region: &Region, log: &impl DirtyLog, dirty: &DirtyPages) -> Result<(), Stop> {
        log.clear(self.slot, dirty).map_err(|e| self.log_error(e))?;
        vmm_bitmap(region).reset();
        Ok(())
    }
}
