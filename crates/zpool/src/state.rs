//! The state behind one class lock: the class's handle table, its zspages,
//! their gap buckets and fullness groups. Every method runs with the class
//! lock held and never allocates; what needs memory reports it (`Need`) so
//! the caller can allocate with the lock dropped and come back.

use alloc::vec::Vec;

use kbase::{Error, PAGE_SIZE, PageAllocator, PageFrame, Result};

use crate::class::SizeClass;
use crate::handle::{Chunk, HandleEntry, HandleNeed, HandleTable, MAX_ZSPAGES, NONE};
use crate::pages::{self, RawSegs};
use crate::pin::{PIN_SLOTS, PinTable};
use crate::zspage::{GAP_UNIT, NR_BUCKETS, NR_GROUPS, Obj, ZsPage};

/// How many zspages of one list `malloc` or compaction looks at before it
/// moves on to the next list: bounds the time under the lock.
const WALK: usize = 16;

/// A slot of the zspage slab.
pub(crate) enum Slot {
    /// Free id; the next free id.
    Free(u32),
    Used(ZsPage),
}

/// Zspage `id` of `slab`, mutably (a free function so that the handle table
/// can be borrowed at the same time).
fn zs_in(slab: &mut [Slot], id: u32) -> Option<&mut ZsPage> {
    match slab.get_mut(id as usize) {
        Some(Slot::Used(z)) => Some(z),
        _ => None,
    }
}

/// Two different zspages of `slab`, mutably.
fn two_mut(slab: &mut [Slot], a: u32, b: u32) -> Option<(&mut ZsPage, &mut ZsPage)> {
    let (a, b) = (a as usize, b as usize);
    if a == b {
        return None;
    }
    let (lo, hi) = (a.min(b), a.max(b));
    let (left, right) = slab.split_at_mut(hi);
    let (Some(Slot::Used(x)), Some(Slot::Used(y))) = (left.get_mut(lo), right.first_mut()) else {
        return None;
    };
    if a < b { Some((x, y)) } else { Some((y, x)) }
}

/// The zspages holding pinned objects, found once per compaction step (the
/// set cannot grow while the class lock is held, see `pin.rs`).
struct PinnedZs {
    ids: [u32; PIN_SLOTS],
    n: usize,
}

impl PinnedZs {
    const NONE: PinnedZs = PinnedZs {
        ids: [NONE; PIN_SLOTS],
        n: 0,
    };

    fn of(handles: &HandleTable, pins: &PinTable) -> PinnedZs {
        let mut p = PinnedZs::NONE;
        for slot in pins.pinned() {
            if let (Some(e), Some(id)) = (handles.get_live(slot), p.ids.get_mut(p.n)) {
                *id = e.zspage();
                p.n += 1;
            }
        }
        p
    }

    fn contains(&self, id: u32) -> bool {
        self.ids.iter().take(self.n).any(|&x| x == id)
    }
}

/// What an allocation needs before it can complete under the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// A handle-table directory of this capacity.
    Handles(usize),
    /// A handle-table chunk.
    HandleChunk,
    /// A zspage slab of this capacity.
    Slab(usize),
    /// A reverse map of this capacity for the zspage the object goes to.
    Objs(usize),
    /// One page, to grow a zspage that is not complete yet.
    Page,
    /// A new zspage.
    ZsPage,
}

/// Memory the caller allocated with no lock held, offered to `alloc`.
pub(crate) struct Offer {
    pub(crate) page: Option<PageFrame>,
    pub(crate) fresh: Option<ZsPage>,
    pub(crate) objs: Option<Vec<u32>>,
    pub(crate) chunk: Option<alloc::boxed::Box<Chunk>>,
    /// A vector `alloc` replaced, for the caller to drop after unlocking.
    pub(crate) old_objs: Option<Vec<u32>>,
}

/// What a compaction step did.
#[derive(Default)]
pub(crate) struct Step {
    /// Pages given back.
    pub(crate) freed: usize,
    /// The pass has more sources.
    pub(crate) more: bool,
    /// The source zspage's reverse map should shrink to this capacity.
    pub(crate) shrink: Option<(u32, usize)>,
}

