//! The versioned store of one region.

use crate::io::{PAGE_SIZE, PageIo};
use crate::{DirtyPages, SnapshotError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What one commit or restore did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Pages copied (into the store for a commit, into the region for a restore).
    pub pages: usize,
    /// Bytes copied.
    pub bytes: usize,
    /// Time taken.
    pub elapsed: Duration,
}

impl Stats {
    fn new(pages: usize, started: Instant) -> Self {
        Self {
            pages,
            bytes: pages * PAGE_SIZE,
            elapsed: started.elapsed(),
        }
    }
}

/// The previous contents of the pages that changed between version `seq` and the next one.
#[derive(Clone, Debug)]
struct Delta {
    seq: u64,
    pages: Vec<(usize, Box<[u8]>)>,
}

/// The last versions of one region: the newest image in full, older ones as undo deltas.
#[derive(Clone, Debug)]
pub struct RegionSnapshots {
    pages: usize,
    shadow: Vec<u8>,
    newest: u64,
    /// Oldest first; the last one turns the shadow back into the version before `newest`.
    deltas: VecDeque<Delta>,
    max_versions: usize,
}

impl RegionSnapshots {
    /// Takes a full copy of `region` as version `seq`, keeping at most `max_versions` versions.
    pub fn new(
        region: &impl PageIo,
        seq: u64,
        max_versions: usize,
    ) -> Result<(Self, Stats), SnapshotError> {
        let started = Instant::now();
        let len = region.size();
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(SnapshotError::RegionSize(len));
        }
        if max_versions == 0 {
            return Err(SnapshotError::NoVersions);
        }
        let pages = len / PAGE_SIZE;
        let mut shadow = vec![0u8; len];
        for (page, chunk) in shadow.chunks_exact_mut(PAGE_SIZE).enumerate() {
            region.read_page(page, chunk)?;
        }
        let store = Self {
            pages,
            shadow,
            newest: seq,
            deltas: VecDeque::new(),
            max_versions,
        };
        Ok((store, Stats::new(pages, started)))
    }

    /// Pages in the region.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The newest committed version.
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// Kept versions, oldest first.
    pub fn versions(&self) -> Vec<u64> {
        self.deltas
            .iter()
            .map(|d| d.seq)
            .chain(std::iter::once(self.newest))
            .collect()
    }

    fn check_bitmap(&self, dirty: &DirtyPages) -> Result<(), SnapshotError> {
        if dirty.pages() != self.pages {
            return Err(SnapshotError::BitmapSize {
                got: dirty.pages(),
                expected: self.pages,
            });
        }
        Ok(())
    }

    fn shadow_page(&self, page: usize) -> &[u8] {
        &self.shadow[page * PAGE_SIZE..(page + 1) * PAGE_SIZE]
    }

    /// Records the region as version `seq`, copying only the `dirty` pages (KVM's log for the
    /// slot plus the pages the VMM wrote). On error nothing changes.
    pub fn commit(
        &mut self,
        region: &impl PageIo,
        dirty: &DirtyPages,
        seq: u64,
    ) -> Result<Stats, SnapshotError> {
        let started = Instant::now();
        self.check_bitmap(dirty)?;
        if seq <= self.newest {
            return Err(SnapshotError::StaleSequence {
                got: seq,
                newest: self.newest,
            });
        }
        // Read everything first, so that a failed read leaves the store as it was.
        let mut changed = Vec::new();
        let mut buf = vec![0u8; PAGE_SIZE];
        for page in dirty.iter() {
            region.read_page(page, &mut buf)?;
            if buf != self.shadow_page(page) {
                changed.push((page, buf.clone().into_boxed_slice()));
            }
        }
        let mut old = Vec::with_capacity(changed.len());
        for (page, new) in changed {
            let slot = &mut self.shadow[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
            old.push((page, Box::<[u8]>::from(&*slot)));
            slot.copy_from_slice(&new);
        }
        let copied = old.len();
        self.deltas.push_back(Delta {
            seq: self.newest,
            pages: old,
        });
        while self.deltas.len() >= self.max_versions {
            self.deltas.pop_front();
        }
        self.newest = seq;
        Ok(Stats::new(copied, started))
    }

    /// Puts the region back to the newest version, writing only the pages in `dirty_since`
    /// (dirtied since that version was committed) that differ from it; returns those. A failed
    /// write leaves the region partly restored: the caller must then not run the server from it.
    pub fn restore_latest(
        &self,
        region: &impl PageIo,
        dirty_since: &DirtyPages,
    ) -> Result<Stats, SnapshotError> {
        let started = Instant::now();
        self.check_bitmap(dirty_since)?;
        let written = self.write_back(region, dirty_since)?;
        Ok(Stats::new(written, started))
    }

    /// Writes the shadow's copy of each page in `pages` that differs from the region's (a page
    /// reported dirty may be unchanged: one left writable between snapshots is reported at
    /// every one); returns how many it wrote.
    fn write_back(&self, region: &impl PageIo, pages: &DirtyPages) -> Result<usize, SnapshotError> {
        let mut written = 0;
        let mut buf = vec![0u8; PAGE_SIZE];
        for page in pages.iter() {
            region.read_page(page, &mut buf)?;
            if buf != self.shadow_page(page) {
                region.write_page(page, self.shadow_page(page))?;
                written += 1;
            }
        }
        Ok(written)
    }

    /// Puts the region back to the kept version `seq`: of the pages dirtied since the newest
    /// version and every page that changed after `seq`, writes those that differ from `seq`'s
    /// image, and returns how many. Versions newer than `seq` are dropped: the region's history
    /// continues from `seq`.
    pub fn restore_to(
        &mut self,
        region: &impl PageIo,
        seq: u64,
        dirty_since: &DirtyPages,
    ) -> Result<Stats, SnapshotError> {
        if seq == self.newest {
            return self.restore_latest(region, dirty_since);
        }
        let started = Instant::now();
        self.check_bitmap(dirty_since)?;
        let index = self
            .deltas
            .iter()
            .position(|d| d.seq == seq)
            .ok_or_else(|| SnapshotError::NoSuchVersion(seq, self.versions()))?;
        // Roll the shadow back, newest delta first: afterwards it is the image of `seq`.
        let mut touched = dirty_since.clone();
        let undone: Vec<Delta> = self.deltas.drain(index..).rev().collect();
        for delta in &undone {
            for (page, old) in &delta.pages {
                self.shadow[page * PAGE_SIZE..(page + 1) * PAGE_SIZE].copy_from_slice(old);
                touched.set(*page);
            }
        }
        self.newest = seq;
        let written = self.write_back(region, &touched)?;
        Ok(Stats::new(written, started))
    }

    /// The full image of version `seq` (for tests and persistence).
    pub fn image(&self, seq: u64) -> Result<Vec<u8>, SnapshotError> {
        let mut image = self.shadow.clone();
        if seq == self.newest {
            return Ok(image);
        }
        let index = self
            .deltas
            .iter()
            .position(|d| d.seq == seq)
            .ok_or_else(|| SnapshotError::NoSuchVersion(seq, self.versions()))?;
        for delta in self.deltas.iter().skip(index).rev() {
            for (page, old) in &delta.pages {
                image[page * PAGE_SIZE..(page + 1) * PAGE_SIZE].copy_from_slice(old);
            }
        }
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;

    /// A region in a Vec that records which pages were written (test double of guest memory).
    struct Mem {
        bytes: RefCell<Vec<u8>>,
        fail_on: Option<usize>,
    }

    impl Mem {
        fn new(pages: usize) -> Self {
            Self {
                bytes: RefCell::new(vec![0; pages * PAGE_SIZE]),
                fail_on: None,
            }
        }
        fn poke(&self, addr: usize, value: u8) {
            self.bytes.borrow_mut()[addr] = value;
        }
        fn image(&self) -> Vec<u8> {
            self.bytes.borrow().clone()
        }
    }

    impl PageIo for Mem {
        fn size(&self) -> usize {
            self.bytes.borrow().len()
        }
        fn read_page(&self, page: usize, buf: &mut [u8]) -> Result<(), SnapshotError> {
            if self.fail_on == Some(page) {
                return Err(SnapshotError::Memory {
                    page,
                    reason: "injected".into(),
                });
            }
            buf.copy_from_slice(&self.bytes.borrow()[page * PAGE_SIZE..(page + 1) * PAGE_SIZE]);
            Ok(())
        }
        fn write_page(&self, page: usize, data: &[u8]) -> Result<(), SnapshotError> {
            self.bytes.borrow_mut()[page * PAGE_SIZE..(page + 1) * PAGE_SIZE].copy_from_slice(data);
            Ok(())
        }
    }

    fn dirty_of(pages: usize, addrs: &[usize]) -> DirtyPages {
        let mut d = DirtyPages::clean(pages);
        addrs.iter().for_each(|a| d.set(a / PAGE_SIZE));
        d
    }

    #[test]
    fn commit_copies_only_changed_dirty_pages_and_restore_writes_only_dirty_ones() {
        let mem = Mem::new(8);
        let (mut s, full) = RegionSnapshots::new(&mem, 1, 3).expect("snapshot");
        assert_eq!((full.pages, s.pages()), (8, 8));
        mem.poke(5, 1);
        mem.poke(3 * PAGE_SIZE, 2);
        // Page 7 is reported dirty but did not change: nothing to keep for it.
        let st = s
            .commit(&mem, &dirty_of(8, &[5, 3 * PAGE_SIZE, 7 * PAGE_SIZE]), 2)
            .expect("commit");
        assert_eq!((st.pages, st.bytes), (2, 2 * PAGE_SIZE));
        let at2 = mem.image();
        mem.poke(6 * PAGE_SIZE + 9, 7);
        let st = s
            .restore_latest(&mem, &dirty_of(8, &[6 * PAGE_SIZE + 9, 7 * PAGE_SIZE]))
            .expect("restore");
        assert_eq!(
            st.pages, 1,
            "page 7 was reported dirty but is unchanged: not written"
        );
        assert_eq!(mem.image(), at2);
    }

    #[test]
    fn older_versions_are_restorable_and_newer_ones_dropped() {
        let mem = Mem::new(4);
        let (mut s, _) = RegionSnapshots::new(&mem, 10, 3).expect("snapshot");
        let v10 = mem.image();
        mem.poke(0, 1);
        s.commit(&mem, &dirty_of(4, &[0]), 11).expect("commit");
        mem.poke(PAGE_SIZE, 2);
        s.commit(&mem, &dirty_of(4, &[PAGE_SIZE]), 12)
            .expect("commit");
        assert_eq!(s.versions(), vec![10, 11, 12]);
        mem.poke(2 * PAGE_SIZE, 3);
        s.restore_to(&mem, 10, &dirty_of(4, &[2 * PAGE_SIZE]))
            .expect("restore");
        assert_eq!(mem.image(), v10);
        assert_eq!(s.versions(), vec![10]);
        assert_eq!(s.image(10).expect("kept"), v10);
    }

    #[test]
    fn the_window_keeps_max_versions() {
        let mem = Mem::new(2);
        let (mut s, _) = RegionSnapshots::new(&mem, 0, 2).expect("snapshot");
        for seq in 1..=5 {
            mem.poke(0, seq as u8);
            s.commit(&mem, &dirty_of(2, &[0]), seq).expect("commit");
        }
        assert_eq!(s.versions(), vec![4, 5]);
        let e = s.restore_to(&mem, 3, &DirtyPages::clean(2)).unwrap_err();
        assert_eq!(e, SnapshotError::NoSuchVersion(3, vec![4, 5]));
    }

    #[test]
    fn stale_commits_and_bad_bitmaps_change_nothing() {
        let mem = Mem::new(2);
        let (mut s, _) = RegionSnapshots::new(&mem, 5, 2).expect("snapshot");
        mem.poke(0, 9);
        let e = s.commit(&mem, &dirty_of(2, &[0]), 5).unwrap_err();
        assert_eq!(e, SnapshotError::StaleSequence { got: 5, newest: 5 });
        let e = s.commit(&mem, &DirtyPages::clean(3), 6).unwrap_err();
        assert_eq!(
            e,
            SnapshotError::BitmapSize {
                got: 3,
                expected: 2
            }
        );
        assert_eq!(s.image(5).expect("kept")[0], 0);
        assert_eq!(s.versions(), vec![5]);
    }

    #[test]
    fn a_failed_read_leaves_the_store_unchanged() {
        let mut mem = Mem::new(3);
        let (mut s, _) = RegionSnapshots::new(&mem, 1, 2).expect("snapshot");
        mem.poke(0, 1);
        mem.poke(2 * PAGE_SIZE, 1);
        mem.fail_on = Some(2);
        assert!(
            s.commit(&mem, &dirty_of(3, &[0, 2 * PAGE_SIZE]), 2)
                .is_err()
        );
        assert_eq!(s.versions(), vec![1]);
        assert!(
            s.image(1).expect("kept").iter().all(|&b| b == 0),
            "page 0 was committed anyway"
        );
    }

    #[test]
    fn bad_regions_and_windows_are_refused() {
        let mem = Mem {
            bytes: RefCell::new(vec![0; 100]),
            fail_on: None,
        };
        assert!(matches!(
            RegionSnapshots::new(&mem, 0, 2),
            Err(SnapshotError::RegionSize(100))
        ));
        assert!(matches!(
            RegionSnapshots::new(&Mem::new(1), 0, 0),
            Err(SnapshotError::NoVersions)
        ));
    }

    #[test]
    fn works_on_vm_memory_regions() {
        use vm_memory::{GuestAddress, GuestRegionMmap};
        let region =
            GuestRegionMmap::<()>::from_range(GuestAddress(0x10_0000), 4 * PAGE_SIZE, None)
                .expect("mmap");
        let (mut s, _) = RegionSnapshots::new(&region, 1, 2).expect("snapshot");
        region.write_page(2, &[7; PAGE_SIZE]).expect("write");
        s.commit(&region, &DirtyPages::all(4), 2).expect("commit");
        region.write_page(2, &[9; PAGE_SIZE]).expect("write");
        s.restore_latest(&region, &DirtyPages::all(4))
            .expect("restore");
        let mut page = [0u8; PAGE_SIZE];
        region.read_page(2, &mut page).expect("read");
        assert!(page.iter().all(|&b| b == 7));
    }

    /// Every kept version's image, the restore's count and the region afterwards, for each
    /// version a restore can go back to; the expectations come from images the test took itself.
    #[test]
    fn images_and_restores_of_every_kept_version() {
        for target in [3u64, 4, 5, 6] {
            let mem = Mem::new(5);
            let (mut s, _) = RegionSnapshots::new(&mem, 3, 4).expect("snapshot");
            let mut images = vec![(3, mem.image())];
            // 4: pages 0 and 1; 5: page 1 again and 2; 6: page 3.
            for (seq, pokes) in [(4u64, &[0, 1][..]), (5, &[1, 2]), (6, &[3])] {
                for &p in pokes {
                    mem.poke(p * PAGE_SIZE + 7, seq as u8);
                }
                let d = dirty_of(5, &pokes.iter().map(|p| p * PAGE_SIZE).collect::<Vec<_>>());
                s.commit(&mem, &d, seq).expect("commit");
                images.push((seq, mem.image()));
            }
            for (seq, image) in &images {
                assert_eq!(&s.image(*seq).expect("kept"), image, "image of {seq}");
            }
            // After 6: page 4 written (reported) and page 2 rewritten with 6's own byte.
            mem.poke(4 * PAGE_SIZE, 9);
            let live = mem.image();
            let wanted = &images.iter().find(|(q, _)| *q == target).expect("kept").1;
            let differing = (0..5)
                .filter(|p| {
                    live[p * PAGE_SIZE..(p + 1) * PAGE_SIZE]
                        != wanted[p * PAGE_SIZE..(p + 1) * PAGE_SIZE]
                })
                .count();
            let st = s
                .restore_to(&mem, target, &dirty_of(5, &[2 * PAGE_SIZE, 4 * PAGE_SIZE]))
                .expect("restore");
            assert_eq!(&mem.image(), wanted, "region at {target}");
            assert_eq!(st.pages, differing, "pages written going back to {target}");
            assert_eq!(st.bytes, differing * PAGE_SIZE);
            assert_eq!(s.newest(), target);
            assert_eq!(*s.versions().last().expect("kept"), target);
            assert_eq!(s.image(target).expect("kept"), *wanted);
        }
    }

    /// Regions of 64 pages and more: the bitmap's word boundaries (pages 63, 64, 127, 128).
    #[test]
    fn regions_across_bitmap_words() {
        for pages in [64usize, 65, 128, 130] {
            let mem = Mem::new(pages);
            let (mut s, full) = RegionSnapshots::new(&mem, 0, 3).expect("snapshot");
            assert_eq!(full.pages, pages);
            let edges: Vec<usize> = [0, 63, 64, 127, 128, 129]
                .into_iter()
                .filter(|&p| p < pages)
                .collect();
            let at0 = mem.image();
            for &p in &edges {
                mem.poke(p * PAGE_SIZE + 1, 0xa5);
            }
            let d = dirty_of(
                pages,
                &edges.iter().map(|p| p * PAGE_SIZE).collect::<Vec<_>>(),
            );
            assert_eq!(s.commit(&mem, &d, 1).expect("commit").pages, edges.len());
            let at1 = mem.image();
            for &p in &edges {
                mem.poke(p * PAGE_SIZE + 2, 0x5a);
            }
            let st = s.restore_latest(&mem, &d).expect("restore");
            assert_eq!(
                (st.pages, mem.image() == at1),
                (edges.len(), true),
                "{pages} pages"
            );
            let st = s
                .restore_to(&mem, 0, &DirtyPages::clean(pages))
                .expect("back to 0");
            assert_eq!(
                (st.pages, mem.image() == at0),
                (edges.len(), true),
                "{pages} pages"
            );
        }
    }

    /// A random write: (page, offset in page, value).
    fn writes(pages: usize) -> impl Strategy<Value = Vec<(usize, usize, u8)>> {
        proptest::collection::vec((0..pages, 0..PAGE_SIZE, any::<u8>()), 0..40)
    }

    fn apply(mem: &Mem, w: &[(usize, usize, u8)]) -> DirtyPages {
        let pages = mem.size() / PAGE_SIZE;
        let mut d = DirtyPages::clean(pages);
        for &(p, off, v) in w {
            mem.poke(p * PAGE_SIZE + off, v);
            d.set(p);
        }
        d
    }

    fn page(image: &[u8], p: usize) -> &[u8] {
        &image[p * PAGE_SIZE..(p + 1) * PAGE_SIZE]
    }

    proptest! {
        /// Random write patterns between boundaries, then a restore to any kept version: the
        /// region equals that boundary's image byte for byte, every kept version's image is
        /// the one the test took, and the restore wrote exactly the pages that differed.
        #[test]
        fn restore_equals_the_boundary_image(
            rounds in proptest::collection::vec(writes(6), 1..6),
            after in writes(6),
            max_versions in 1usize..5,
            pick in any::<proptest::sample::Index>(),
        ) {
            let mem = Mem::new(6);
            let (mut s, _) = RegionSnapshots::new(&mem, 0, max_versions).expect("snapshot");
            let mut images = vec![(0u64, mem.image())];
            for (i, w) in rounds.iter().enumerate() {
                let d = apply(&mem, w);
                let seq = i as u64 + 1;
                s.commit(&mem, &d, seq).expect("commit");
                images.push((seq, mem.image()));
            }
            let kept = s.versions();
            prop_assert_eq!(kept.len(), max_versions.min(rounds.len() + 1));
            prop_assert_eq!(*kept.last().expect("newest"), rounds.len() as u64);
            for v in &kept {
                let image = &images.iter().find(|(seq, _)| seq == v).expect("image").1;
                prop_assert_eq!(&s.image(*v).expect("kept"), image, "image of {}", v);
            }
            let dirty = apply(&mem, &after);
            let live = mem.image();
            let target = kept[pick.index(kept.len())];
            let expected = &images.iter().find(|(seq, _)| *seq == target).expect("image").1;
            let differing = (0..6).filter(|&p| page(&live, p) != page(expected, p)).count();
            let st = s.restore_to(&mem, target, &dirty).expect("restore");
            prop_assert_eq!(&mem.image(), expected);
            prop_assert_eq!(st.pages, differing);
            prop_assert_eq!(s.newest(), target);
        }

        /// 200-page stores whose dirty maps over-report (clean pages marked dirty) and
        /// under-report (written pages left out). Over-reporting costs a compare and changes
        /// nothing. Under-reporting breaks the store's contract (the map must name every page
        /// written since the last commit; the VMM's is KVM's log ORed with its own writes): a
        /// page left out is neither captured nor restored, and the test pins exactly that, so
        /// a model of "the last reported contents of each page" predicts every image.
        #[test]
        fn large_stores_with_inexact_dirty_maps(
            rounds in proptest::collection::vec(
                (writes(200), proptest::collection::vec(0usize..200, 0..8), any::<bool>()),
                1..6,
            ),
            after in writes(200),
            max_versions in 2usize..6,
            pick in any::<proptest::sample::Index>(),
        ) {
            const PAGES: usize = 200;
            let mem = Mem::new(PAGES);
            let (mut s, _) = RegionSnapshots::new(&mem, 0, max_versions).expect("snapshot");
            // The model: per page, its contents as of the last commit that reported it.
            let mut model = mem.image();
            let mut images = vec![(0u64, model.clone())];
            for (i, (w, extra, drop_one)) in rounds.iter().enumerate() {
                let mut d = apply(&mem, w);
                extra.iter().for_each(|&p| d.set(p));
                if *drop_one && let Some(p) = w.first().map(|w| w.0) {
                    // Under-report: take one written page out of the map.
                    let kept: Vec<usize> = d.iter().filter(|&q| q != p).collect();
                    d = DirtyPages::clean(PAGES);
                    kept.into_iter().for_each(|q| d.set(q));
                }
                let live = mem.image();
                for p in d.iter() {
                    model[p * PAGE_SIZE..(p + 1) * PAGE_SIZE].copy_from_slice(page(&live, p));
                }
                let seq = i as u64 + 1;
                s.commit(&mem, &d, seq).expect("commit");
                images.push((seq, model.clone()));
            }
            let kept = s.versions();
            for v in &kept {
                let image = &images.iter().find(|(seq, _)| seq == v).expect("image").1;
                prop_assert!(s.image(*v).expect("kept") == *image, "image of {}", v);
            }
            let dirty = apply(&mem, &after);
            let live = mem.image();
            let target = kept[pick.index(kept.len())];
            let at = |seq: u64| &images.iter().find(|(q, _)| *q == seq).expect("image").1;
            // Pages a restore looks at: reported since the newest commit, or changed in the
            // model after the target.
            let newest = *kept.last().expect("newest");
            let looked_at = |p: usize| {
                dirty.contains(p) || (target..newest).any(|q| page(at(q), p) != page(at(q + 1), p))
            };
            let mut expected = live.clone();
            let mut differing = 0;
            for p in (0..PAGES).filter(|&p| looked_at(p)) {
                if page(&live, p) != page(at(target), p) {
                    differing += 1;
                }
                expected[p * PAGE_SIZE..(p + 1) * PAGE_SIZE].copy_from_slice(page(at(target), p));
            }
            let st = s.restore_to(&mem, target, &dirty).expect("restore");
            prop_assert!(mem.image() == expected, "region after going back to {}", target);
            prop_assert_eq!(st.pages, differing);
        }
    }
}
