//! A zspage: a chain of 1..N pages holding the objects of one class, packed
//! back to back.
//!
//! ```text
//!  page 0                  page 1                  page 2 (not yet attached)
//! +-------+-------+-------+--+----+-------+-------+- - - - - - - - - -+
//! | obj 0 | obj 1 | obj 2 | obj 3 | obj 4 | obj 5 |   obj 6 ...         |
//! +-------+-------+-------+--+----+-------+-------+- - - - - - - - - -+
//!                       obj 3 spans the page boundary
//! ```
//!
//! Object `i` starts at byte `i * class.size` of the chain, so an object may
//! span two pages; no object spans three (objects are at most a page).
//!
//! Pages are attached lazily: a new zspage starts with one page and grows a
//! page at a time, up to the class's chain length, as objects need them;
//! compaction trims trailing pages that hold no live object. So a class
//! wastes at most the unused tail of one page per growing zspage, not of a
//! whole chain, which is what keeps a pool dense when it holds few objects
//! per class.
//!
//! Free object slots are found through the reverse map (`rmap`), which holds
//! the handle-table slot of each live object (compaction needs it to find the
//! handle of an object it moves) or `FREE`. Nothing is stored inside the
//! object memory: a zspage page holds object bytes only.

use std::vec::Vec;

use kbase::{Gfp, PageAllocator, PageFrame, Result};

use super::class::SizeClass;
use super::handle::NONE;
use super::pages;

/// Reverse-map value of a free object slot.
pub(crate) const FREE: u32 = u32::MAX;

/// Fullness lists of a class. `0..=9`: zspages with a free slot in their
/// attached pages, by `inuse * 10 / objs_per_zspage` (allocation prefers the
/// highest); `GROWABLE`: every attached slot is used but the chain is not
/// complete (the next object needs a page); `FULL`: every slot of the complete
/// chain is used. An empty zspage is on no list: it is freed at once.
pub(crate) const NR_LISTS: usize = 12;
pub(crate) const GROWABLE: usize = 10;
pub(crate) const FULL: usize = 11;

/// One zspage.
///
/// # Invariants
///
/// - `pages.len()` is in `1..=class.pages_per_zspage` and `pages.capacity()`
///   is at least `class.pages_per_zspage`, so attaching never allocates.
/// - `rmap.len() == class.objs_per_zspage`; slots at or above
///   `class.usable_objs(pages.len())` are `FREE`.
/// - `inuse` is the number of non-`FREE` rmap entries.
/// - every slot below `free_hint` is in use.
pub(crate) struct ZsPage {
    pub(crate) pages: Vec<PageFrame>,
    rmap: Vec<u32>,
    inuse: u32,
    free_hint: u32,
    /// Fullness list links (zspage ids within the class) and list number.
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) list: u8,
}

impl ZsPage {
    /// A zspage of `class` with its first page attached. Call with no lock
    /// held: it allocates (metadata from the heap, the page from `alloc`
    /// with `gfp`).
    pub(crate) fn new<A: PageAllocator>(alloc: &A, class: &SizeClass, gfp: Gfp) -> Result<ZsPage> {
        let mut page_vec = Vec::new();
        page_vec.try_reserve_exact(class.pages_per_zspage)?;
        let mut rmap = Vec::new();
        rmap.try_reserve_exact(class.objs_per_zspage)?;
        rmap.resize(class.objs_per_zspage, FREE);
        page_vec.push(pages::alloc_page(alloc, gfp)?);
        // INVARIANT: one page, capacity for the whole chain, all slots free.
        Ok(ZsPage {
            pages: page_vec,
            rmap,
            inuse: 0,
            free_hint: 0,
            prev: NONE,
            next: NONE,
            list: 0,
        })
    }

    pub(crate) fn inuse(&self) -> usize {
        self.inuse as usize
    }

    pub(crate) fn attached(&self) -> usize {
        self.pages.len()
    }

