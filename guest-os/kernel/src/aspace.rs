//! Address spaces: what each task's page tables map, and building them (4-level x86_64 paging,
//! identity-mapped: virtual = physical). Every 2 MiB-aligned stretch a mapping covers whole
//! gets one 2 MiB page (the kernel image: its accesses are emulated on KVM-PVM, and a large page
//! saves a level of the guest page walk on each); the rest gets 4 KiB pages.
//!
//! Every task gets its own tables, built once at boot and never changed: the kernel image and
//! the monitor page supervisor-only, the task's text area user read/execute, its state arena
//! and stack user read/write/no-execute. Nothing else is mapped (other tasks, free RAM, the
//! stack guard page), so a stray access is a page fault confined to the task.
//!
//! The tables live in a pool of frames the caller provides ([`Frames`]), zeroed, so that the
//! same code runs on the host in tests and in the kernel at boot.

use abi::manifest::Range;

/// Present.
pub const PRESENT: u64 = 1 << 0;
/// Writable.
pub const WRITE: u64 = 1 << 1;
/// User-accessible.
pub const USER: u64 = 1 << 2;
/// No-execute (needs EFER.NXE).
pub const NO_EXEC: u64 = 1 << 63;
/// A 2 MiB page (in a page-directory entry).
pub const LARGE: u64 = 1 << 7;
/// The physical-address bits of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PAGE: u64 = 0x1000;
const LARGE_PAGE: u64 = 0x20_0000;

/// One range to map and its leaf flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Page-aligned range.
    pub range: Range,
    /// Leaf entry flags ([`PRESENT`] is added).
    pub flags: u64,
}

/// The mappings of task with regions `text`, `state`, `stack` in an image whose kernel
/// occupies `kernel` and whose monitor page is `monitor`.
pub fn task_mappings(
    kernel: Range,
    monitor: u64,
    text: Range,
    state: Range,
    stack: Range,
) -> [Mapping; 5] {
    [
        Mapping {
            range: kernel,
            flags: WRITE,
        },
        Mapping {
            range: Range::new(monitor, PAGE),
            flags: WRITE | NO_EXEC,
        },
        Mapping {
            range: text,
            flags: USER,
        },
        Mapping {
            range: state,
            flags: USER | WRITE | NO_EXEC,
        },
        Mapping {
            range: stack,
            flags: USER | WRITE | NO_EXEC,
        },
    ]
}

/// Page-table memory: zeroed 4 KiB frames, and entry access by physical address.
pub trait Frames {
    /// A fresh zeroed frame, or `None` when the pool is exhausted.
    fn alloc(&mut self) -> Option<u64>;
    /// Entry `index` of the table at `table`.
    fn read(&self, table: u64, index: usize) -> u64;
    /// Writes entry `index` of the table at `table`.
    fn write(&mut self, table: u64, index: usize, entry: u64);
}

/// Why a space could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The frame pool ran out.
    OutOfFrames,
    /// A range is not page-aligned or wraps.
    Unaligned,
    /// A page is mapped twice.
    Overlap(u64),
}

/// Builds a space holding `mappings`; returns its root (the CR3 value).
pub fn build(frames: &mut impl Frames, mappings: &[Mapping]) -> Result<u64, MapError> {
    let root = frames.alloc().ok_or(MapError::OutOfFrames)?;
    for m in mappings {
        let end = m.range.end().ok_or(MapError::Unaligned)?;
        if m.range.base % PAGE != 0 || end % PAGE != 0 {
            return Err(MapError::Unaligned);
        }
        let mut page = m.range.base;
        while page < end {
            if page % LARGE_PAGE == 0 && end - page >= LARGE_PAGE {
                map_page(frames, root, page, LARGE_PAGE, m.flags | PRESENT)?;
                page += LARGE_PAGE;
            } else {
                // 4 KiB pages up to the end of this page table's 2 MiB, all in one table: one
                // walk for the run, then a tight loop (the boot runs this in emulated ring 0
                // on KVM-PVM, where every instruction counts).
                let run_end = end.min((page | (LARGE_PAGE - 1)) + 1);
                let (table, fresh) = leaf_table(frames, root, page)?;
                fill(frames, table, page, run_end, m.flags | PRESENT, !fresh)?;
                page = run_end;
            }
        }
    }
    Ok(root)
}

