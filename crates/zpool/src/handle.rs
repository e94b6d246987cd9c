//! Handles and the per-class handle table.
//!
//! A [`Handle`] is a `u64`:
//!
//! ```text
//!  63        52 51     44 43          28 27             0
//! +------------+---------+--------------+----------------+
//! |  pool id   |  class  |  generation  |  table slot    |
//! |  12 bits   |  8 bits |  16 bits     |  28 bits       |
//! +------------+---------+--------------+----------------+
//! ```
//!
//! The class lives in the handle because an object never changes class (it
//! only moves between zspages of its class), so every data-path call goes
//! straight to one class lock; no pool-wide table or lock is touched. With
//! per-CPU shards (`ZsConfig::shards`) the field names the class *slot*,
//! band x shards + shard: each shard is a class of its own. The
//! slot indexes that class's [`HandleTable`], whose entry holds the object's
//! current location and exact size; compaction rewrites the entry, never the
//! handle. The pool id (never 0, so no valid handle is 0) and the slot's
//! generation turn a foreign, forged or stale handle into an error instead of
//! an access to someone else's object.

use alloc::vec::Vec;

use kbase::{Error, Result};

const SLOT_BITS: u32 = 28;
const GEN_BITS: u32 = 16;
const CLASS_BITS: u32 = 8;
/// Class slots a handle can name (bands x shards, see `lib.rs`).
pub(crate) const MAX_CLASS_SLOTS: usize = 1 << CLASS_BITS;
const POOL_BITS: u32 = 12;
const GEN_SHIFT: u32 = SLOT_BITS;
const CLASS_SHIFT: u32 = GEN_SHIFT + GEN_BITS;
const POOL_SHIFT: u32 = CLASS_SHIFT + CLASS_BITS;
const _: () = assert!(POOL_SHIFT + POOL_BITS == 64);

/// Slots a class's handle table may hold.
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// Pool ids run `1..=MAX_POOL_ID`, then wrap.
pub(crate) const MAX_POOL_ID: u16 = (1 << POOL_BITS) - 1;
/// Bits of a handle below its pool id ([`Handle::local`]): what tells the
/// objects of one pool apart. A user that records which pool an object is in
/// may keep only these and rebuild the handle with
/// [`ZsPool::handle_from_local`](crate::ZsPool::handle_from_local).
pub const HANDLE_LOCAL_BITS: u32 = POOL_SHIFT;
/// "No entry" in index-linked lists.
pub(crate) const NONE: u32 = u32::MAX;

/// An opaque, copyable reference to one object of a
/// [`ZsPool`](crate::ZsPool). It stays valid while compaction moves the
/// object, until [`ZsPool::free`](crate::ZsPool::free).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Handle(u64);

impl Handle {
    /// The handle as a plain `u64`, for storing it elsewhere. Never 0.
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// The handle without its pool id (the low [`HANDLE_LOCAL_BITS`] bits).
    pub const fn local(self) -> u64 {
        self.0 & ((1 << HANDLE_LOCAL_BITS) - 1)
    }

    /// Rebuilds a handle from [`Handle::to_raw`]. Any value is accepted here;
    /// the pool validates it on use (EINVAL or ENOENT).
    pub const fn from_raw(raw: u64) -> Handle {
        Handle(raw)
    }
}

/// The fields of a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandleParts {
    pub(crate) pool: u16,
    pub(crate) class: usize,
    pub(crate) generation: u16,
    pub(crate) slot: u32,
}

impl HandleParts {
    pub(crate) fn encode(self) -> Handle {
        let raw = ((self.pool as u64 & MAX_POOL_ID as u64) << POOL_SHIFT)
            | ((self.class as u64 & ((1 << CLASS_BITS) - 1)) << CLASS_SHIFT)
            | ((self.generation as u64) << GEN_SHIFT)
            | (self.slot as u64 & (MAX_SLOTS as u64 - 1));
        Handle(raw)
    }

    pub(crate) fn decode(h: Handle) -> HandleParts {
        let raw = h.0;
        HandleParts {
            pool: (raw >> POOL_SHIFT) as u16 & MAX_POOL_ID,
            class: ((raw >> CLASS_SHIFT) & ((1 << CLASS_BITS) - 1)) as usize,
            generation: (raw >> GEN_SHIFT) as u16,
            slot: (raw & (MAX_SLOTS as u64 - 1)) as u32,
        }
    }
}

