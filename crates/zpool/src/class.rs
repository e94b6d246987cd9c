//! The class table: which object sizes share a class (one lock, one set of
//! zspages), and each class's chain length.
//!
//! Classes are *bands* of sizes, not slot sizes: objects inside a zspage are
//! packed at byte granularity (see `zspage.rs`), so an object costs its exact
//! size whatever class it is in. Bands exist for two reasons only: one lock
//! per band lets stores and loads of different sizes run in parallel, and
//! objects of similar size refill each other's holes after frees.

use kbase::{Error, PAGE_SIZE, Result};

/// The longest zspage chain a configuration may ask for (offsets inside a
/// chain are 18-bit in a handle-table entry).
pub const MAX_PAGES_PER_ZSPAGE: usize = 64;
const _: () = assert!(MAX_PAGES_PER_ZSPAGE * PAGE_SIZE <= crate::handle::MAX_CHAIN_BYTES);

/// The default chain length.
pub const DEFAULT_PAGES_PER_ZSPAGE: usize = 32;

/// Largest object size of each band, ascending; the last is `PAGE_SIZE`.
/// Narrow where compressed pages are common (lz4 and zstd pages of anonymous
/// memory mostly compress to 500..2500 bytes), wide at the ends.
pub(crate) const BAND_MAX: [usize; 8] = [256, 768, 1152, 1536, 1920, 2432, 3072, PAGE_SIZE];
/// Number of classes.
pub(crate) const NR_CLASSES: usize = BAND_MAX.len();

/// Most objects one zspage holds, whatever their size: bounds the reverse map
/// a zspage descriptor scans (its gap search is linear in it).
pub(crate) const MAX_OBJS_PER_ZSPAGE: usize = 256;

/// One class, fixed at pool creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SizeClass {
    /// Smallest object size served (the previous band's maximum + 1).
    pub(crate) min: usize,
    /// Largest object size served.
    pub(crate) max: usize,
    /// Pages in a complete zspage of this class (the chain length).
    pub(crate) pages_per_zspage: usize,
}

/// The class table of one pool.
///
/// # Invariants
///
/// `classes[i]` serves sizes `BAND_MAX[i-1]+1 ..= BAND_MAX[i]` (from 1 for
/// the first); every size `1..=PAGE_SIZE` has exactly one class.
pub(crate) struct ClassTable {
    pub(crate) classes: [SizeClass; NR_CLASSES],
}

impl ClassTable {
    /// Builds the table for chains of at most `max_pages` pages.
    pub(crate) fn new(max_pages: usize) -> Result<ClassTable> {
        if !(1..=MAX_PAGES_PER_ZSPAGE).contains(&max_pages) {
            return Err(Error::EINVAL);
        }
        let mut classes = [SizeClass {
            min: 1,
            max: PAGE_SIZE,
            pages_per_zspage: max_pages,
        }; NR_CLASSES];
        let mut min = 1;
        for (c, &max) in classes.iter_mut().zip(BAND_MAX.iter()) {
            c.min = min;
            c.max = max;
            min = max + 1;
        }
        Ok(ClassTable { classes })
    }

    /// The class index serving objects of `size` bytes.
    pub(crate) fn index_for(&self, size: usize) -> Result<usize> {
        if size == 0 {
            return Err(Error::EINVAL);
        }
        if size > PAGE_SIZE {
            return Err(Error::ENOSPC);
        }
        BAND_MAX
            .iter()
            .position(|&m| size <= m)
            .ok_or(Error::ENOSPC)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_the_one_band_that_holds_it() {
        let t = ClassTable::new(8).unwrap();
        let step = if cfg!(miri) { 61 } else { 1 };
        for size in (1..=PAGE_SIZE).step_by(step).chain([PAGE_SIZE]) {
            let i = t.index_for(size).unwrap();
            let c = t.classes[i];
            assert!(c.min <= size && size <= c.max, "{size} in {c:?}");
            assert_eq!(c.pages_per_zspage, 8);
        }
        assert!(t.classes.windows(2).all(|w| w[0].max + 1 == w[1].min));
        assert_eq!(t.classes[0].min, 1);
        assert_eq!(t.classes[NR_CLASSES - 1].max, PAGE_SIZE);
    }

    #[test]
    fn bad_sizes_are_refused() {
        let t = ClassTable::new(8).unwrap();
        assert_eq!(t.index_for(0), Err(Error::EINVAL));
        assert_eq!(t.index_for(PAGE_SIZE + 1), Err(Error::ENOSPC));
        assert!(ClassTable::new(0).is_err());
        assert!(ClassTable::new(MAX_PAGES_PER_ZSPAGE + 1).is_err());
    }
}
