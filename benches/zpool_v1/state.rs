//! The state behind one class lock: the class's handle table, its zspages and
//! their fullness lists. Every method runs with the class lock held and never
//! allocates; what needs memory reports it (`Need`) so the caller can
//! allocate with the lock dropped and come back.

use std::vec::Vec;

use kbase::{Error, PageAllocator, PageFrame, Result};

use super::class::SizeClass;
use super::handle::{HandleEntry, HandleTable, NONE};
use super::pages;
use super::zspage::{FULL, GROWABLE, NR_LISTS, ZsPage};

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

/// What an allocation needs before it can complete under the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// A handle table of this capacity.
    Handles(usize),
    /// A zspage slab of this capacity.
    Slab(usize),
    /// One page, to grow a zspage that is not complete yet.
    Page,
    /// A new zspage.
    ZsPage,
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
/// - Every `Slot::Used` zspage is on exactly the fullness list its
///   [`ZsPage::fullness`] names, linked through `prev`/`next`; `Slot::Free`
///   ids form a list from `free_ids`.
/// - For every live handle entry `e`, zspage `e.zspage` is used and its rmap
///   at `e.obj` holds the entry's slot, and conversely.
/// - No used zspage is empty between two calls.
/// - `pages` is the sum of the attached pages, `bytes` the sum of live sizes.
pub(crate) struct ClassState {
    pub(crate) handles: HandleTable,
    slab: Vec<Slot>,
    free_ids: u32,
    heads: [u32; NR_LISTS],
    pub(crate) nr_zspages: usize,
    pub(crate) pages: usize,
    pub(crate) bytes: usize,
}

impl ClassState {
    pub(crate) const fn new() -> ClassState {
        ClassState {
            handles: HandleTable::new(),
            slab: Vec::new(),
            free_ids: NONE,
            heads: [NONE; NR_LISTS],
            nr_zspages: 0,
            pages: 0,
            bytes: 0,
        }
    }

    fn zs(&self, id: u32) -> Option<&ZsPage> {
        match self.slab.get(id as usize) {
            Some(Slot::Used(z)) => Some(z),
            _ => None,
        }
    }

    fn zs_mut(&mut self, id: u32) -> Option<&mut ZsPage> {
        match self.slab.get_mut(id as usize) {
            Some(Slot::Used(z)) => Some(z),
            _ => None,
        }
    }

    // ---- fullness lists ----

    fn unlink(&mut self, id: u32) {
        let Some(z) = self.zs(id) else { return };
        let (prev, next, list) = (z.prev, z.next, z.list as usize);
        match self.zs_mut(prev) {
            Some(p) => p.next = next,
            None => {
                if let Some(h) = self.heads.get_mut(list).filter(|h| **h == id) {
                    *h = next;
                }
            }
        }
        if let Some(n) = self.zs_mut(next) {
            n.prev = prev;
        }
        if let Some(z) = self.zs_mut(id) {
            z.prev = NONE;
            z.next = NONE;
        }
    }

    fn link(&mut self, id: u32, list: usize) {
        let Some(head) = self.heads.get(list).copied() else {
            return;
        };
        if let Some(h) = self.zs_mut(head) {
            h.prev = id;
        }
        if let Some(z) = self.zs_mut(id) {
            z.prev = NONE;
            z.next = head;
            z.list = list as u8;
        }
        if let Some(h) = self.heads.get_mut(list) {
            *h = id;
        }
    }

    /// Moves zspage `id` to the list its fullness names.
    fn relink(&mut self, class: &SizeClass, id: u32) {
        let Some(z) = self.zs(id) else { return };
        let want = z.fullness(class);
        if want != z.list as usize {
            self.unlink(id);
            self.link(id, want);
        }
    }

    /// The fullest zspage with a free slot in its attached pages, other
    /// than `not`.
    fn fullest_with_room(&self, not: u32) -> Option<u32> {
        for list in (0..GROWABLE).rev() {
            let mut id = self.heads.get(list).copied().unwrap_or(NONE);
            while id != NONE {
                if id != not {
                    return Some(id);
                }
                id = self.zs(id).map_or(NONE, |z| z.next);
            }
        }
        None
    }

    // ---- allocation ----