/// What a completed allocation did.
pub(crate) struct Placed {
    pub(crate) slot: u32,
    pub(crate) generation: u16,
    /// Pages the class gained (0 or 1).
    pub(crate) pages_added: usize,
}

/// One class's objects.
///
/// # Invariants
///
/// - Every `Slot::Used` zspage is on exactly the gap bucket its
///   [`ZsPage::bucket_of`] names and the fullness group its
///   [`ZsPage::group_of`] names, linked through `prev`/`next` and
///   `gprev`/`gnext`; `Slot::Free` ids form a list from `free_ids`.
/// - For every live handle entry `e`, zspage `e.zspage()` is used and its
///   reverse map holds the entry's slot, at the place the entry's offset
///   sorts to, and conversely; the object's bytes are `e.size()` bytes at
///   `e.obj()` of the zspage's chain.
/// - No used zspage is empty between two calls.
/// - `pages` is the sum of the attached pages, `bytes` the sum of live
///   sizes, `freeable` the sum of the zspages' `packable`.
/// - An object pinned in `pins` is not freed, written or
///   moved, and a zspage holding a pinned object is neither a compaction
///   source nor a target nor packed: a load reading it with the lock dropped
///   sees its bytes and pages unchanged. (It can gain objects and pages from
///   `malloc`, and lose other objects to `free`: those are other bytes.)
///
/// `repr(C)`, in the order loads touch it: the pin table and the two
/// counters nearly every `malloc` and `free` writes first, in the lock
/// word's cache line (the lock word comes first in the class lock), so a
/// load's pin, unpin and free write no class-wide line but the lock's; then
/// what a lookup reads (the slab and the handle table's vector headers),
/// which changes only when a zspage or chunk comes or goes; the list heads
/// last.
#[repr(C)]
pub(crate) struct ClassState {
    /// Loads in flight (`pin.rs`).
    pub(crate) pins: PinTable,
    pub(crate) bytes: usize,
    pub(crate) freeable: usize,
    slab: Vec<Slot>,
    pub(crate) handles: HandleTable,
    /// Bit `b` set when bucket `b` is not empty.
    nonempty: u64,
    pub(crate) nr_zspages: usize,
    pub(crate) pages: usize,
    free_ids: u32,
    /// Current compaction pass (each source is taken once per pass).
    pass: u32,
    heads: [u32; NR_BUCKETS],
    gheads: [u32; NR_GROUPS],
    gtails: [u32; NR_GROUPS],
}

// The pins and the per-free counters fit the 56 bytes after the lock word.
const _: () =
    assert!(core::mem::offset_of!(ClassState, freeable) + core::mem::size_of::<usize>() <= 56);

impl ClassState {
    pub(crate) const fn new() -> ClassState {
        ClassState {
            pins: PinTable::new(),
            handles: HandleTable::new(),
            slab: Vec::new(),
            free_ids: NONE,
            heads: [NONE; NR_BUCKETS],
            nonempty: 0,
            gheads: [NONE; NR_GROUPS],
            gtails: [NONE; NR_GROUPS],
            nr_zspages: 0,
            pages: 0,
            bytes: 0,
            freeable: 0,
            pass: 1,
        }
    }

    fn zs(&self, id: u32) -> Option<&ZsPage> {
        match self.slab.get(id as usize) {
            Some(Slot::Used(z)) => Some(z),
            _ => None,
        }
    }

    fn zs_mut(&mut self, id: u32) -> Option<&mut ZsPage> {
        zs_in(&mut self.slab, id)
    }

    // ---- lists ----