/// The page table (level 0) that maps `addr`, made (with the levels above it) if missing;
/// true when it was made now (all its entries are zero).
fn leaf_table(frames: &mut impl Frames, root: u64, addr: u64) -> Result<(u64, bool), MapError> {
    let mut table = root;
    let mut fresh = false;
    for level in [3, 2, 1] {
        let i = index(addr, level);
        let entry = frames.read(table, i);
        table = if entry & LARGE != 0 && level == 1 {
            return Err(MapError::Overlap(addr));
        } else if entry & PRESENT != 0 {
            entry & ADDR_MASK
        } else {
            let next = frames.alloc().ok_or(MapError::OutOfFrames)?;
            frames.write(table, i, next | PRESENT | WRITE | USER);
            fresh = level == 1;
            next
        };
    }
    Ok((table, fresh))
}

/// Maps the 4 KiB pages from `from` to `to` (inside one 2 MiB stretch) in page table `table`
/// with entry flags `leaf`; `check`: the table may hold entries already (else it is fresh, all
/// zero, and the run writes without reading).
fn fill(
    frames: &mut impl Frames,
    table: u64,
    from: u64,
    to: u64,
    leaf: u64,
    check: bool,
) -> Result<(), MapError> {
    let mut addr = from;
    let mut i = index(from, 0);
    while addr < to {
        if check && frames.read(table, i) & PRESENT != 0 {
            return Err(MapError::Overlap(addr));
        }
        frames.write(table, i, (addr & ADDR_MASK) | leaf);
        addr += PAGE;
        i += 1;
    }
    Ok(())
}

fn index(addr: u64, level: u32) -> usize {
    ((addr >> (12 + 9 * level)) & 0x1ff) as usize
}

/// Maps the page of `size` (4 KiB or 2 MiB) at `addr` with entry flags `leaf`.
fn map_page(
    frames: &mut impl Frames,
    root: u64,
    addr: u64,
    size: u64,
    leaf: u64,
) -> Result<(), MapError> {
    let (leaf_level, leaf) = if size == LARGE_PAGE {
        (1, leaf | LARGE)
    } else {
        (0, leaf)
    };
    let mut table = root;
    for level in (leaf_level + 1..=3).rev() {
        let i = index(addr, level);
        let entry = frames.read(table, i);
        table = if entry & LARGE != 0 && level == 1 {
            return Err(MapError::Overlap(addr));
        } else if entry & PRESENT != 0 {
            entry & ADDR_MASK
        } else {
            let next = frames.alloc().ok_or(MapError::OutOfFrames)?;
            frames.write(table, i, next | PRESENT | WRITE | USER);
            next
        };
    }
    let i = index(addr, leaf_level);
    if frames.read(table, i) & PRESENT != 0 {
        return Err(MapError::Overlap(addr));
    }
    frames.write(table, i, (addr & ADDR_MASK) | leaf);
    Ok(())
}