    /// Capacity the zspage slab needs before one more zspage fits.
    fn slab_needs(&self) -> Option<usize> {
        if self.free_ids != NONE || self.slab.len() < self.slab.capacity() {
            return None;
        }
        Some((self.slab.capacity() * 2).max(4))
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
        } else if self.slab.len() < self.slab.capacity() && self.slab.len() < NONE as usize {
            self.slab.push(Slot::Used(z));
            (self.slab.len() - 1) as u32
        } else {
            return Err(z);
        };
        self.nr_zspages += 1;
        self.pages += self.zs(id).map_or(0, ZsPage::attached);
        if let Some(z) = self.zs_mut(id) {
            z.list = NR_LISTS as u8; // on no list yet
        }
        let list = self.zs(id).map_or(0, |z| z.fullness(class));
        self.link(id, list);
        Ok(id)
    }

    /// Takes zspage `id` off its list and out of the slab.
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
        Some(z)
    }

    /// Allocates a `size`-byte object, using `page` or `fresh` (allocated by
    /// the caller with no lock held) if it needs to. `Ok(Err(need))` asks the
    /// caller for memory and to call again.
    pub(crate) fn alloc(
        &mut self,
        class: &SizeClass,
        size: usize,
        page: &mut Option<PageFrame>,
        fresh: &mut Option<ZsPage>,
    ) -> Result<core::result::Result<Placed, Need>> {
        if let Some(cap) = self.handles.needs_capacity()? {
            return Ok(Err(Need::Handles(cap)));
        }
        let mut pages_added = 0;
        let id = if let Some(id) = self.fullest_with_room(NONE) {
            id
        } else if self.heads[GROWABLE] != NONE {
            let id = self.heads[GROWABLE];
            let Some(p) = page.take() else {
                return Ok(Err(Need::Page));
            };
            let z = self.zs_mut(id).ok_or(Error::EIO)?;
            if let Err(p) = z.attach(class, p) {
                *page = Some(p);
                return Err(Error::EIO);
            }
            self.pages += 1;
            pages_added = 1;
            id
        } else {
            if let Some(cap) = self.slab_needs() {
                return Ok(Err(Need::Slab(cap)));
            }
            let Some(z) = fresh.take() else {
                return Ok(Err(Need::ZsPage));
            };
            pages_added = z.attached();
            match self.insert_zspage(class, z) {
                Ok(id) => id,
                Err(z) => {
                    *fresh = Some(z);
                    return Err(Error::EIO);
                }
            }
        };
        let z = self.zs_mut(id).ok_or(Error::EIO)?;
        let idx = z.first_free(class).ok_or(Error::EIO)?;
        let (slot, generation) = self.handles.insert(id, idx as u16, size as u16)?;
        let z = self.zs_mut(id).ok_or(Error::EIO)?;
        z.place(idx, slot).ok_or(Error::EIO)?;
        self.relink(class, id);
        self.bytes += size;
        Ok(Ok(Placed {
            slot,
            generation,
            pages_added,
        }))
    }

    // ---- lookup, free ----

    /// The object behind (`slot`, `generation`): its zspage, byte offset in
    /// the chain, and size.
    pub(crate) fn locate(
        &self,
        class: &SizeClass,
        slot: u32,
        generation: u16,
    ) -> Result<(&ZsPage, usize, usize)> {
        let e = self.handles.get(slot, generation)?;
        let z = self.zs(e.zspage).ok_or(Error::EIO)?;
        Ok((z, e.obj as usize * class.size, e.size as usize))
    }

    /// Like [`locate`](Self::locate), with the pages writable.
    pub(crate) fn locate_mut(
        &mut self,
        class: &SizeClass,
        slot: u32,
        generation: u16,
    ) -> Result<(&mut ZsPage, usize, usize)> {
        let e: HandleEntry = *self.handles.get(slot, generation)?;
        let z = self.zs_mut(e.zspage).ok_or(Error::EIO)?;
        Ok((z, e.obj as usize * class.size, e.size as usize))
    }

    /// Frees the object; an emptied zspage goes back to `alloc` at once.
    /// Returns the pages freed.
    pub(crate) fn free<A: PageAllocator>(
        &mut self,
        class: &SizeClass,
        alloc: &A,
        slot: u32,
        generation: u16,
    ) -> Result<usize> {
        let e: HandleEntry = *self.handles.get(slot, generation)?;
        let z = self.zs_mut(e.zspage).ok_or(Error::EIO)?;
        if z.slot_at(e.obj as usize) != Some(slot) {
            return Err(Error::EIO);
        }
        z.release(e.obj as usize);
        let empty = z.inuse() == 0;
        self.handles.remove(slot);
        self.bytes -= e.size as usize;
        let mut freed = 0;
        if empty {
            if let Some(z) = self.remove_zspage(e.zspage) {
                freed = z.release_pages(alloc);
            }
        } else {
            self.relink(class, e.zspage);
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

    /// Moves the object at `src_idx` of zspage `src` into the lowest free
    /// attached slot of `dst`.
    fn move_obj(&mut self, class: &SizeClass, src: u32, src_idx: usize, dst: u32) -> Result<()> {
        let (s, d) = two_mut(&mut self.slab, src, dst).ok_or(Error::EIO)?;
        let slot = s.slot_at(src_idx).ok_or(Error::EIO)?;
        let dst_idx = d.first_free(class).ok_or(Error::EIO)?;
        let e = self.handles.get_live_mut(slot).ok_or(Error::EIO)?;
        pages::copy_between(
            &s.pages,
            src_idx * class.size,
            &mut d.pages,
            dst_idx * class.size,
            e.size as usize,
        )?;
        s.release(src_idx);
        d.place(dst_idx, slot);
        e.zspage = dst;
        e.obj = dst_idx as u16;
        Ok(())
    }

    /// Moves live objects of zspage `id` from its top down into free slots
    /// below them, so that trailing pages empty out.
    fn tighten(&mut self, class: &SizeClass, id: u32) -> Result<()> {
        loop {
            let Some(z) = zs_in(&mut self.slab, id) else {
                return Ok(());
            };
            let (Some(hi), Some(lo)) = (z.highest_live(), z.first_free(class)) else {
                return Ok(());
            };
            if lo >= hi {
                return Ok(());
            }
            let slot = z.slot_at(hi).ok_or(Error::EIO)?;
            let e = self.handles.get_live_mut(slot).ok_or(Error::EIO)?;
            pages::copy_within(
                &mut z.pages,
                hi * class.size,
                lo * class.size,
                e.size as usize,
            )?;
            z.release(hi);
            z.place(lo, slot);
            e.obj = lo as u16;
        }
    }

    /// Trims zspage `id`'s unused trailing pages, or frees it when empty.
    fn trim_or_free<A: PageAllocator>(&mut self, class: &SizeClass, alloc: &A, id: u32) -> usize {
        let Some(z) = self.zs_mut(id) else { return 0 };
        if z.inuse() == 0 {
            return self.remove_zspage(id).map_or(0, |z| z.release_pages(alloc));
        }
        let freed = z.trim(class, alloc);
        self.pages -= freed;
        self.relink(class, id);
        freed
    }

    /// One step of compaction (Linux's `__zs_compact`, one source zspage per
    /// call so the lock is dropped between steps): moves the objects of the
    /// emptiest zspage into the fullest ones that have room, then frees or
    /// trims the source. Once no object can move to another zspage, packs one
    /// zspage in place per step and trims it; reports the class done when
    /// nothing is left to do.
    /// Returns (pages freed, more to do).
    pub(crate) fn compact_step<A: PageAllocator>(
        &mut self,
        class: &SizeClass,
        alloc: &A,
    ) -> Result<(usize, bool)> {
        // The emptiest zspage not on FULL.
        let mut src: Option<(u32, usize)> = None;
        for list in 0..FULL {
            let mut id = self.heads.get(list).copied().unwrap_or(NONE);
            while id != NONE {
                let Some(z) = self.zs(id) else { break };
                if src.is_none_or(|(_, n)| z.inuse() < n) {
                    src = Some((id, z.inuse()));
                }
                id = z.next;
            }
        }
        let Some((src, _)) = src else {
            return Ok((0, false));
        };
        if let Some(mut dst) = self.fullest_with_room(src) {
            // dst.inuse >= src.inuse (src is the emptiest), so every move
            // raises the sum of squared inuse counts: this terminates.
            while let Some(hi) = self.zs(src).and_then(ZsPage::highest_live) {
                self.move_obj(class, src, hi, dst)?;
                self.relink(class, dst);
                if self.zs(dst).is_some_and(|d| d.fullness(class) >= GROWABLE) {
                    match self.fullest_with_room(src) {
                        Some(next) => dst = next,
                        None => break,
                    }
                }
            }
            self.relink(class, src);
            return Ok((self.trim_or_free(class, alloc, src), true));
        }
        // No zspage but `src` has room: pack one zspage in place (top
        // objects into low holes) and trim it; one per step, so the lock is
        // held for one zspage's worth of copying at a time.
        for list in 0..FULL {
            let mut id = self.heads.get(list).copied().unwrap_or(NONE);
            while id != NONE {
                let next = self.zs(id).map_or(NONE, |z| z.next);
                if self.needs_packing(class, id) {
                    self.tighten(class, id)?;
                    return Ok((self.trim_or_free(class, alloc, id), true));
                }
                id = next;
            }
        }
        Ok((0, false))
    }

    /// Has zspage `id` a hole below its highest object, or a trailing page
    /// without live bytes?
    fn needs_packing(&mut self, class: &SizeClass, id: u32) -> bool {
        let Some(z) = zs_in(&mut self.slab, id) else {
            return false;
        };
        let Some(hi) = z.highest_live() else {
            return true;
        };
        let hole_below = z.first_free(class).is_some_and(|lo| lo < hi);
        hole_below || z.attached() > class.pages_for_objs(hi + 1)
    }

    /// Heap bytes of the class's metadata: handle table, slab, and each
    /// zspage's page vector and reverse map.
    pub(crate) fn heap_bytes(&self) -> usize {
        let zspages: usize = self
            .slab
            .iter()
            .map(|s| match s {
                Slot::Used(z) => z.heap_bytes(),
                Slot::Free(_) => 0,
            })
            .sum();
        self.handles.heap_bytes() + self.slab.capacity() * core::mem::size_of::<Slot>() + zspages
    }
}