    #[inline]
    fn unlink_bucket(&mut self, id: u32) {
        let Some(z) = self.zs(id) else { return };
        let (prev, next, b) = (z.prev, z.next, z.bucket as usize);
        match self.zs_mut(prev) {
            Some(p) => p.next = next,
            None => {
                if let Some(h) = self.heads.get_mut(b).filter(|h| **h == id) {
                    *h = next;
                    if next == NONE {
                        self.nonempty &= !(1u64 << b);
                    }
                }
            }
        }
        if let Some(n) = self.zs_mut(next) {
            n.prev = prev;
        }
        if let Some(z) = self.zs_mut(id) {
            z.prev = NONE;
            z.next = NONE;
            z.bucket = NR_BUCKETS as u8;
        }
    }

    #[inline]
    fn unlink_group(&mut self, id: u32) {
        let Some(z) = self.zs(id) else { return };
        let (gprev, gnext, g) = (z.gprev, z.gnext, z.group as usize);
        match self.zs_mut(gprev) {
            Some(p) => p.gnext = gnext,
            None => {
                if let Some(h) = self.gheads.get_mut(g).filter(|h| **h == id) {
                    *h = gnext;
                }
            }
        }
        match self.zs_mut(gnext) {
            Some(n) => n.gprev = gprev,
            None => {
                if let Some(t) = self.gtails.get_mut(g).filter(|t| **t == id) {
                    *t = gprev;
                }
            }
        }
        if let Some(z) = self.zs_mut(id) {
            z.gprev = NONE;
            z.gnext = NONE;
            z.group = NR_GROUPS as u8;
        }
    }

    fn unlink(&mut self, id: u32) {
        self.unlink_bucket(id);
        self.unlink_group(id);
    }

    /// Links `id` at the head of the gap bucket its state names.
    #[inline]
    fn link_bucket(&mut self, class: &SizeClass, id: u32) {
        let Some(z) = self.zs(id) else { return };
        let b = z.bucket_of(class);
        let Some(&head) = self.heads.get(b) else {
            return;
        };
        if let Some(h) = self.zs_mut(head) {
            h.prev = id;
        }
        if let Some(z) = self.zs_mut(id) {
            z.prev = NONE;
            z.next = head;
            z.bucket = b as u8;
        }
        if let Some(h) = self.heads.get_mut(b) {
            *h = id;
            self.nonempty |= 1u64 << b;
        }
    }

    /// Links `id` at the head (or, for a zspage compaction just processed,
    /// the tail) of the fullness group its state names.
    #[inline]
    fn link_group(&mut self, id: u32, group_tail: bool) {
        let Some(z) = self.zs(id) else { return };
        let g = z.group_of();
        let (Some(&ghead), Some(&gtail)) = (self.gheads.get(g), self.gtails.get(g)) else {
            return;
        };
        if group_tail {
            if let Some(t) = self.zs_mut(gtail) {
                t.gnext = id;
            }
        } else if let Some(h) = self.zs_mut(ghead) {
            h.gprev = id;
        }
        if let Some(z) = self.zs_mut(id) {
            if group_tail {
                z.gprev = gtail;
                z.gnext = NONE;
            } else {
                z.gprev = NONE;
                z.gnext = ghead;
            }
            z.group = g as u8;
        }
        if (group_tail || ghead == NONE)
            && let Some(t) = self.gtails.get_mut(g)
        {
            *t = id;
        }
        if (!group_tail || ghead == NONE)
            && let Some(h) = self.gheads.get_mut(g)
        {
            *h = id;
        }
    }

    fn link(&mut self, class: &SizeClass, id: u32, group_tail: bool) {
        self.link_bucket(class, id);
        self.link_group(id, group_tail);
    }

    /// Puts zspage `id` on the lists its state names and updates
    /// `freeable`; only the lists whose position changed are touched.
    #[inline]
    fn relink(&mut self, class: &SizeClass, id: u32, group_tail: bool) {
        let Some(z) = self.zs_mut(id) else { return };
        let packable = z.packable_pages() as u32;
        let old = core::mem::replace(&mut z.packable, packable);
        let bucket_moved = z.bucket as usize != z.bucket_of(class);
        let group_moved = z.group as usize != z.group_of();
        self.freeable = self.freeable + packable as usize - old as usize;
        if bucket_moved {
            self.unlink_bucket(id);
            self.link_bucket(class, id);
        }
        if group_moved || group_tail {
            self.unlink_group(id);
            self.link_group(id, group_tail);
        }
    }

