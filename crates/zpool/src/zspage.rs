//! A zspage: a chain of 1..N pages holding objects of one class, packed at
//! byte granularity.
//!
//! ```text
//!  page 0                     page 1                     page 2 (not attached)
//! +------+---------+---+------+--+------------+--------+- - - - - - - - -+
//! | A    | B       |gap| C       | D          |  tail  |                 |
//! +------+---------+---+------+--+------------+--------+- - - - - - - - -+
//!                            C spans the page boundary
//! ```
//!
//! An object is `len` bytes at byte offset `off` of the chain, with no
//! rounding: it may start anywhere and span two pages (no object spans three:
//! objects are at most a page). Free space is the gaps between objects and
//! the tail. `malloc` takes the first gap that fits; frees leave gaps, which
//! later objects of the class fill and which compaction closes by sliding
//! objects down (`pages::move_down`) or moving them to other zspages.
//!
//! The reverse map `objs` lists the handle-table slots of the live objects,
//! sorted by the objects' offsets, 4 bytes each: offset and length are read
//! from the handle table (`HandleTable::get_live`), which is where a load
//! finds them too, so they are stored once. It is the free map too (gaps are
//! what lies between its objects) and what compaction uses to find the
//! handle of an object it moves. Nothing is stored inside the pages: a
//! zspage page holds object bytes only.
//!
//! Pages are attached lazily: a new zspage starts with one page and takes
//! another when an object at the tail needs it, up to the chain length;
//! compaction trims trailing pages that hold no live byte.

use alloc::vec::Vec;

use kbase::{Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

use crate::class::{MAX_OBJS_PER_ZSPAGE, SizeClass};
use crate::handle::{HandleTable, NONE};
use crate::pages;

/// Gap buckets (the lists `malloc` searches): bucket `b` holds zspages whose
/// usable gap is in `[b * GAP_UNIT, (b + 1) * GAP_UNIT)`; the last holds
/// gaps of a page or more, which is also where every zspage that can still
/// grow is (its tail plus a new page always fits an object).
pub(crate) const GAP_UNIT: usize = 128;
pub(crate) const NR_BUCKETS: usize = PAGE_SIZE / GAP_UNIT + 1;

/// Fullness groups (the lists compaction takes sources from), by live bytes
/// / attached bytes in sixteenths. The last group (15/16 or denser) is never
/// a source.
pub(crate) const NR_GROUPS: usize = 16;

/// Initial capacity of a zspage's reverse map (it doubles as objects come).
const OBJS_INITIAL: usize = 8;

/// One live object of a zspage, as its reverse-map slot and handle entry
/// say (a value, not stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Obj {
    pub(crate) off: usize,
    pub(crate) len: usize,
    pub(crate) slot: u32,
}

impl Obj {
    pub(crate) fn end(&self) -> usize {
        self.off + self.len
    }
}

/// The object in handle slot `slot`, from its handle entry.
#[inline]
fn at(h: &HandleTable, slot: u32) -> Option<Obj> {
    let e = h.get_live(slot)?;
    Some(Obj {
        off: e.obj(),
        len: e.size(),
        slot,
    })
}

/// One zspage.
///
/// # Invariants
///
/// - `pages.len()` is in `1..=class.pages_per_zspage` and `pages.capacity()`
///   is at least `class.pages_per_zspage`, so attaching never allocates.
/// - `objs` holds the handle slots of the zspage's objects, whose handle
///   entries name this zspage; sorted by the entries' offsets, the ranges do
///   not overlap and end within the attached pages;
///   `objs.len() <= MAX_OBJS_PER_ZSPAGE`. Every method that reads offsets
///   is given the class's handle table.
/// - `live` is the sum of the lengths, `end` the end of the last object (0
///   when empty), `inner_gap` the longest free run before the last object.
/// - `packable` is what was last accounted in the class's `freeable`.
pub(crate) struct ZsPage {
    pub(crate) pages: Vec<PageFrame>,
    objs: Vec<u32>,
    live: u32,
    end: u32,
    /// The longest free run before the last object (between objects, or
    /// before the first); the tail after the last object is computed.
    inner_gap: u32,
    /// The compaction pass that last took this zspage as a source.
    pub(crate) pass: u32,
    /// Pages this zspage counts in its class's `freeable`.
    pub(crate) packable: u32,
    /// Gap-bucket list links (zspage ids within the class) and bucket.
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) bucket: u8,
    /// Fullness-group list links and group.
    pub(crate) gprev: u32,
    pub(crate) gnext: u32,
    pub(crate) group: u8,
}

