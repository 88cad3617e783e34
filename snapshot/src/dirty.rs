//! Dirty-page bitmaps.

/// One bit per page of a region, in KVM's dirty-log layout (bit `p % 64` of word `p / 64`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirtyPages {
    words: Vec<u64>,
    pages: usize,
}

impl DirtyPages {
    /// No page dirty.
    pub fn clean(pages: usize) -> Self {
        Self {
            words: vec![0; pages.div_ceil(64)],
            pages,
        }
    }

    /// Every page dirty.
    pub fn all(pages: usize) -> Self {
        let mut d = Self::clean(pages);
        (0..pages).for_each(|p| d.set(p));
        d
    }

    /// From KVM's dirty log (`KVM_GET_DIRTY_LOG` words); bits past `pages` are ignored.
    pub fn from_words(mut words: Vec<u64>, pages: usize) -> Self {
        words.resize(pages.div_ceil(64), 0);
        if !pages.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last &= (1u64 << (pages % 64)) - 1;
        }
        Self { words, pages }
    }

    /// The bitmap in KVM's dirty-log layout (bits past the region are clear).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Pages covered.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Marks `page` dirty (ignored past the end).
    pub fn set(&mut self, page: usize) {
        if page < self.pages {
            self.words[page / 64] |= 1 << (page % 64);
        }
    }

    /// True if `page` is dirty.
    pub fn contains(&self, page: usize) -> bool {
        page < self.pages && self.words[page / 64] & (1 << (page % 64)) != 0
    }

    /// Adds every page dirty in `other` (same size, or the extra pages are ignored).
    pub fn union_with(&mut self, other: &DirtyPages) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
        *self = Self::from_words(std::mem::take(&mut self.words), self.pages);
    }

    /// Number of dirty pages.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Dirty page indices, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_follow_kvm_layout() {
        let d = DirtyPages::from_words(vec![0b101, 1 << 63], 128);
        assert_eq!(d.iter().collect::<Vec<_>>(), vec![0, 2, 127]);
        assert_eq!(d.count(), 3);
        assert!(d.contains(2) && !d.contains(1) && !d.contains(500));
        assert_eq!(d.words(), &[0b101, 1 << 63]);
    }

    #[test]
    fn bits_past_the_region_are_dropped() {
        let d = DirtyPages::from_words(vec![u64::MAX, u64::MAX], 70);
        assert_eq!(d.count(), 70);
        let mut e = DirtyPages::clean(3);
        e.set(3);
        assert_eq!(e.count(), 0);
    }

    #[test]
    fn word_boundaries() {
        for pages in [64usize, 65, 128, 129] {
            let mut d = DirtyPages::clean(pages);
            assert_eq!(d.words().len(), pages.div_ceil(64));
            for p in [63, 64, 127, 128] {
                d.set(p);
            }
            let inside: Vec<usize> = [63, 64, 127, 128]
                .into_iter()
                .filter(|&p| p < pages)
                .collect();
            assert_eq!(d.iter().collect::<Vec<_>>(), inside, "{pages} pages");
            assert_eq!(d.count(), inside.len());
            for p in 0..pages + 2 {
                assert_eq!(d.contains(p), inside.contains(&p), "page {p} of {pages}");
            }
            assert_eq!(DirtyPages::all(pages).count(), pages);
            assert_eq!(DirtyPages::all(pages).iter().last(), Some(pages - 1));
        }
    }

    #[test]
    fn union_adds_pages() {
        let mut a = DirtyPages::clean(100);
        a.set(1);
        let mut b = DirtyPages::clean(100);
        b.set(99);
        b.set(1);
        a.union_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![1, 99]);
        assert_eq!(
            b.iter().collect::<Vec<_>>(),
            vec![1, 99],
            "the other is unchanged"
        );
        // A longer bitmap: its pages past this one's end are ignored.
        let mut c = DirtyPages::clean(3);
        c.union_with(&DirtyPages::all(70));
        assert_eq!((c.count(), c.words()), (3, &[0b111][..]));
        assert_eq!(DirtyPages::all(65).count(), 65);
    }
}