    /// The zspage `malloc` (or, with `target_of`, compaction) should put a
    /// `size`-byte object in: the first with a fitting gap in its attached
    /// pages, searching the smallest sufficient bucket first (best fit
    /// across zspages, first fit inside one); failing that, one that fits
    /// after growing by a page. Compaction targets (`target_of = Some(src)`)
    /// are unpinned, not `src`, at least as full as `src`, need neither a page
    /// nor a bigger reverse map.
    fn choose(
        &self,
        class: &SizeClass,
        size: usize,
        target_of: Option<(u32, &PinnedZs)>,
    ) -> Option<(u32, bool)> {
        let (target_of, pinned) = match target_of {
            Some((src, p)) => (Some(src), p),
            None => (None, &PinnedZs::NONE),
        };
        let src_live = target_of.and_then(|s| self.zs(s)).map_or(0, ZsPage::live);
        let mut grow = None;
        let first = (size / GAP_UNIT).min(NR_BUCKETS - 1);
        let mut buckets = self.nonempty >> first << first;
        while buckets != 0 {
            let b = buckets.trailing_zeros() as usize;
            buckets &= buckets - 1;
            let mut id = self.heads.get(b).copied().unwrap_or(NONE);
            let mut seen = 0;
            while id != NONE && seen < WALK {
                let z = self.zs(id)?;
                seen += 1;
                let ok = match target_of {
                    None => true,
                    Some(src) => {
                        id != src
                            && z.live() >= src_live
                            && z.has_obj_capacity()
                            && !pinned.contains(id)
                    }
                };
                if ok && z.max_gap() >= size && z.find_fit(&self.handles, size).is_some() {
                    return Some((id, false));
                }
                if ok
                    && target_of.is_none()
                    && grow.is_none()
                    && z.fit_after_growing(class, size).is_some()
                {
                    grow = Some(id);
                }
                id = z.next;
            }
        }
        grow.map(|id| (id, true))
    }

    // ---- allocation ----

    /// Capacity the zspage slab needs before one more zspage fits.
    fn slab_needs(&self) -> Result<Option<usize>> {
        if self.free_ids != NONE || self.slab.len() < self.slab.capacity() {
            return Ok(None);
        }
        if self.slab.len() >= MAX_ZSPAGES {
            return Err(Error::ENOMEM);
        }
        Ok(Some((self.slab.capacity() * 2).clamp(4, MAX_ZSPAGES)))
    }

    /// Takes over a bigger slab allocated by the caller; returns the vector
    /// to drop. Never allocates.
    pub(crate) fn adopt_slab(&mut self, mut bigger: Vec<Slot>) -> Vec<Slot> {
        if bigger.capacity() <= self.slab.capacity() {
            return bigger;
        }
        // Fits: bigger.capacity() > slab.len(), so no reallocation.
        bigger.append(&mut self.slab);
        core::mem::replace(&mut self.slab, bigger)
    }

    fn insert_zspage(&mut self, class: &SizeClass, z: ZsPage) -> core::result::Result<u32, ZsPage> {
        let id = if self.free_ids != NONE {
            let id = self.free_ids;
            let Some(s) = self.slab.get_mut(id as usize) else {
                return Err(z);
            };
            let Slot::Free(next) = *s else { return Err(z) };
            self.free_ids = next;
            *s = Slot::Used(z);
            id
        } else if self.slab.len() < self.slab.capacity() && self.slab.len() < MAX_ZSPAGES {
            self.slab.push(Slot::Used(z));
            (self.slab.len() - 1) as u32
        } else {
            return Err(z);
        };
        self.nr_zspages += 1;
        self.pages += self.zs(id).map_or(0, ZsPage::attached);
        self.link(class, id, false);
        Ok(id)
    }

