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
//! straight to one class lock; no pool-wide table or lock is touched. The
//! slot indexes that class's [`HandleTable`], whose entry holds the object's
//! current location and exact size; compaction rewrites the entry, never the
//! handle. The pool id (never 0, so no valid handle is 0) and the slot's
//! generation turn a foreign, forged or stale handle into an error instead of
//! an access to someone else's object.

use std::vec::Vec;

use kbase::{Error, Result};

const SLOT_BITS: u32 = 28;
const GEN_BITS: u32 = 16;
const CLASS_BITS: u32 = 8;
const POOL_BITS: u32 = 12;
const GEN_SHIFT: u32 = SLOT_BITS;
const CLASS_SHIFT: u32 = GEN_SHIFT + GEN_BITS;
const POOL_SHIFT: u32 = CLASS_SHIFT + CLASS_BITS;
const _: () = assert!(POOL_SHIFT + POOL_BITS == 64);

/// Slots a class's handle table may hold.
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// Pool ids run `1..=MAX_POOL_ID`, then wrap.
pub(crate) const MAX_POOL_ID: u16 = (1 << POOL_BITS) - 1;
/// "No entry" in index-linked lists.
pub(crate) const NONE: u32 = u32::MAX;

/// An opaque, copyable reference to one object of a
/// `ZsPool`. It stays valid while compaction moves the
/// object, until `ZsPool::free`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Handle(u64);

impl Handle {
    /// The handle as a plain `u64`, for storing it elsewhere. Never 0.
    pub const fn to_raw(self) -> u64 {
        self.0
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

/// One slot of a class's handle table: where the object is now.
///
/// 12 bytes; together with the zspage's 4-byte reverse-map entry this is all
/// the per-object metadata (16 bytes), see the crate docs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandleEntry {
    /// Zspage id while allocated; the next free slot while free.
    pub(crate) zspage: u32,
    /// Object index inside the zspage.
    pub(crate) obj: u16,
    /// Exact object size in bytes; 0 while the slot is free.
    pub(crate) size: u16,
    /// Bumped on every free, so stale handles miss.
    pub(crate) generation: u16,
}

/// A class's handle table: a vector of [`HandleEntry`] with a free list
/// threaded through the free entries.
///
/// # Invariants
///
/// Entries with `size == 0` are free and form a singly linked list from
/// `free_head` through `zspage`; `live` counts entries with `size != 0`.
/// `entries.len() <= MAX_SLOTS`.
pub(crate) struct HandleTable {
    pub(crate) entries: Vec<HandleEntry>,
    free_head: u32,
    live: usize,
}

impl HandleTable {
    pub(crate) const fn new() -> HandleTable {
        HandleTable {
            entries: Vec::new(),
            free_head: NONE,
            live: 0,
        }
    }

    /// If a new slot needs a bigger vector, the capacity to allocate (the
    /// caller allocates it with no lock held and offers it to [`adopt`]).
    ///
    /// [`adopt`]: HandleTable::adopt
    pub(crate) fn needs_capacity(&self) -> Result<Option<usize>> {
        if self.free_head != NONE || self.entries.len() < self.entries.capacity() {
            return Ok(None);
        }
        if self.entries.len() >= MAX_SLOTS {
            return Err(Error::ENOMEM);
        }
        Ok(Some((self.entries.capacity() * 2).clamp(16, MAX_SLOTS)))
    }

    /// Takes over `bigger` (empty, allocated by the caller) if it is larger
    /// than the current vector; returns the vector to drop otherwise or the
    /// old one. Never allocates.
    pub(crate) fn adopt(&mut self, mut bigger: Vec<HandleEntry>) -> Vec<HandleEntry> {
        if bigger.capacity() <= self.entries.capacity() {
            return bigger;
        }
        // Fits: bigger.capacity() > entries.len(), so no reallocation.
        bigger.extend_from_slice(&self.entries);
        core::mem::replace(&mut self.entries, bigger)
    }

    /// Takes a free slot for an object at (`zspage`, `obj`) of `size` bytes.
    /// Fails with ENOMEM only if [`needs_capacity`] was not satisfied first.
    ///
    /// [`needs_capacity`]: HandleTable::needs_capacity
    pub(crate) fn insert(&mut self, zspage: u32, obj: u16, size: u16) -> Result<(u32, u16)> {
        if self.free_head != NONE {
            let slot = self.free_head;
            let e = self.entries.get_mut(slot as usize).ok_or(Error::EIO)?;
            self.free_head = e.zspage;
            e.zspage = zspage;
            e.obj = obj;
            e.size = size;
            self.live += 1;
            return Ok((slot, e.generation));
        }
        if self.entries.len() >= self.entries.capacity() || self.entries.len() >= MAX_SLOTS {
            return Err(Error::ENOMEM);
        }
        let slot = self.entries.len() as u32;
        // Within capacity: no allocation.
        self.entries.push(HandleEntry {
            zspage,
            obj,
            size,
            generation: 0,
        });
        self.live += 1;
        Ok((slot, 0))
    }

    /// The live entry `slot`, if `generation` matches. ENOENT for a freed or
    /// reused slot (double free, use after free), EINVAL for a slot that was
    /// never handed out.
    pub(crate) fn get(&self, slot: u32, generation: u16) -> Result<&HandleEntry> {
        let e = self.entries.get(slot as usize).ok_or(Error::EINVAL)?;
        if e.size == 0 || e.generation != generation {
            return Err(Error::ENOENT);
        }
        Ok(e)
    }

    /// Mutable access to a live entry, by slot only (used by compaction,
    /// which finds slots through the zspage reverse map).
    pub(crate) fn get_live_mut(&mut self, slot: u32) -> Option<&mut HandleEntry> {
        self.entries.get_mut(slot as usize).filter(|e| e.size != 0)
    }

    /// Frees a live slot (already validated with [`get`](HandleTable::get)).
    pub(crate) fn remove(&mut self, slot: u32) {
        if let Some(e) = self.entries.get_mut(slot as usize).filter(|e| e.size != 0) {
            e.size = 0;
            e.generation = e.generation.wrapping_add(1);
            e.zspage = self.free_head;
            self.free_head = slot;
            self.live -= 1;
        }
    }

    /// Live entries.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Heap bytes held by the table.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.entries.capacity() * core::mem::size_of::<HandleEntry>()
    }
}