/// The leaf entry mapping `addr` in the space at `root`, if any (for tests and checks); a
/// 2 MiB page's entry has [`LARGE`] set.
pub fn lookup(frames: &impl Frames, root: u64, addr: u64) -> Option<u64> {
    let mut table = root;
    for level in [3, 2, 1] {
        let entry = frames.read(table, index(addr, level));
        if entry & PRESENT == 0 {
            return None;
        }
        if level == 1 && entry & LARGE != 0 {
            return Some(entry);
        }
        table = entry & ADDR_MASK;
    }
    let leaf = frames.read(table, index(addr, 0));
    (leaf & PRESENT != 0).then_some(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Frames on the host: a map from frame address to its 512 entries.
    #[derive(Default)]
    struct HostFrames {
        tables: HashMap<u64, [u64; 512]>,
        next: u64,
        limit: usize,
    }

    impl Frames for HostFrames {
        fn alloc(&mut self) -> Option<u64> {
            if self.tables.len() >= self.limit {
                return None;
            }
            self.next += PAGE;
            self.tables.insert(self.next, [0; 512]);
            Some(self.next)
        }
        fn read(&self, table: u64, index: usize) -> u64 {
            self.tables[&table][index]
        }
        fn write(&mut self, table: u64, index: usize, entry: u64) {
            self.tables.get_mut(&table).expect("table")[index] = entry;
        }
    }

    fn frames(limit: usize) -> HostFrames {
        HostFrames {
            limit,
            ..Default::default()
        }
    }

    fn task(i: u64) -> [Mapping; 5] {
        let state = 0x100_0000 + i * 0x20_0000;
        task_mappings(
            Range::new(0x20_0000, 0x20_0000),
            0x80_0000,
            Range::new(0x40_0000 + i * 0x4_0000, 0x4_0000),
            Range::new(state, 0x10_0000),
            Range::new(state + 0x10_1000, 0x1_f000),
        )
    }

    #[test]
    fn a_task_sees_its_own_regions_and_the_kernel_supervisor_only() {
        let mut f = frames(64);
        let root = build(&mut f, &task(1)).expect("built");
        let kernel = lookup(&f, root, 0x20_0000).expect("kernel mapped");
        assert_eq!(kernel & USER, 0);
        assert_eq!(
            kernel & (LARGE | ADDR_MASK),
            LARGE | 0x20_0000,
            "one 2 MiB page"
        );
        assert_eq!(lookup(&f, root, 0x3f_f000), Some(kernel));
        assert_eq!(
            lookup(&f, root, 0x80_0000).map(|e| e & LARGE),
            Some(0),
            "monitor: 4 KiB"
        );
        let text = lookup(&f, root, 0x44_0000).expect("text");
        assert_eq!(text & LARGE, 0);
        assert_eq!(text & (USER | WRITE | NO_EXEC), USER);
        let state = lookup(&f, root, (0x130_0000 - 8) & !0xfff).expect("state");
        assert_eq!(state & (USER | WRITE | NO_EXEC), USER | WRITE | NO_EXEC);
        assert_eq!(state & ADDR_MASK, 0x12f_f000);
        // Not mapped: the guard page, another task's text and state, free RAM, low memory.
        for addr in [
            0x130_0000, 0x40_0000, 0x100_0000, 0x800_1000, 0x1f_f000, 0x7000,
        ] {
            assert_eq!(lookup(&f, root, addr), None, "{addr:#x}");
        }
        assert!(f.tables.len() <= 9, "{} tables", f.tables.len());
    }

    /// The old way, page by page: every page walked from the root.
    fn page_by_page(frames: &mut HostFrames, mappings: &[Mapping]) -> Result<u64, MapError> {
        let root = frames.alloc().ok_or(MapError::OutOfFrames)?;
        for m in mappings {
            let end = m.range.end().ok_or(MapError::Unaligned)?;
            if m.range.base % PAGE != 0 || end % PAGE != 0 {
                return Err(MapError::Unaligned);
            }
            let mut page = m.range.base;
            while page < end {
                let size = if page % LARGE_PAGE == 0 && end - page >= LARGE_PAGE {
                    LARGE_PAGE
                } else {
                    PAGE
                };
                map_page(frames, root, page, size, m.flags | PRESENT)?;
                page += size;
            }
        }
        Ok(root)
    }

    proptest::proptest! {
        /// Runs of 4 KiB pages filled in one table each map exactly what mapping every page
        /// on its own does: the same entries in the same tables, the same errors.
        #[test]
        fn runs_map_what_page_by_page_maps(
            ranges in proptest::collection::vec((0u64..2048, 1u64..1200, 0u64..8), 1..6)
        ) {
            let mappings: Vec<Mapping> = ranges
                .iter()
                .map(|&(start, pages, flags)| Mapping {
                    range: Range::new(0x10_0000 + start * PAGE, pages * PAGE),
                    flags: [0, WRITE, USER, USER | WRITE | NO_EXEC][flags as usize % 4],
                })
                .collect();
            let (mut a, mut b) = (frames(512), frames(512));
            let fast = build(&mut a, &mappings);
            let slow = page_by_page(&mut b, &mappings);
            proptest::prop_assert_eq!(fast, slow);
            if fast.is_ok() {
                proptest::prop_assert_eq!(&a.tables, &b.tables);
            }
        }
    }

    #[test]
    fn errors_are_reported() {
        assert_eq!(build(&mut frames(3), &task(0)), Err(MapError::OutOfFrames));
        let twice = [task(0)[0], task(0)[0]];
        assert_eq!(
            build(&mut frames(64), &twice),
            Err(MapError::Overlap(0x20_0000))
        );
        let odd = [Mapping {
            range: Range::new(0x1001, 0x1000),
            flags: 0,
        }];
        assert_eq!(build(&mut frames(64), &odd), Err(MapError::Unaligned));
        // A 4 KiB page inside a 2 MiB one, and a 2 MiB page over 4 KiB ones.
        let small = Mapping {
            range: Range::new(0x30_0000, 0x1000),
            flags: 0,
        };
        let large = Mapping {
            range: Range::new(0x20_0000, 0x20_0000),
            flags: 0,
        };
        let inside = [large, small];
        assert_eq!(
            build(&mut frames(64), &inside),
            Err(MapError::Overlap(0x30_0000))
        );
        let over = [small, large];
        assert_eq!(
            build(&mut frames(64), &over),
            Err(MapError::Overlap(0x20_0000))
        );
    }
}