    /// Takes zspage `id` off its lists and out of the slab.
    fn remove_zspage(&mut self, id: u32) -> Option<ZsPage> {
        self.zs(id)?;
        self.unlink(id);
        let s = self.slab.get_mut(id as usize)?;
        let Slot::Used(z) = core::mem::replace(s, Slot::Free(self.free_ids)) else {
            return None;
        };
        self.free_ids = id;
        self.nr_zspages -= 1;
        self.pages -= z.attached();
        self.freeable -= z.packable as usize;
        Some(z)
    }

    /// Allocates a `size`-byte object, using what `offer` holds (allocated
    /// by the caller with no lock held) if it needs to. `Ok(Err(need))` asks
    /// the caller for memory and to call again.
    pub(crate) fn alloc(
        &mut self,
        class: &SizeClass,
        size: usize,
        offer: &mut Offer,
    ) -> Result<core::result::Result<Placed, Need>> {
        match self.handles.needs()? {
            None => {}
            Some(HandleNeed::Dir(cap)) => return Ok(Err(Need::Handles(cap))),
            Some(HandleNeed::Chunk) => {
                let Some(c) = offer.chunk.take() else {
                    return Ok(Err(Need::HandleChunk));
                };
                offer.chunk = self.handles.adopt_chunk(c);
                if self.handles.needs()?.is_some() {
                    return Err(Error::EIO);
                }
            }
        }
        let mut pages_added = 0;
        let id = match self.choose(class, size, None) {
            Some((id, grow)) => {
                let z = self.zs_mut(id).ok_or(Error::EIO)?;
                if let Some(cap) = z.objs_needs(class) {
                    match offer.objs.take() {
                        Some(v) if v.capacity() >= cap => offer.old_objs = Some(z.adopt_objs(v)),
                        _ => return Ok(Err(Need::Objs(cap))),
                    }
                }
                if grow {
                    let Some(p) = offer.page.take() else {
                        return Ok(Err(Need::Page));
                    };
                    if let Err(p) = z.attach(class, p) {
                        offer.page = Some(p);
                        return Err(Error::EIO);
                    }
                    self.pages += 1;
                    pages_added = 1;
                }
                id
            }
            None => {
                if let Some(cap) = self.slab_needs()? {
                    return Ok(Err(Need::Slab(cap)));
                }
                let Some(z) = offer.fresh.take() else {
                    return Ok(Err(Need::ZsPage));
                };
                pages_added = z.attached();
                match self.insert_zspage(class, z) {
                    Ok(id) => id,
                    Err(z) => {
                        offer.fresh = Some(z);
                        return Err(Error::EIO);
                    }
                }
            }
        };
        let z = self.zs(id).ok_or(Error::EIO)?;
        let (idx, off) = z.find_fit(&self.handles, size).ok_or(Error::EIO)?;
        let (slot, generation) = self.handles.insert(id, off, size)?;
        let z = zs_in(&mut self.slab, id).ok_or(Error::EIO)?;
        if z.place(&self.handles, idx, off, size, slot).is_none() {
            self.handles.remove(slot);
            return Err(Error::EIO);
        }
        self.relink(class, id, false);
        self.bytes += size;
        Ok(Ok(Placed {
            slot,
            generation,
            pages_added,
        }))
    }

    // ---- lookup, free ----

    /// The object behind (`slot`, `generation`) for a write: its zspage,
    /// byte offset in the chain, and size. EBUSY while a load has it pinned.
    pub(crate) fn locate_for_write(
        &self,
        slot: u32,
        generation: u16,
    ) -> Result<(&ZsPage, usize, usize)> {
        let e = self.handles.get(slot, generation)?;
        if self.pins.is_pinned(slot) {
            return Err(Error::EBUSY);
        }
        let z = self.zs(e.zspage()).ok_or(Error::EIO)?;
        Ok((z, e.obj(), e.size()))
    }

