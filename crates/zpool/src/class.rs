//! The size-class table: which slot size, chain length and object count each
//! class uses, and which class serves a given object size.

use alloc::vec::Vec;

use kbase::{Error, PAGE_SIZE, Result};

/// Distance between two consecutive class sizes (Linux's
/// `ZS_SIZE_CLASS_DELTA` on 4 KiB pages).
pub(crate) const CLASS_DELTA: usize = 16;
/// Number of size indexes: sizes `1..=PAGE_SIZE` in steps of `CLASS_DELTA`.
pub(crate) const NR_SIZES: usize = PAGE_SIZE / CLASS_DELTA;
/// The longest zspage chain a configuration may ask for.
pub const MAX_PAGES_PER_ZSPAGE: usize = 16;

/// One size class, fixed at pool creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SizeClass {
    /// Slot size in bytes: every object of the class occupies this much.
    pub(crate) size: usize,
    /// Pages in a complete zspage of this class (the chain length).
    pub(crate) pages_per_zspage: usize,
    /// Objects a complete zspage holds.
    pub(crate) objs_per_zspage: usize,
}

impl SizeClass {
    /// A huge class holds one object per single-page zspage: sizes near
    /// `PAGE_SIZE`, where no chain of up to N pages packs better.
    pub(crate) fn is_huge(&self) -> bool {
        self.objs_per_zspage == 1
    }

    /// How many objects fit, whole, in the first `attached` pages of a zspage.
    pub(crate) fn usable_objs(&self, attached: usize) -> usize {
        let fit = attached.saturating_mul(PAGE_SIZE) / self.size;
        fit.min(self.objs_per_zspage)
    }

    /// Pages needed to hold objects `0..=last` (objects are packed back to
    /// back from the start of the zspage).
    pub(crate) fn pages_for_objs(&self, nr: usize) -> usize {
        (nr * self.size).div_ceil(PAGE_SIZE)
    }
}

/// Picks the chain length (1..=`max_pages`) that wastes the smallest fraction
/// of the zspage for objects of `size` bytes; ties go to the shorter chain.
fn best_chain(size: usize, max_pages: usize) -> (usize, usize) {
    let mut best = (1, PAGE_SIZE / size);
    let mut best_waste = PAGE_SIZE - best.1 * size;
    for k in 2..=max_pages {
        let objs = k * PAGE_SIZE / size;
        let waste = k * PAGE_SIZE - objs * size;
        // waste / (k pages) < best_waste / (best.0 pages), in integers.
        if waste * best.0 < best_waste * k {
            best = (k, objs);
            best_waste = waste;
        }
    }
    best
}

/// The class table of one pool.
///
/// # Invariants
///
/// `classes` is sorted by increasing `size`, holds at most `NR_SIZES`
/// entries, and `map[i]` is the index of the smallest class whose slot holds
/// `(i + 1) * CLASS_DELTA` bytes.
pub(crate) struct ClassTable {
    pub(crate) classes: Vec<SizeClass>,
    map: [u8; NR_SIZES],
}

impl ClassTable {
    /// Builds the table for chains of at most `max_pages` pages. Consecutive
    /// sizes with the same (pages, objects) geometry share one class, like
    /// Linux: the larger slot costs nothing extra in pages, and fewer classes
    /// mean fewer partially filled zspages.
    pub(crate) fn new(max_pages: usize) -> Result<ClassTable> {
        if !(1..=MAX_PAGES_PER_ZSPAGE).contains(&max_pages) {
            return Err(Error::EINVAL);
        }
        let mut classes: Vec<SizeClass> = Vec::new();
        classes.try_reserve_exact(NR_SIZES)?;
        let mut rev_map = [0u8; NR_SIZES];
        // Walk sizes from the largest down; a size joins the class above it
        // when the geometry is the same.
        for i in (0..NR_SIZES).rev() {
            let size = (i + 1) * CLASS_DELTA;
            let (pages, objs) = best_chain(size, max_pages);
            let same = classes
                .last()
                .is_some_and(|c| c.pages_per_zspage == pages && c.objs_per_zspage == objs);
            if !same {
                classes.push(SizeClass {
                    size,
                    pages_per_zspage: pages,
                    objs_per_zspage: objs,
                });
            }
            if let Some(slot) = rev_map.get_mut(i) {
                // At most NR_SIZES (256) classes: the index fits in a u8.
                *slot = (classes.len() - 1) as u8;
            }
        }
        classes.reverse();
        let last = classes.len() - 1;
        let mut map = [0u8; NR_SIZES];
        for (m, r) in map.iter_mut().zip(rev_map.iter()) {
            *m = (last - *r as usize) as u8;
        }
        // INVARIANT: sorted ascending after the reverse; map points to the
        // class that absorbed each size.
        Ok(ClassTable { classes, map })
    }

    /// The class index serving objects of `size` bytes.
    pub(crate) fn index_for(&self, size: usize) -> Result<usize> {
        if size == 0 {
            return Err(Error::EINVAL);
        }
        if size > PAGE_SIZE {
            return Err(Error::ENOSPC);
        }
        self.map
            .get((size - 1) / CLASS_DELTA)
            .map(|&c| c as usize)
            .ok_or(Error::ENOSPC)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_a_class_that_holds_it() {
        let (chains, step): (&[usize], usize) = if cfg!(miri) {
            (&[1, 8], 61)
        } else {
            (&[1, 2, 4, 8, 16], 1)
        };
        for &n in chains {
            let t = ClassTable::new(n).unwrap();
            for size in (1..=PAGE_SIZE).step_by(step) {
                let c = t.classes[t.index_for(size).unwrap()];
                assert!(c.size >= size);
                // Merged only with sizes of the same geometry.
                let own = best_chain(size.div_ceil(CLASS_DELTA) * CLASS_DELTA, n);
                assert_eq!((c.pages_per_zspage, c.objs_per_zspage), own);
                assert!(c.pages_per_zspage <= n);
                assert_eq!(c.objs_per_zspage, c.pages_per_zspage * PAGE_SIZE / c.size);
            }
            assert!(t.classes.windows(2).all(|w| w[0].size < w[1].size));
            assert!(t.classes.last().unwrap().is_huge());
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        let t = ClassTable::new(8).unwrap();
        assert_eq!(t.index_for(0), Err(Error::EINVAL));
        assert_eq!(t.index_for(PAGE_SIZE + 1), Err(Error::ENOSPC));
        assert!(ClassTable::new(0).is_err());
        assert!(ClassTable::new(MAX_PAGES_PER_ZSPAGE + 1).is_err());
    }

    #[test]
    fn chain_length_minimises_waste() {
        let step = if cfg!(miri) {
            CLASS_DELTA * 17
        } else {
            CLASS_DELTA
        };
        for size in (CLASS_DELTA..=PAGE_SIZE).step_by(step) {
            let (k, objs) = best_chain(size, 8);
            let waste =
                |k: usize| (k * PAGE_SIZE - (k * PAGE_SIZE / size) * size) as f64 / k as f64;
            assert_eq!(objs, k * PAGE_SIZE / size);
            for other in 1..=8 {
                assert!(
                    waste(k) <= waste(other) + 1e-9,
                    "size {size}: {k} vs {other}"
                );
            }
        }
        assert_eq!(best_chain(1024, 8), (1, 4));
        assert_eq!(best_chain(4096, 8), (1, 1));
        // Near PAGE_SIZE no chain does better than one object per page.
        assert_eq!(best_chain(3904, 8), (1, 1));
    }
}
