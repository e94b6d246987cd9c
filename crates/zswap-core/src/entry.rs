//! `struct zswap_entry` and its ownership handles.
//!
//! An entry describes one stored page. Store takes a slot from the entry
//! cache ([`EntryCache`], Linux's `zswap_entry_cache`), writes the entry into
//! it and publishes the pointer in a tree; the slot goes back to the cache
//! exactly once, by [`OwnedEntry::free_memory`], after the entry has been
//! erased from the tree and removed from the LRU.
//!
//! # Ownership rule
//!
//! The tree owns every entry it holds. Whoever erases an entry from the tree
//! (under the tree lock) becomes its only owner and receives an
//! [`OwnedEntry`]; it must either put it back into the tree or free it. The
//! LRU holds non-owning [`UnsafeRef`]s: an entry is unlinked from the LRU
//! (under the LRU list lock) before its memory is freed, so an LRU walker that
//! holds the list lock may read any entry it finds on its list. A writeback
//! that dropped the list lock keeps only the entry's slot and pool *handle*,
//! as an identity to compare against the tree's entry under the tree lock.
//!
//! [`EntryCache`]: crate::cache::EntryCache

use core::ptr::NonNull;

use intrusive_collections::{LinkedListLink, UnsafeRef, intrusive_adapter};
use kbase::sync::{AtomicBool, Ordering, UnsafeCell};
use memcg::ObjCgroupRef;
use swapcache::SwpEntry;

use crate::cache::{EntryCache, EntrySlot};

/// Largest memcg id an entry can record for its LRU list (24 bits; Linux's
/// `MEM_CGROUP_ID_MAX` is 65535).
pub(crate) const LRU_MEMCG_MAX: u32 = (1 << 24) - 1;

/// One stored page (Linux: `struct zswap_entry`).
///
/// 48 bytes on 64-bit targets (asserted by a unit test).
///
/// # Invariants
///
/// - `swpentry`, `length`, `pool_idx`, `handle`, `objcg` and `lru_key` are
///   written before the entry is published in a tree and never change while
///   it is reachable by another thread. The pool object's fields (`handle`,
///   `length`, `pool_idx`) sit in the sync shim's [`UnsafeCell`]s, written
///   only through [`ZswapEntry::set_object`] (`&mut self`: the only owner,
///   before publication) and read through the accessors by threads that
///   reached the entry through the tree lock, the LRU list lock or
///   ownership; under loom every such access is checked against that
///   ordering. Outside loom a cell is a plain `core::cell::UnsafeCell`.
/// - `handle` is an object of pool `pool_idx`: the page stored raw when
///   `length == PAGE_SIZE`, else `length` (> 0) compressed bytes.
/// - `lru` is linked only into the LRU list that `lru_key` resolves to, and is
///   only touched with that list's lock held (or by the only owner while it is
///   unlinked).
/// - `referenced` is set before the entry is added to the LRU and cleared by
///   the LRU walker under the list lock.
pub(crate) struct ZswapEntry {
    /// The swap slot this entry holds the page of.
    pub(crate) swpentry: SwpEntry,
    /// Pool handle (raw); [`ZswapEntry::handle`].
    handle: UnsafeCell<u64>,
    /// The cgroup charged for the compressed bytes (one reference).
    pub(crate) objcg: Option<ObjCgroupRef>,
    /// Link in the (memcg, node) LRU list.
    pub(crate) lru: LinkedListLink,
    /// Compressed length; `PAGE_SIZE` stored raw; [`ZswapEntry::length`].
    length: UnsafeCell<u16>,
    /// Id of the pool holding the object; [`ZswapEntry::pool_idx`].
    pool_idx: UnsafeCell<u8>,
    /// Second-chance bit for the LRU walk.
    pub(crate) referenced: AtomicBool,
    /// The LRU list the entry was added to: memcg id << 8 | node.
    pub(crate) lru_key: u32,
}

// SAFETY: the non-thread-safe parts are the `lru` link (Cells), which by
// the type invariant is only accessed under the lock of the list it is on, or
// by the single owner while unlinked, and the object cells, written only
// through `&mut self` before publication; every other field is immutable
// while shared, or atomic.
unsafe impl Send for ZswapEntry {}
// SAFETY: as above.
unsafe impl Sync for ZswapEntry {}

intrusive_adapter!(pub(crate) EntryAdapter = UnsafeRef<ZswapEntry>: ZswapEntry { lru => LinkedListLink });

impl ZswapEntry {
    /// A new, unpublished entry.
    pub(crate) fn new(swpentry: SwpEntry) -> ZswapEntry {
        ZswapEntry {
            swpentry,
            handle: UnsafeCell::new(0),
            objcg: None,
            lru: LinkedListLink::new(),
            length: UnsafeCell::new(0),
            pool_idx: UnsafeCell::new(0),
            referenced: AtomicBool::new(false),
            lru_key: 0,
        }
    }

    /// Records the pool object holding the page: `handle` in pool
    /// `pool_idx`, `length` bytes (`PAGE_SIZE`: stored raw).
    pub(crate) fn set_object(&mut self, handle: u64, length: u16, pool_idx: u8) {
        // SAFETY: `&mut self` makes us the only owner of an entry no other
        // thread can reach (not yet published, or a test's own), so nothing
        // reads the cells concurrently.
        self.handle.with_mut(|p| unsafe { *p = handle });
        // SAFETY: as above.
        self.length.with_mut(|p| unsafe { *p = length });
        // SAFETY: as above.
        self.pool_idx.with_mut(|p| unsafe { *p = pool_idx });
    }

