//! The page-table pool and the per-task address spaces, built once at boot by
//! [`kernel::aspace`] and never changed.

use kernel::aspace::{self, Frames, MapError, Mapping};

/// Frames in the pool (each address space needs about eight).
pub const POOL_FRAMES: usize = 96;

#[derive(Debug)]
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Page tables, zero until used (RAM starts zeroed and this is `.bss`).
static mut POOL: [Table; POOL_FRAMES] = [const { Table([0; 512]) }; POOL_FRAMES];
static mut USED: usize = 0;

/// The pool as [`Frames`] (identity-mapped: a frame's address is its pointer).
#[derive(Debug)]
pub struct Pool;

impl Frames for Pool {
    fn alloc(&mut self) -> Option<u64> {
        // SAFETY: boot only, one CPU: nothing else touches the pool's bookkeeping.
        unsafe {
            let used = &raw mut USED;
            if *used >= POOL_FRAMES {
                return None;
            }
            let frame = (&raw mut POOL).cast::<Table>().add(*used) as u64;
            *used += 1;
            Some(frame)
        }
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` came from `alloc` (a pool frame) and `index` < 512 (aspace masks it).
        unsafe { (table as *const u64).add(index & 0x1ff).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, entry: u64) {
        // SAFETY: as in `read`; no address space using these tables is live during boot.
        unsafe { (table as *mut u64).add(index & 0x1ff).write_volatile(entry) }
    }
}

/// Builds one address space.
pub fn build(mappings: &[Mapping]) -> Result<u64, MapError> {
    aspace::build(&mut Pool, mappings)
}