/// Zspage ids of a class run `0..MAX_ZSPAGES` (18 bits of a handle-table
/// entry).
pub(crate) const MAX_ZSPAGES: usize = (1 << ZSPAGE_BITS) - 1;
const SIZE_BITS: u32 = 12;
const OFF_BITS: u32 = 18;
const ZSPAGE_BITS: u32 = 18;
const OFF_SHIFT: u32 = SIZE_BITS;
const ZSPAGE_SHIFT: u32 = OFF_SHIFT + OFF_BITS;
const ENTRY_GEN_SHIFT: u32 = ZSPAGE_SHIFT + ZSPAGE_BITS;
const _: () = assert!(ENTRY_GEN_SHIFT + GEN_BITS == 64);
const _: () = assert!(1 << SIZE_BITS == kbase::PAGE_SIZE);
/// Byte offsets inside a chain are below this.
pub(crate) const MAX_CHAIN_BYTES: usize = 1 << OFF_BITS;

/// One slot of a class's handle table: where the object is now.
///
/// 8 bytes, one word: generation (16 bits) | zspage id (18) | byte offset in
/// the zspage's chain (18) | size - 1 (12). Together with the zspage's
/// 4-byte reverse-map entry this is all the per-object metadata (12 bytes),
/// see the crate docs. A free entry has zspage id `MAX_ZSPAGES` (never a
/// zspage's) and links the chunk's free list through its offset field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandleEntry(u64);

impl HandleEntry {
    const fn pack(zspage: u32, off: usize, size: usize, generation: u16) -> HandleEntry {
        HandleEntry(
            ((generation as u64) << ENTRY_GEN_SHIFT)
                | (((zspage as u64) & ((1 << ZSPAGE_BITS) - 1)) << ZSPAGE_SHIFT)
                | (((off as u64) & ((1 << OFF_BITS) - 1)) << OFF_SHIFT)
                | ((size as u64).wrapping_sub(1) & ((1 << SIZE_BITS) - 1)),
        )
    }

    const FREE: HandleEntry = HandleEntry::pack(MAX_ZSPAGES as u32, NONE16 as usize, 1, 0);

    fn free_linking(next: u16, generation: u16) -> HandleEntry {
        HandleEntry::pack(MAX_ZSPAGES as u32, next as usize, 1, generation)
    }

    fn is_free(&self) -> bool {
        self.zspage() as usize == MAX_ZSPAGES
    }

    /// The zspage holding the object.
    pub(crate) fn zspage(&self) -> u32 {
        ((self.0 >> ZSPAGE_SHIFT) & ((1 << ZSPAGE_BITS) - 1)) as u32
    }

    /// The object's byte offset inside its zspage's chain.
    pub(crate) fn obj(&self) -> usize {
        ((self.0 >> OFF_SHIFT) & ((1 << OFF_BITS) - 1)) as usize
    }

    /// The object's exact size in bytes (`1..=PAGE_SIZE`).
    pub(crate) fn size(&self) -> usize {
        (self.0 & ((1 << SIZE_BITS) - 1)) as usize + 1
    }

    /// The slot's generation, bumped on every free so stale handles miss.
    pub(crate) fn generation(&self) -> u16 {
        (self.0 >> ENTRY_GEN_SHIFT) as u16
    }

    /// Moves the object to (`zspage`, `off`); compaction, under the lock.
    pub(crate) fn set_loc(&mut self, zspage: u32, off: usize) {
        *self = HandleEntry::pack(zspage, off, self.size(), self.generation());
    }

    /// Moves the object to `off` of its zspage; packing, under the lock.
    pub(crate) fn set_obj(&mut self, off: usize) {
        self.set_loc(self.zspage(), off);
    }

    fn next_free(&self) -> u16 {
        self.obj() as u16
    }
}

/// Entries per handle-table chunk: 2 KiB of entries (its list links and
/// counters live in the directory), so a kernel allocator hands it out
/// without rounding waste, a slot splits with a shift, and the chunks a
/// class fills last strand at most half as much as page-sized ones would.
pub(crate) const CHUNK: usize = if cfg!(loom) { 8 } else { 256 };
const _: () = assert!(CHUNK.is_power_of_two());
/// "No entry" inside a chunk.
const NONE16: u16 = u16::MAX;

/// One chunk of a handle table: entries only.
pub(crate) struct Chunk {
    entries: [HandleEntry; CHUNK],
}
const _: () = assert!(core::mem::size_of::<Chunk>() <= kbase::PAGE_SIZE);