    /// Pins the object behind (`slot`, `generation`) for a load with the
    /// class lock dropped (`zs_obj_read_begin`): returns where its bytes are.
    /// Until [`unpin`](Self::unpin) (under the lock again) the object is not
    /// freed (EBUSY), not written (EBUSY) and not moved, and compaction
    /// leaves its zspage alone, so its pages stay attached and its bytes
    /// unchanged. `Ok(None)` if every pin is taken (the caller drops the lock
    /// and tries again).
    /// Also returns the object's handle entry, which stays as it is while
    /// the object is pinned (for [`unpin_and_free`](Self::unpin_and_free)).
    #[inline]
    pub(crate) fn pin(
        &mut self,
        slot: u32,
        generation: u16,
    ) -> Result<Option<(RawSegs, HandleEntry)>> {
        let e = *self.handles.get(slot, generation)?;
        let z = self.zs(e.zspage()).ok_or(Error::EIO)?;
        let segs = pages::raw_segments(&z.pages, e.obj(), e.size())?;
        Ok(self.pins.pin(slot).then_some((segs, e)))
    }

    /// Ends a load of the object in `slot` begun with [`pin`](Self::pin)
    /// (`zs_obj_read_end`).
    #[inline]
    pub(crate) fn unpin(&mut self, slot: u32) {
        self.pins.unpin(slot);
    }

    /// Where the bytes of the object behind (`slot`, `generation`) are, for
    /// a copy made before the lock is dropped.
    #[inline]
    pub(crate) fn segments(&self, slot: u32, generation: u16) -> Result<RawSegs> {
        let e = self.handles.get(slot, generation)?;
        let z = self.zs(e.zspage()).ok_or(Error::EIO)?;
        pages::raw_segments(&z.pages, e.obj(), e.size())
    }

    /// Frees the object; an emptied zspage goes back to `alloc` at once.
    /// Returns the pages freed. EBUSY while a load has the object pinned.
    pub(crate) fn free<A: PageAllocator>(
        &mut self,
        class: &SizeClass,
        alloc: &A,
        slot: u32,
        generation: u16,
    ) -> Result<usize> {
        let e: HandleEntry = *self.handles.get(slot, generation)?;
        if self.pins.is_pinned(slot) {
            return Err(Error::EBUSY);
        }
        self.free_entry(class, alloc, slot, e)
    }

    /// Ends a load begun with [`pin`](Self::pin) (which returned `e`) and
    /// frees its object, as [`unpin`](Self::unpin) then [`free`](Self::free)
    /// but with no second lookup of the handle entry (a pinned object's
    /// entry does not change). EBUSY, the object kept, while another load
    /// of it is in flight.
    #[inline]
    pub(crate) fn unpin_and_free<A: PageAllocator>(
        &mut self,
        class: &SizeClass,
        alloc: &A,
        slot: u32,
        e: HandleEntry,
    ) -> Result<usize> {
        if !self.pins.unpin_last(slot) {
            return Err(Error::EBUSY);
        }
        debug_assert_eq!(
            self.handles.get(slot, e.generation()).ok().copied(),
            Some(e),
            "a pinned object's handle entry changed"
        );
        self.free_entry(class, alloc, slot, e)
    }

    /// The common part of [`free`](Self::free) and
    /// [`unpin_and_free`](Self::unpin_and_free): `e` is the live, unpinned
    /// entry of `slot`.
    #[inline]
    fn free_entry<A: PageAllocator>(
        &mut self,
        class: &SizeClass,
        alloc: &A,
        slot: u32,
        e: HandleEntry,
    ) -> Result<usize> {
        let zid = e.zspage();
        let z = zs_in(&mut self.slab, zid).ok_or(Error::EIO)?;
        let idx = z.find(&self.handles, slot, e.obj()).ok_or(Error::EIO)?;
        let o = Obj {
            off: e.obj(),
            len: e.size(),
            slot,
        };
        z.release_obj(&self.handles, idx, o).ok_or(Error::EIO)?;
        let empty = z.nr_objs() == 0;
        self.handles.remove(slot);
        self.bytes -= e.size();
        let mut freed = 0;
        if empty {
            if let Some(z) = self.remove_zspage(zid) {
                freed = z.release_pages(alloc);
            }
        } else {
            self.relink(class, zid, false);
        }
        Ok(freed)
    }