impl ZsPage {
    /// A zspage of `class` with its first page attached. Call with no lock
    /// held: it allocates (metadata from the heap, the page from `alloc`
    /// with `gfp`).
    pub(crate) fn new<A: PageAllocator>(alloc: &A, class: &SizeClass, gfp: Gfp) -> Result<ZsPage> {
        let mut page_vec = Vec::new();
        page_vec.try_reserve_exact(class.pages_per_zspage)?;
        let mut objs = Vec::new();
        objs.try_reserve_exact(OBJS_INITIAL)?;
        page_vec.push(pages::alloc_page(alloc, gfp)?);
        // INVARIANT: one page, capacity for the whole chain, no object.
        Ok(ZsPage {
            pages: page_vec,
            objs,
            live: 0,
            end: 0,
            inner_gap: 0,
            pass: 0,
            packable: 0,
            prev: NONE,
            next: NONE,
            bucket: NR_BUCKETS as u8,
            gprev: NONE,
            gnext: NONE,
            group: NR_GROUPS as u8,
        })
    }

    pub(crate) fn nr_objs(&self) -> usize {
        self.objs.len()
    }

    pub(crate) fn live(&self) -> usize {
        self.live as usize
    }

    pub(crate) fn attached(&self) -> usize {
        self.pages.len()
    }

