//! Hot pages: the pages of a server's state arena it keeps writing, left writable between its
//! snapshots (a write-protect fault costs ~22 us under KVM-PVM).

use snapshot::DirtyPages;

/// The pages a server keeps writing, left writable between its snapshots.
///
/// After a snapshot the VMM re-protects the pages it copied (KVM_CLEAR_DIRTY_LOG), so that the
/// next write to each is logged; that write then takes a write-protect fault, ~22 us under
/// KVM-PVM. A page written again within [`HotPages::WINDOW`] snapshots of its last write is
/// likely to be written again soon: it is left writable and logged dirty instead, so every
/// snapshot reads it (a compare with the shadow, well under a microsecond) and no fault is
/// taken. Nothing is missed: a page never re-protected stays in the dirty log, so every commit
/// and every restore covers it. Every [`HotPages::RESET`] snapshots all pages are re-protected
/// and the set is learnt again (so that pages no longer written stop being read).
#[derive(Debug)]
pub(super) struct HotPages {
    /// Per page: the snapshot at which it was last dirty (0: never).
    last_dirty: Vec<u64>,
    /// The pages left writable after the last snapshot.
    writable: DirtyPages,
    /// Write-protect faults taken so far: pages found dirty that were protected.
    pub(super) faults: u64,
}

impl HotPages {
    /// Snapshots between two full re-protections.
    pub(super) const RESET: u64 = 256;
    /// A page dirty again within this many snapshots of its last write is left writable.
    pub(super) const WINDOW: u64 = 16;

    pub(super) fn new(pages: usize) -> Self {
        Self {
            last_dirty: vec![0; pages],
            writable: DirtyPages::clean(pages),
            faults: 0,
        }
    }

    /// The pages to re-protect after snapshot `seq` of `dirty`: all of them every
    /// [`Self::RESET`] snapshots, else those not dirty at any of the [`Self::WINDOW`]
    /// snapshots before. Counts the faults the pages protected until now took to be dirty.
    pub(super) fn next(&mut self, dirty: &DirtyPages, seq: u64) -> DirtyPages {
        let mut protect = DirtyPages::clean(dirty.pages());
        let reset = seq.is_multiple_of(Self::RESET);
        let mut writable = DirtyPages::clean(dirty.pages());
        for page in dirty.iter() {
            if !self.writable.contains(page) {
                self.faults += 1;
            }
            let Some(last) = self.last_dirty.get_mut(page) else {
                protect.set(page);
                continue;
            };
            let recent = *last != 0 && seq.saturating_sub(*last) <= Self::WINDOW;
            *last = seq;
            if reset || !recent {
                protect.set(page);
            } else {
                writable.set(page);
            }
        }
        if reset {
            self.last_dirty.fill(0);
        }
        self.writable = writable;
        protect
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_dirty_again_within_the_window_stay_writable_until_the_periodic_reset() {
        let mut hot = HotPages::new(4);
        let dirty = |pages: &[usize]| {
            let mut d = DirtyPages::clean(4);
            pages.iter().for_each(|&p| d.set(p));
            d
        };
        let protected = |d: DirtyPages| d.iter().collect::<Vec<_>>();
        assert_eq!(
            protected(hot.next(&dirty(&[1, 2]), 1)),
            [1, 2],
            "first time: protect"
        );
        assert_eq!(
            hot.faults, 2,
            "both were protected (as every page is at first)"
        );
        assert_eq!(protected(hot.next(&dirty(&[1, 3]), 2)), [3], "1 again: hot");
        assert_eq!(hot.faults, 4);
        assert_eq!(protected(hot.next(&dirty(&[1, 3]), 3)), Vec::<usize>::new());
        assert_eq!(hot.faults, 5, "1 was writable: only 3 faulted");
        // Page 2, written again only after the window: protected again.
        let late = 1 + HotPages::WINDOW + 1;
        assert_eq!(protected(hot.next(&dirty(&[1, 2, 3]), late)), [2]);
        // Page 0, written at an interval inside the window: hot from its second write.
        assert_eq!(protected(hot.next(&dirty(&[0, 1, 3]), late + 1)), [0]);
        assert_eq!(
            protected(hot.next(&dirty(&[0, 1, 3]), late + 1 + HotPages::WINDOW)),
            Vec::<usize>::new()
        );
        assert_eq!(
            protected(hot.next(&dirty(&[0, 1, 3]), HotPages::RESET)),
            [0, 1, 3],
            "the periodic reset re-protects everything"
        );
        assert_eq!(protected(hot.next(&dirty(&[1]), HotPages::RESET + 1)), [1]);
    }
}