impl Chunk {
    /// A chunk whose entries are all free (generations set on install).
    pub(crate) fn new() -> Chunk {
        Chunk {
            entries: [HandleEntry::FREE; CHUNK],
        }
    }
}

/// A directory slot: the free list and counters of the chunk at the same
/// index of the table's `ptrs`, or (with no chunk there) the generation its
/// entries start from when a chunk is installed there again (so handles of
/// a freed chunk stay stale).
///
/// # Invariants
///
/// Entries of the chunk that are free form a singly linked list from
/// `free_head` through their `obj` field; `live` counts the others.
/// `prev`/`next` link the chunks that have a free entry.
pub(crate) struct DirSlot {
    epoch: u16,
    free_head: u16,
    live: u16,
    prev: u32,
    next: u32,
}

/// What a handle table needs before one more entry fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HandleNeed {
    /// A directory of this capacity.
    Dir(usize),
    /// One more chunk.
    Chunk,
}

/// The two vectors of a handle-table directory, allocated together by the
/// caller with no lock held ([`HandleTable::adopt_dir`]).
pub(crate) struct DirVecs {
    ptrs: Vec<Option<alloc::boxed::Box<Chunk>>>,
    dir: Vec<DirSlot>,
}

impl DirVecs {
    /// Empty vectors of capacity `cap`. `ENOMEM`.
    pub(crate) fn try_with_capacity(cap: usize) -> Result<DirVecs> {
        let mut ptrs = Vec::new();
        ptrs.try_reserve_exact(cap)?;
        let mut dir = Vec::new();
        dir.try_reserve_exact(cap)?;
        Ok(DirVecs { ptrs, dir })
    }

    /// Slots both vectors hold without reallocating.
    fn cap(&self) -> usize {
        self.ptrs.capacity().min(self.dir.capacity())
    }
}

/// A class's handle table: a directory of chunks of [`CHUNK`] entries each,
/// allocated as entries are needed and freed when all their entries are.
/// Slot `s` is entry `s % CHUNK` of chunk `s / CHUNK`. New entries come from
/// the chunks on the `partial` list (those with a free entry), so the holes
/// random frees leave are refilled before a chunk is added; a chunk whose last entry is freed is given back unless it
/// is the only chunk with room, so the table shrinks when objects go and
/// never grows by more than one chunk at a time (no doubling, no copy of the
/// entries under the lock).
///
/// # Invariants
///
/// A chunk is on the `partial` list exactly when it has a free entry.
/// A directory slot with no chunk has `live == 0`. `dir.len() * CHUNK <= MAX_SLOTS`.
/// `ptrs` and `dir` have the same length and capacity: `ptrs[c]` is the
/// chunk `dir[c]` describes.
///
/// The chunk pointers are a vector of their own, apart from the free lists
/// and counters every `insert` and `remove` writes: a lookup (every load)
/// reads only lines that change when a chunk comes or goes, so a CPU's
/// lookups do not miss on the counters another CPU's frees in the same chunk
/// just wrote. `repr(C)`: the vector headers a lookup reads come first, the
/// counters last (see `ClassState`'s layout).
#[repr(C)]
pub(crate) struct HandleTable {
    ptrs: Vec<Option<alloc::boxed::Box<Chunk>>>,
    dir: Vec<DirSlot>,
    partial: u32,
    chunks: usize,
}

fn split(slot: u32) -> (usize, usize) {
    (slot as usize / CHUNK, slot as usize % CHUNK)
}

impl HandleTable {
    pub(crate) const fn new() -> HandleTable {
        HandleTable {
            ptrs: Vec::new(),
            dir: Vec::new(),
            partial: NONE,
            chunks: 0,
        }
    }

    fn has_chunk(&self, c: u32) -> bool {
        self.ptrs.get(c as usize).is_some_and(Option::is_some)
    }

    fn d(&self, c: u32) -> Option<&DirSlot> {
        if !self.has_chunk(c) {
            return None;
        }
        self.dir.get(c as usize)
    }

    fn d_mut(&mut self, c: u32) -> Option<&mut DirSlot> {
        if !self.has_chunk(c) {
            return None;
        }
        self.dir.get_mut(c as usize)
    }