    pub(crate) fn usable(&self, class: &SizeClass) -> usize {
        class.usable_objs(self.pages.len())
    }

    /// Which fullness list this zspage belongs on.
    pub(crate) fn fullness(&self, class: &SizeClass) -> usize {
        let inuse = self.inuse();
        if inuse >= class.objs_per_zspage {
            FULL
        } else if inuse >= self.usable(class) {
            GROWABLE
        } else {
            inuse * 10 / class.objs_per_zspage.max(1)
        }
    }

    /// Attaches one more page. Gives the page back if the chain is complete.
    pub(crate) fn attach(
        &mut self,
        class: &SizeClass,
        page: PageFrame,
    ) -> core::result::Result<(), PageFrame> {
        if self.pages.len() >= class.pages_per_zspage || self.pages.len() >= self.pages.capacity() {
            return Err(page);
        }
        // Within capacity (invariant): no allocation.
        self.pages.push(page);
        Ok(())
    }

    /// The lowest free slot in the attached pages.
    pub(crate) fn first_free(&mut self, class: &SizeClass) -> Option<usize> {
        let usable = self.usable(class);
        let start = self.free_hint as usize;
        let found = self
            .rmap
            .get(start..usable)?
            .iter()
            .position(|&s| s == FREE)
            .map(|p| start + p);
        // INVARIANT: everything between the old hint and the hit is in use.
        self.free_hint = found.unwrap_or(usable) as u32;
        found
    }

    /// The highest slot holding a live object.
    pub(crate) fn highest_live(&self) -> Option<usize> {
        self.rmap.iter().rposition(|&s| s != FREE)
    }

    /// The handle-table slot of the object at `idx`, if live.
    pub(crate) fn slot_at(&self, idx: usize) -> Option<u32> {
        self.rmap.get(idx).copied().filter(|&s| s != FREE)
    }

    /// Records that slot `idx` (free, attached) now holds handle `slot`.
    pub(crate) fn place(&mut self, idx: usize, slot: u32) -> Option<()> {
        let r = self.rmap.get_mut(idx).filter(|r| **r == FREE)?;
        *r = slot;
        self.inuse += 1;
        if idx as u32 == self.free_hint {
            self.free_hint += 1;
        }
        Some(())
    }

    /// Frees slot `idx`; returns the handle slot that was there.
    pub(crate) fn release(&mut self, idx: usize) -> Option<u32> {
        let r = self.rmap.get_mut(idx).filter(|r| **r != FREE)?;
        let slot = core::mem::replace(r, FREE);
        self.inuse -= 1;
        self.free_hint = self.free_hint.min(idx as u32);
        Some(slot)
    }

    /// Detaches the trailing pages that hold no byte of a live object and
    /// gives them back to `alloc`; keeps at least one page. Returns how many.
    pub(crate) fn trim<A: PageAllocator>(&mut self, class: &SizeClass, alloc: &A) -> usize {
        let keep = match self.highest_live() {
            Some(h) => class.pages_for_objs(h + 1).max(1),
            None => 1,
        };
        let mut freed = 0;
        while self.pages.len() > keep {
            if let Some(p) = self.pages.pop() {
                pages::free_page(alloc, p);
                freed += 1;
            }
        }
        // INVARIANT: slots at or above the new usable count are free, since
        // the highest live object ends within the kept pages.
        self.free_hint = self.free_hint.min(self.usable(class) as u32);
        freed
    }

    /// Gives every page back to `alloc`; returns how many.
    pub(crate) fn release_pages<A: PageAllocator>(self, alloc: &A) -> usize {
        let n = self.pages.len();
        for p in self.pages {
            pages::free_page(alloc, p);
        }
        n
    }

    /// Heap bytes of this zspage's metadata (descriptor excluded).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.pages.capacity() * core::mem::size_of::<PageFrame>()
            + self.rmap.capacity() * core::mem::size_of::<u32>()
    }
}