    fn attached_bytes(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    fn last_end(&self) -> usize {
        self.end as usize
    }

    #[inline]
    fn tail_gap(&self) -> usize {
        self.attached_bytes().saturating_sub(self.last_end())
    }

    /// The longest free run inside the attached pages.
    #[inline]
    pub(crate) fn max_gap(&self) -> usize {
        (self.inner_gap as usize).max(self.tail_gap())
    }

    /// Can take one more object (the reverse map is not at its cap).
    #[inline]
    fn has_obj_room(&self) -> bool {
        self.objs.len() < MAX_OBJS_PER_ZSPAGE
    }

    /// Can take one more object without growing the reverse map.
    pub(crate) fn has_obj_capacity(&self) -> bool {
        self.objs.len() < self.objs.capacity()
    }

    /// The capacity the reverse map needs before one more object fits, if
    /// it needs to grow (the caller allocates it with no lock held): what a
    /// full chain of objects like the present ones would need, and at least
    /// a sixteenth more than now. Growing by projection instead of doubling
    /// keeps the slack of a filled zspage to a few entries.
    pub(crate) fn objs_needs(&self, class: &SizeClass) -> Option<usize> {
        let (len, cap) = (self.objs.len(), self.objs.capacity());
        if len < cap {
            return None;
        }
        let end = self.last_end().max(1);
        let projected = len * class.pages_per_zspage * PAGE_SIZE / end + 2;
        let want = projected.max(cap + cap / 16).max(cap + 2);
        Some(want.clamp(OBJS_INITIAL, MAX_OBJS_PER_ZSPAGE))
    }

    /// The capacity to shrink the reverse map to, if it holds more than
    /// twice what it needs (after frees or compaction).
    pub(crate) fn objs_shrink(&self) -> Option<usize> {
        let (len, cap) = (self.objs.len(), self.objs.capacity());
        let want = (len + len / 8).max(OBJS_INITIAL);
        (cap > 2 * want).then_some(want)
    }

    /// Takes over `smaller` (empty) if it holds the present objects and is
    /// smaller than the reverse map; returns the vector to drop. Never
    /// allocates.
    pub(crate) fn adopt_smaller_objs(&mut self, mut smaller: Vec<u32>) -> Vec<u32> {
        if smaller.capacity() < self.objs.len() || smaller.capacity() >= self.objs.capacity() {
            return smaller;
        }
        // Fits: smaller.capacity() >= objs.len(), so no reallocation.
        smaller.extend_from_slice(&self.objs);
        core::mem::replace(&mut self.objs, smaller)
    }

    /// Takes over `bigger` (empty) if it is larger than the reverse map;
    /// returns the vector to drop. Never allocates.
    pub(crate) fn adopt_objs(&mut self, mut bigger: Vec<u32>) -> Vec<u32> {
        if bigger.capacity() <= self.objs.capacity() {
            return bigger;
        }
        // Fits: bigger.capacity() > objs.len(), so no reallocation.
        bigger.extend_from_slice(&self.objs);
        core::mem::replace(&mut self.objs, bigger)
    }

    /// Can grow: the chain is not complete and the object cap not reached.
    #[inline]
    pub(crate) fn growable(&self, class: &SizeClass) -> bool {
        self.pages.len() < class.pages_per_zspage && self.has_obj_room()
    }

    /// The gap `malloc` can count on: the longest free run in the attached
    /// pages, or, if the zspage can grow, at least a page (its tail plus one
    /// more page). 0 when the object cap is reached.
    #[inline]
    pub(crate) fn usable_gap(&self, class: &SizeClass) -> usize {
        if !self.has_obj_room() {
            return 0;
        }
        let mut g = self.max_gap();
        if self.growable(class) {
            g = g.max(self.tail_gap() + PAGE_SIZE);
        }
        g
    }

    /// The gap bucket for this zspage.
    #[inline]
    pub(crate) fn bucket_of(&self, class: &SizeClass) -> usize {
        (self.usable_gap(class) / GAP_UNIT).min(NR_BUCKETS - 1)
    }

    /// The fullness group for this zspage.
    #[inline]
    pub(crate) fn group_of(&self) -> usize {
        (self.live() * NR_GROUPS / self.attached_bytes().max(1)).min(NR_GROUPS - 1)
    }

    /// Pages that packing this zspage in place would free (all of them if
    /// it is empty).
    #[inline]
    pub(crate) fn packable_pages(&self) -> usize {
        self.attached() - self.live().div_ceil(PAGE_SIZE)
    }

    /// The first gap of at least `size` bytes in the attached pages:
    /// (index in the reverse map to insert at, offset).
    pub(crate) fn find_fit(&self, h: &HandleTable, size: usize) -> Option<(usize, usize)> {
        if !self.has_obj_room() {
            return None;
        }
        if (self.inner_gap as usize) >= size {
            let mut cursor = 0;
            for (i, &slot) in self.objs.iter().enumerate() {
                let o = at(h, slot)?;
                if o.off.saturating_sub(cursor) >= size {
                    return Some((i, cursor));
                }
                cursor = o.end();
            }
        }
        (self.tail_gap() >= size).then_some((self.objs.len(), self.last_end()))
    }

    /// Where an object of `size` bytes goes at the tail if one more page is
    /// attached first, when the attached pages have no room for it.
    pub(crate) fn fit_after_growing(&self, class: &SizeClass, size: usize) -> Option<usize> {
        let end = self.last_end();
        (self.growable(class) && end + size <= self.attached_bytes() + PAGE_SIZE).then_some(end)
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

    fn recompute_inner_gap(&mut self, h: &HandleTable) {
        let mut cursor = 0;
        let mut best = 0;
        for &slot in &self.objs {
            let Some(o) = at(h, slot) else { continue };
            best = best.max(o.off.saturating_sub(cursor));
            cursor = o.end();
        }
        self.inner_gap = best as u32;
    }

    /// The end of the object at reverse-map index `idx - 1` (0 for the
    /// first).
    #[inline]
    fn end_before(&self, h: &HandleTable, idx: usize) -> Option<usize> {
        match idx.checked_sub(1) {
            Some(p) => Some(at(h, *self.objs.get(p)?)?.end()),
            None => Some(0),
        }
    }

    /// Records an object of `len` bytes at `off` in handle slot `slot`,
    /// entry `idx` of the reverse map (from [`find_fit`](Self::find_fit) or
    /// the tail). `None` if the map has no capacity or the range is not
    /// free.
    pub(crate) fn place(
        &mut self,
        h: &HandleTable,
        idx: usize,
        off: usize,
        len: usize,
        slot: u32,
    ) -> Option<()> {
        let free_from = self.end_before(h, idx)?;
        let free_to = match self.objs.get(idx) {
            Some(&s) => at(h, s)?.off,
            None => self.attached_bytes(),
        };
        if off < free_from || off + len > free_to || !self.has_obj_capacity() || len == 0 {
            return None;
        }
        let at_tail = idx == self.objs.len();
        // Within capacity: no allocation.
        self.objs.insert(idx, slot);
        self.live += len as u32;
        let before = (off - free_from) as u32;
        if at_tail {
            // The tail shrank; the run before the object (if any) is inner.
            self.end = (off + len) as u32;
            self.inner_gap = self.inner_gap.max(before);
        } else if (free_to - free_from) as u32 >= self.inner_gap && self.inner_gap != 0 {
            // The longest inner run was split: look again (the new object's
            // entry is not written yet: skip it, its range is not free).
            let (mut cursor, mut best) = (0, 0);
            for (i, &s) in self.objs.iter().enumerate() {
                let (o_off, o_end) = if i == idx {
                    (off, off + len)
                } else {
                    let o = at(h, s)?;
                    (o.off, o.end())
                };
                best = best.max(o_off.saturating_sub(cursor));
                cursor = o_end;
            }
            self.inner_gap = best as u32;
        } else {
            let after = (free_to - off - len) as u32;
            self.inner_gap = self.inner_gap.max(before).max(after);
        }
        Some(())
    }

    /// The reverse-map index of the object in handle slot `slot`, which
    /// starts at byte `off` (from its handle entry): a binary search by
    /// offset (the map is sorted by offset, and offsets of non-empty objects
    /// that do not overlap strictly increase), at most 8 handle-table reads
    /// for a full map, whichever object goes, after a look at both ends. Should the entry found not be
    /// `slot` (a broken invariant), a scan of the slots decides.
    #[inline]
    pub(crate) fn find(&self, h: &HandleTable, slot: u32, off: usize) -> Option<usize> {
        // The ends first, no handle-table read: the newest object (a store
        // undone) and the oldest (loads and invalidations, oldest first).
        let n = self.objs.len();
        if n != 0 && self.objs.get(n - 1) == Some(&slot) {
            return Some(n - 1);
        }
        if self.objs.first() == Some(&slot) {
            return Some(0);
        }
        let i = self
            .objs
            .partition_point(|&s| at(h, s).is_some_and(|o| o.off < off));
        if self.objs.get(i) == Some(&slot) {
            return Some(i);
        }
        self.objs.iter().rposition(|&s| s == slot)
    }

    /// Object `idx` of the reverse map.
    pub(crate) fn obj(&self, h: &HandleTable, idx: usize) -> Option<Obj> {
        at(h, *self.objs.get(idx)?)
    }

    /// Removes entry `idx` (its handle entry still names it); returns it.
    pub(crate) fn release(&mut self, h: &HandleTable, idx: usize) -> Option<Obj> {
        let o = self.obj(h, idx)?;
        self.release_obj(h, idx, o)
    }

    /// [`release`](Self::release) of entry `idx` when the caller has its
    /// object `o` at hand (from the handle entry of slot `o.slot`, which is
    /// entry `idx`): no handle-table read for it.
    #[inline]
    pub(crate) fn release_obj(&mut self, h: &HandleTable, idx: usize, o: Obj) -> Option<Obj> {
        debug_assert_eq!(self.obj(h, idx), Some(o));
        let from = self.end_before(h, idx)?;
        self.objs.remove(idx);
        self.live -= o.len as u32;
        match self.objs.get(idx) {
            // An inner run grew by the object and the runs beside it.
            Some(&n) => {
                let run = at(h, n)?.off.saturating_sub(from) as u32;
                self.inner_gap = self.inner_gap.max(run);
            }
            // The last object went: the run before it joined the tail.
            None => {
                self.end = from as u32;
                let run = o.off.saturating_sub(from) as u32;
                if run != 0 && run >= self.inner_gap {
                    self.recompute_inner_gap(h);
                }
            }
        }
        Some(o)
    }

    /// After packing (every object slid down, in order, to end at `end`):
    /// no inner gap is left.
    pub(crate) fn packed(&mut self, end: usize) {
        self.end = end as u32;
        self.inner_gap = 0;
    }

    /// The handle slots of the objects, by offset.
    pub(crate) fn slots(&self) -> &[u32] {
        &self.objs
    }

    /// Detaches the trailing pages that hold no live byte and gives them back
    /// to `alloc`; keeps at least one page. Returns how many.
    pub(crate) fn trim<A: PageAllocator>(&mut self, alloc: &A) -> usize {
        let keep = self.last_end().div_ceil(PAGE_SIZE).max(1);
        let mut freed = 0;
        while self.pages.len() > keep {
            if let Some(p) = self.pages.pop() {
                pages::free_page(alloc, p);
                freed += 1;
            }
        }
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

    /// Heap bytes of this zspage's metadata (page vector and reverse map;
    /// the descriptor itself is counted in the class's slab).
    pub(crate) fn heap_bytes(&self) -> (usize, usize) {
        (
            self.pages.capacity() * core::mem::size_of::<PageFrame>(),
            self.objs.capacity() * core::mem::size_of::<u32>(),
        )
    }
}