    /// Frees every zspage (pool teardown); returns the pages freed.
    pub(crate) fn release_all<A: PageAllocator>(&mut self, alloc: &A) -> usize {
        let mut freed = 0;
        for s in self.slab.drain(..) {
            if let Slot::Used(z) = s {
                freed += z.release_pages(alloc);
            }
        }
        *self = ClassState::new();
        freed
    }

    // ---- compaction ----

    /// Starts a new compaction pass: every zspage may be a source again.
    pub(crate) fn new_pass(&mut self) {
        self.pass = self.pass.wrapping_add(1).max(1);
    }

    /// The next compaction source of this pass: the emptiest group first, a
    /// zspage not pinned and not taken yet in this pass.
    fn next_source(&self, pinned: &PinnedZs) -> Option<u32> {
        for g in 0..NR_GROUPS - 1 {
            let mut id = self.gheads.get(g).copied().unwrap_or(NONE);
            let mut seen = 0;
            while id != NONE && seen < WALK {
                let z = self.zs(id)?;
                if z.pass != self.pass && !pinned.contains(id) {
                    return Some(id);
                }
                seen += 1;
                id = z.gnext;
            }
        }
        None
    }

    /// Moves object `idx` of zspage `src` to a gap of zspage `dst`.
    /// Neither is pinned (the caller checked).
    fn move_obj(&mut self, src: u32, idx: usize, dst: u32) -> Result<()> {
        let (s, d) = two_mut(&mut self.slab, src, dst).ok_or(Error::EIO)?;
        let h = &self.handles;
        let o = s.obj(h, idx).ok_or(Error::EIO)?;
        let (didx, doff) = d.find_fit(h, o.len).ok_or(Error::EIO)?;
        if !d.has_obj_capacity() {
            return Err(Error::EBUSY);
        }
        pages::copy(&s.pages, o.off, &d.pages, doff, o.len)?;
        // The handle entry still names the source until both maps agree.
        d.place(h, didx, doff, o.len, o.slot).ok_or(Error::EIO)?;
        s.release(h, idx).ok_or(Error::EIO)?;
        let e = self.handles.get_live_mut(o.slot).ok_or(Error::EIO)?;
        e.set_loc(dst, doff);
        Ok(())
    }

    /// Slides the objects of zspage `id` down over its gaps, so that its
    /// free space is one run at the tail. The zspage is not pinned (the
    /// caller checked).
    fn pack(&mut self, id: u32) -> Result<()> {
        let Some(z) = zs_in(&mut self.slab, id) else {
            return Ok(());
        };
        let mut cursor = 0;
        for &slot in z.slots() {
            let e = self.handles.get_live_mut(slot).ok_or(Error::EIO)?;
            let (off, len) = (e.obj(), e.size());
            if off > cursor {
                pages::move_down(&z.pages, off, cursor, len)?;
                e.set_obj(cursor);
            }
            cursor += len;
        }
        z.packed(cursor);
        Ok(())
    }