    /// What a new entry needs, if anything (the caller allocates it with no
    /// lock held and offers it to [`adopt_dir`] or [`adopt_chunk`]).
    ///
    /// [`adopt_dir`]: HandleTable::adopt_dir
    /// [`adopt_chunk`]: HandleTable::adopt_chunk
    pub(crate) fn needs(&self) -> Result<Option<HandleNeed>> {
        if self.partial != NONE {
            return Ok(None);
        }
        if self.chunks < self.dir.len() || self.dir.len() < self.dir_cap() {
            return Ok(Some(HandleNeed::Chunk));
        }
        if (self.dir.len() + 1) * CHUNK > MAX_SLOTS {
            return Err(Error::ENOMEM);
        }
        Ok(Some(HandleNeed::Dir((self.dir_cap() * 2).max(4))))
    }

    /// Directory slots both vectors hold without reallocating.
    fn dir_cap(&self) -> usize {
        self.ptrs.capacity().min(self.dir.capacity())
    }

    /// Takes over `bigger` (empty, allocated by the caller) if it is larger
    /// than the directory; returns the vectors to drop. Never allocates.
    pub(crate) fn adopt_dir(&mut self, mut bigger: DirVecs) -> DirVecs {
        if bigger.cap() <= self.dir_cap() {
            return bigger;
        }
        // Fits: both of bigger's capacities > dir.len() == ptrs.len(), so
        // no reallocation.
        bigger.dir.append(&mut self.dir);
        bigger.ptrs.append(&mut self.ptrs);
        DirVecs {
            ptrs: core::mem::replace(&mut self.ptrs, bigger.ptrs),
            dir: core::mem::replace(&mut self.dir, bigger.dir),
        }
    }

