//! The size-class table: which slot size, chain length and object count each
//! class uses, and which class serves a given object size.

use std::vec::Vec;

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