    /// One step of compaction (Linux's `__zs_compact`, one source zspage per
    /// call so the lock is dropped between steps): takes the next source of
    /// the pass (emptiest first), moves its objects, from the top down, into
    /// gaps of zspages at least as full, then frees it if empty, or packs it
    /// in place and trims its trailing pages. Returns what it did.
    pub(crate) fn compact_step<A: PageAllocator>(
        &mut self,
        class: &SizeClass,
        alloc: &A,
    ) -> Result<Step> {
        let pinned = PinnedZs::of(&self.handles, &self.pins);
        let Some(src) = self.next_source(&pinned) else {
            return Ok(Step::default());
        };
        let pass = self.pass;
        if let Some(z) = self.zs_mut(src) {
            z.pass = pass;
        }
        // Objects that found no room stay; a few misses end the attempt.
        let mut misses = 0;
        let mut idx = self.zs(src).map_or(0, ZsPage::nr_objs);
        while idx > 0 && misses < 4 {
            idx -= 1;
            let Some(o) = self.zs(src).and_then(|z| z.obj(&self.handles, idx)) else {
                break;
            };
            match self.choose(class, o.len, Some((src, &pinned))) {
                Some((dst, false)) => {
                    self.move_obj(src, idx, dst)?;
                    self.relink(class, dst, false);
                }
                _ => misses += 1,
            }
        }
        let Some(z) = self.zs(src) else {
            return Ok(Step {
                more: true,
                ..Step::default()
            });
        };
        let mut step = Step {
            more: true,
            ..Step::default()
        };
        if z.nr_objs() == 0 {
            step.freed = self
                .remove_zspage(src)
                .map_or(0, |z| z.release_pages(alloc));
        } else {
            self.pack(src)?;
            let z = self.zs_mut(src).ok_or(Error::EIO)?;
            step.freed = z.trim(alloc);
            step.shrink = z.objs_shrink().map(|cap| (src, cap));
            self.pages -= step.freed;
            self.relink(class, src, true);
        }
        Ok(step)
    }

    /// Gives zspage `id` the smaller reverse map `v` (allocated by the
    /// caller with no lock held, after a compaction step asked for it) if
    /// it still fits; returns the vector to drop after unlocking.
    pub(crate) fn shrink_objs(&mut self, id: u32, v: Vec<u32>) -> Vec<u32> {
        match self.zs_mut(id) {
            Some(z) => z.adopt_smaller_objs(v),
            None => v,
        }
    }

    /// Heap bytes of the class's metadata: (handle table, slab of zspage
    /// descriptors, page vectors, reverse maps).
    pub(crate) fn heap_bytes(&self) -> [usize; 4] {
        let (mut pv, mut rm) = (0, 0);
        for s in &self.slab {
            if let Slot::Used(z) = s {
                let (a, b) = z.heap_bytes();
                pv += a;
                rm += b;
            }
        }
        [
            self.handles.heap_bytes(),
            self.slab.capacity() * core::mem::size_of::<Slot>(),
            pv,
            rm,
        ]
    }

    /// Recounts objects, bytes, pages and zspages from the zspages (tests).
    /// The zspage count is `usize::MAX` if the gap buckets or fullness
    /// groups do not hold every zspage exactly once, on the list its state
    /// names.
    pub(crate) fn recount(&self, class: &SizeClass) -> (usize, usize, usize, usize) {
        let (mut objs, mut bytes, mut pages, mut zspages) = (0, 0, 0, 0);
        for s in &self.slab {
            if let Slot::Used(z) = s {
                objs += z.nr_objs();
                bytes += z.live();
                pages += z.attached();
                zspages += 1;
            }
        }
        let (mut in_buckets, mut in_groups) = (0, 0);
        let mut ok = true;
        for (b, &head) in self.heads.iter().enumerate() {
            ok &= (head != NONE) == (self.nonempty & (1u64 << b) != 0);
            let (mut id, mut prev) = (head, NONE);
            while let Some(z) = self.zs(id) {
                ok &= z.bucket as usize == b && z.bucket_of(class) == b && z.prev == prev;
                in_buckets += 1;
                if in_buckets > zspages {
                    break;
                }
                (prev, id) = (id, z.next);
            }
        }
        for (g, &head) in self.gheads.iter().enumerate() {
            let (mut id, mut prev) = (head, NONE);
            while let Some(z) = self.zs(id) {
                ok &= z.group as usize == g && z.group_of() == g && z.gprev == prev;
                in_groups += 1;
                if in_groups > zspages {
                    break;
                }
                (prev, id) = (id, z.gnext);
            }
            ok &= self.gtails.get(g) == Some(&prev);
        }
        if !ok || in_buckets != zspages || in_groups != zspages {
            zspages = usize::MAX;
        }
        (objs, bytes, pages, zspages)
    }
}

const _: () = assert!(PAGE_SIZE.is_multiple_of(GAP_UNIT));
const _: () = assert!(NR_BUCKETS <= 64);