    /// Installs `c` (from [`Chunk::new`], allocated by the caller) in a free
    /// directory slot, if the table needs a chunk; gives it back otherwise.
    /// Never allocates.
    pub(crate) fn adopt_chunk(
        &mut self,
        mut c: alloc::boxed::Box<Chunk>,
    ) -> Option<alloc::boxed::Box<Chunk>> {
        if self.partial != NONE {
            return Some(c);
        }
        let idx = match self.ptrs.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.dir.len() < self.dir_cap() => {
                // Within capacity: no allocation.
                self.ptrs.push(None);
                self.dir.push(DirSlot {
                    epoch: 0,
                    free_head: NONE16,
                    live: 0,
                    prev: NONE,
                    next: NONE,
                });
                self.dir.len() - 1
            }
            None => return Some(c),
        };
        let (Some(d), Some(ptr)) = (self.dir.get_mut(idx), self.ptrs.get_mut(idx)) else {
            return Some(c);
        };
        for (i, e) in c.entries.iter_mut().enumerate() {
            let next = if i + 1 < CHUNK { i as u16 + 1 } else { NONE16 };
            *e = HandleEntry::free_linking(next, d.epoch);
        }
        d.free_head = 0;
        d.live = 0;
        d.prev = NONE;
        d.next = NONE;
        *ptr = Some(c);
        self.chunks += 1;
        self.push_partial(idx as u32);
        None
    }

    fn push_partial(&mut self, c: u32) {
        let head = self.partial;
        if let Some(h) = self.d_mut(head) {
            h.prev = c;
        }
        if let Some(ch) = self.d_mut(c) {
            ch.prev = NONE;
            ch.next = head;
        }
        self.partial = c;
    }

    fn unlink_partial(&mut self, c: u32) {
        let Some(ch) = self.d(c) else { return };
        let (prev, next) = (ch.prev, ch.next);
        match self.d_mut(prev) {
            Some(p) => p.next = next,
            None => {
                if self.partial == c {
                    self.partial = next;
                }
            }
        }
        if let Some(n) = self.d_mut(next) {
            n.prev = prev;
        }
        if let Some(ch) = self.d_mut(c) {
            ch.prev = NONE;
            ch.next = NONE;
        }
    }

    /// Takes a free entry for an object at (`zspage`, `obj`) of `size` bytes
    /// (`1..=PAGE_SIZE`, `zspage < MAX_ZSPAGES`). Fails with ENOMEM only if
    /// [`needs`](Self::needs) was not satisfied first.
    pub(crate) fn insert(&mut self, zspage: u32, obj: usize, size: usize) -> Result<(u32, u16)> {
        if zspage as usize >= MAX_ZSPAGES
            || size == 0
            || size > kbase::PAGE_SIZE
            || obj >= MAX_CHAIN_BYTES
        {
            return Err(Error::EIO);
        }
        let c = self.partial;
        let ch = self
            .ptrs
            .get_mut(c as usize)
            .and_then(|p| p.as_deref_mut())
            .ok_or(Error::ENOMEM)?;
        let d = self.dir.get_mut(c as usize).ok_or(Error::ENOMEM)?;
        let i = d.free_head;
        let e = ch.entries.get_mut(i as usize).ok_or(Error::EIO)?;
        let next = e.next_free();
        let generation = e.generation();
        *e = HandleEntry::pack(zspage, obj, size, generation);
        d.free_head = next;
        d.live += 1;
        let full = next == NONE16;
        if full {
            self.unlink_partial(c);
        }
        Ok((c * CHUNK as u32 + i as u32, generation))
    }

    /// The live entry `slot`, if `generation` matches. ENOENT for a freed or
    /// reused slot (double free, use after free), EINVAL for a slot that was
    /// never handed out.
    #[inline]
    pub(crate) fn get(&self, slot: u32, generation: u16) -> Result<&HandleEntry> {
        let (c, i) = split(slot);
        let Some(ch) = self.ptrs.get(c).ok_or(Error::EINVAL)?.as_deref() else {
            return Err(Error::ENOENT);
        };
        let e = ch.entries.get(i).ok_or(Error::EINVAL)?;
        if e.is_free() || e.generation() != generation {
            return Err(Error::ENOENT);
        }
        Ok(e)
    }

    /// The live entry `slot`, by slot only (compaction and pins, which
    /// find slots through the zspage reverse map or a pin).
    pub(crate) fn get_live(&self, slot: u32) -> Option<&HandleEntry> {
        let (c, i) = split(slot);
        self.ptrs
            .get(c)?
            .as_deref()?
            .entries
            .get(i)
            .filter(|e| !e.is_free())
    }

    /// Mutable access to a live entry, by slot only.
    pub(crate) fn get_live_mut(&mut self, slot: u32) -> Option<&mut HandleEntry> {
        let (c, i) = split(slot);
        self.ptrs
            .get_mut(c)?
            .as_deref_mut()?
            .entries
            .get_mut(i)
            .filter(|e| !e.is_free())
    }

    /// Frees a live slot (already validated with [`get`](HandleTable::get)).
    /// A chunk left with no live entry is given back (dropped here, which
    /// never blocks) unless it is the table's only chunk with room.
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32) {
        let (c, i) = split(slot);
        let (Some(Some(ch)), Some(d)) = (self.ptrs.get_mut(c), self.dir.get_mut(c)) else {
            return;
        };
        let head = d.free_head;
        let Some(e) = ch.entries.get_mut(i).filter(|e| !e.is_free()) else {
            return;
        };
        *e = HandleEntry::free_linking(head, e.generation().wrapping_add(1));
        d.free_head = i as u16;
        d.live -= 1;
        let (was_full, empty) = (head == NONE16, d.live == 0);
        if was_full {
            self.push_partial(c as u32);
        }
        let alone = self.partial == c as u32 && self.d(c as u32).is_some_and(|d| d.next == NONE);
        if empty && !alone {
            self.unlink_partial(c as u32);
            if let (Some(d), Some(ptr)) = (self.dir.get_mut(c), self.ptrs.get_mut(c)) {
                // The next chunk here starts above every generation handed
                // out from this one.
                if let Some(old) = ptr.take() {
                    let top = old
                        .entries
                        .iter()
                        .map(HandleEntry::generation)
                        .max()
                        .unwrap_or(0);
                    d.epoch = top.wrapping_add(1);
                    self.chunks -= 1;
                    drop(old);
                }
            }
        }
    }

    /// Live entries, summed over the chunks (stats only: no table-wide
    /// count is kept, so a free writes only its chunk's counters).
    pub(crate) fn live(&self) -> usize {
        self.dir.iter().map(|d| usize::from(d.live)).sum()
    }

    /// Heap bytes held by the table (directory and chunks).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.dir.capacity() * core::mem::size_of::<DirSlot>()
            + self.ptrs.capacity() * core::mem::size_of::<Option<alloc::boxed::Box<Chunk>>>()
            + self.chunks * core::mem::size_of::<Chunk>()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn handle_round_trips_and_is_never_zero() {
        let p = HandleParts {
            pool: MAX_POOL_ID,
            class: 255,
            generation: 0xbeef,
            slot: (MAX_SLOTS - 1) as u32,
        };
        assert_eq!(HandleParts::decode(p.encode()), p);
        let p = HandleParts {
            pool: 1,
            class: 0,
            generation: 0,
            slot: 0,
        };
        assert_ne!(p.encode().to_raw(), 0);
        assert_eq!(Handle::from_raw(p.encode().to_raw()), p.encode());
    }

    #[test]
    fn entry_fields_round_trip() {
        let top = MAX_CHAIN_BYTES - 1;
        let mut e = HandleEntry::pack(MAX_ZSPAGES as u32 - 1, top, kbase::PAGE_SIZE, 0xfffe);
        assert_eq!(
            (e.zspage(), e.obj(), e.size(), e.generation()),
            (MAX_ZSPAGES as u32 - 1, top, kbase::PAGE_SIZE, 0xfffe)
        );
        assert!(!e.is_free());
        e.set_loc(7, 9);
        assert_eq!(
            (e.zspage(), e.obj(), e.size(), e.generation()),
            (7, 9, kbase::PAGE_SIZE, 0xfffe)
        );
        let e = HandleEntry::pack(0, 0, 1, 0);
        assert_eq!((e.zspage(), e.obj(), e.size()), (0, 0, 1));
        assert!(HandleEntry::FREE.is_free());
    }

    #[test]
    fn entry_is_eight_bytes_and_a_chunk_half_a_page() {
        assert_eq!(core::mem::size_of::<HandleEntry>(), 8);
        assert_eq!(core::mem::size_of::<Chunk>(), kbase::PAGE_SIZE / 2);
    }

    fn table_with_room(t: &mut HandleTable) {
        loop {
            match t.needs().unwrap() {
                None => return,
                Some(HandleNeed::Dir(cap)) => {
                    drop(t.adopt_dir(DirVecs::try_with_capacity(cap).unwrap()))
                }
                Some(HandleNeed::Chunk) => {
                    assert!(
                        t.adopt_chunk(alloc::boxed::Box::new(Chunk::new()))
                            .is_none()
                    )
                }
            }
        }
    }

    #[test]
    fn stale_generation_is_refused() {
        let mut t = HandleTable::new();
        table_with_room(&mut t);
        let (slot, g) = t.insert(3, 4, 100).unwrap();
        assert_eq!(t.get(slot, g).unwrap().size(), 100);
        assert_eq!(t.get(slot, g).unwrap().zspage(), 3);
        assert_eq!(t.get(slot, g).unwrap().obj(), 4);
        t.remove(slot);
        assert_eq!(t.get(slot, g).unwrap_err(), Error::ENOENT);
        table_with_room(&mut t);
        let (slot2, g2) = t.insert(5, 6, 7).unwrap();
        assert_eq!(slot2, slot);
        assert_ne!(g2, g);
        assert_eq!(t.get(slot, g).unwrap_err(), Error::ENOENT);
        assert_eq!(t.get(99_999, 0).unwrap_err(), Error::EINVAL);
        assert_eq!(t.live(), 1);
    }

    #[test]
    fn chunks_come_and_go_with_their_entries() {
        let mut t = HandleTable::new();
        let n = 3 * CHUNK + 5;
        let mut slots = Vec::new();
        for i in 0..n {
            table_with_room(&mut t);
            slots.push(t.insert(i as u32, 0, 1).unwrap());
        }
        assert_eq!(t.chunks, 4);
        let full = t.heap_bytes();
        // Free the first two chunks' entries: both chunks go.
        for &(s, _) in &slots[..2 * CHUNK] {
            t.remove(s);
        }
        assert_eq!(t.chunks, 2);
        assert!(t.heap_bytes() < full);
        // Their handles stay stale when the slots are reused.
        for &(s, g) in &slots[..2 * CHUNK] {
            assert_eq!(t.get(s, g).unwrap_err(), Error::ENOENT);
        }
        for i in 0..2 * CHUNK {
            table_with_room(&mut t);
            let (s, g) = t.insert(i as u32, 0, 1).unwrap();
            if let Some(&(_, old)) = slots.iter().find(|(o, _)| *o == s) {
                assert_ne!(g, old, "slot {s} reissued with a stale generation");
            }
        }
        assert_eq!(t.live(), n);
        for &(s, g) in &slots[2 * CHUNK..] {
            assert_eq!(t.get(s, g).unwrap().size(), 1);
        }
    }
}
