//! Page-granular access to a region.

use crate::SnapshotError;
use vm_memory::bitmap::Bitmap;
use vm_memory::{Bytes, GuestMemoryRegion, GuestRegionMmap, MemoryRegionAddress};

/// Snapshot granularity: the x86 page.
pub const PAGE_SIZE: usize = 4096;

/// A region read and written one page at a time.
pub trait PageIo {
    /// Size in bytes.
    fn size(&self) -> usize;

    /// Copies page `page` into `buf` (`PAGE_SIZE` bytes).
    fn read_page(&self, page: usize, buf: &mut [u8]) -> Result<(), SnapshotError>;

    /// Overwrites page `page` with `data` (`PAGE_SIZE` bytes).
    fn write_page(&self, page: usize, data: &[u8]) -> Result<(), SnapshotError>;
}

fn mem_err(page: usize) -> impl FnOnce(vm_memory::guest_memory::Error) -> SnapshotError {
    move |e| SnapshotError::Memory {
        page,
        reason: e.to_string(),
    }
}

impl<B: Bitmap> PageIo for GuestRegionMmap<B> {
    fn size(&self) -> usize {
        GuestMemoryRegion::len(self) as usize
    }

    fn read_page(&self, page: usize, buf: &mut [u8]) -> Result<(), SnapshotError> {
        let addr = MemoryRegionAddress((page * PAGE_SIZE) as u64);
        self.read_slice(buf, addr).map_err(mem_err(page))
    }

    fn write_page(&self, page: usize, data: &[u8]) -> Result<(), SnapshotError> {
        let addr = MemoryRegionAddress((page * PAGE_SIZE) as u64);
        self.write_slice(data, addr).map_err(mem_err(page))
    }
}