    /// Pool handle (raw) of the object.
    pub(crate) fn handle(&self) -> u64 {
        // SAFETY: written only by `set_object` through `&mut self`, before
        // the entry was published; a thread holding `&self` reached it
        // through the tree lock, the LRU list lock or ownership, each of
        // which orders it after that write (type invariant).
        self.handle.with(|p| unsafe { *p })
    }

    /// Compressed length; `PAGE_SIZE` stored raw.
    pub(crate) fn length(&self) -> u16 {
        // SAFETY: as for `handle`.
        self.length.with(|p| unsafe { *p })
    }

    /// Id of the pool holding the object.
    pub(crate) fn pool_idx(&self) -> u8 {
        // SAFETY: as for `handle`.
        self.pool_idx.with(|p| unsafe { *p })
    }

    /// Builds the LRU key from a memcg id and a NUMA node.
    pub(crate) fn make_lru_key(memcg_id: u32, nid: usize) -> u32 {
        (memcg_id.min(LRU_MEMCG_MAX) << 8) | (nid.min(255) as u32)
    }

    /// The memcg id part of the LRU key.
    pub(crate) fn lru_memcg(&self) -> u32 {
        self.lru_key >> 8
    }

    /// The node part of the LRU key.
    pub(crate) fn lru_nid(&self) -> usize {
        (self.lru_key & 0xff) as usize
    }

    /// Sets the second-chance bit.
    pub(crate) fn set_referenced(&self, on: bool) {
        self.referenced.store(on, Ordering::Relaxed);
    }
}

/// A published entry's address, as stored in the tree.
///
/// # Invariants
///
/// Points to a live `ZswapEntry` in a slot of the zswap's entry cache while
/// it is in a tree; copies outside a tree are identities only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct EntryPtr(pub(crate) NonNull<ZswapEntry>);

// SAFETY: an address; dereferencing it is governed by the ownership rule of
// the module docs, not by which thread holds the copy.
unsafe impl Send for EntryPtr {}
// SAFETY: as above.
unsafe impl Sync for EntryPtr {}

impl EntryPtr {
    /// Writes `e` into a slot of the entry cache: the returned pointer owns
    /// the entry (until it is published, the caller's).
    pub(crate) fn new_in(slot: EntrySlot, e: ZswapEntry) -> EntryPtr {
        // INVARIANT: a cache slot, now holding a live entry.
        EntryPtr(slot.write(e))
    }

    /// The address (unit tests compare entries by it).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn addr(self) -> usize {
        self.0.as_ptr() as usize
    }
}

/// The only owner of an entry that was erased from its tree.
///
/// Gives shared access only: until the entry is unlinked from the LRU, an LRU
/// walker holding the list lock may read it concurrently.
///
/// # Invariants
///
/// `ptr` came from [`EntryPtr::new_in`], is in no tree, and no other
/// `OwnedEntry` for it exists.
pub(crate) struct OwnedEntry {
    ptr: NonNull<ZswapEntry>,
}

// SAFETY: see ZswapEntry: an owner may be moved to and used from any thread.
unsafe impl Send for OwnedEntry {}

impl OwnedEntry {
    /// Takes ownership of a pointer just erased from a tree.
    ///
    /// # Safety
    ///
    /// `p` must have been in a tree (from [`EntryPtr::new_in`]) and been
    /// removed from it by the caller under the tree lock, so that the caller
    /// is its only owner; or be a never-published pointer of the caller's.
    pub(crate) unsafe fn from_erased(p: EntryPtr) -> OwnedEntry {
        // INVARIANT: the caller's contract.
        OwnedEntry { ptr: p.0 }
    }

    /// The pointer, to put the entry back into a tree.
    pub(crate) fn into_ptr(self) -> EntryPtr {
        let p = EntryPtr(self.ptr);
        core::mem::forget(self);
        p
    }

    /// The entry's address (identity).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Gives the entry's slot back to `cache` (`zswap_entry_cache_free`),
    /// returning its cgroup reference so the caller drops it last (free
    /// order: LRU, pool, uncharge, objcg put).
    ///
    /// # Safety
    ///
    /// The entry must no longer be linked on any LRU list, and `cache` must
    /// be the cache its slot came from.
    pub(crate) unsafe fn free_memory(self, cache: &EntryCache) -> Option<ObjCgroupRef> {
        let ptr = self.ptr;
        core::mem::forget(self);
        // SAFETY: by the type invariant we are the only owner of a live
        // entry; the caller guarantees no LRU list links to it, so no other
        // thread can reach it any more. Moving the entry out leaves the slot
        // uninitialised, and it is given back at once.
        let e = unsafe { ptr.as_ptr().read() };
        // SAFETY: the slot came from `cache` (caller's contract) and is
        // given back once; nothing uses it afterwards.
        unsafe { cache.free(ptr) };
        let ZswapEntry { objcg, .. } = e;
        objcg
    }
}

impl core::ops::Deref for OwnedEntry {
    type Target = ZswapEntry;
    fn deref(&self) -> &ZswapEntry {
        // SAFETY: by the type invariant the entry is live and owned by us;
        // other threads may only read it (LRU walkers), so a shared borrow is
        // sound.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for OwnedEntry {
    fn drop(&mut self) {
        // Every path frees or re-inserts its entry explicitly; reaching this
        // means a leak, which is safe (the memory stays allocated), never a
        // use-after-free.
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn entry_is_48_bytes() {
        assert_eq!(core::mem::size_of::<ZswapEntry>(), 48);
    }

    #[test]
    fn lru_key_round_trips() {
        let k = ZswapEntry::make_lru_key(77, 3);
        let mut e = ZswapEntry::new(SwpEntry::new(0, 1).unwrap());
        e.lru_key = k;
        assert_eq!(e.lru_memcg(), 77);
        assert_eq!(e.lru_nid(), 3);
    }
}
