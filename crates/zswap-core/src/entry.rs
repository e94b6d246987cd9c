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
//! LRU holds non-owning entry ids: an entry is unlinked from the LRU (under
//! the LRU list lock) before its memory is freed, so an LRU walker that holds
//! the list lock may read any entry it finds on its list. A writeback
//! that dropped the list lock keeps only the entry's slot and pool *handle*,
//! as an identity to compare against the tree's entry under the tree lock.
//!
//! [`EntryCache`]: crate::cache::EntryCache

use core::ptr::NonNull;

use kbase::sync::{AtomicU32, Ordering, UnsafeCell};
use kbase::{Error, PAGE_SIZE, Result};
use swapcache::SwpEntry;

use crate::cache::{EntryCache, EntryId, EntrySlot};

/// Largest swap offset an entry can record (32 bits: 16 TiB of 4 KiB pages
/// per swap device). `Zswap::swapon` refuses a larger device with `EINVAL`.
pub(crate) const MAX_ENTRY_OFFSET: u64 = u32::MAX as u64;
/// Largest memcg id an entry can record for its LRU list (16 bits, Linux's
/// `MEM_CGROUP_ID_MAX`).
pub(crate) const LRU_MEMCG_MAX: u32 = u16::MAX as u32;

/// Bits of `obj` holding the pool handle (its bits below the pool id).
const HANDLE_BITS: u32 = zpool::HANDLE_LOCAL_BITS;
const HANDLE_MASK: u64 = (1 << HANDLE_BITS) - 1;
/// `obj` above the handle: `length - 1` (1..=`PAGE_SIZE` in 12 bits).
const LEN_BITS: u32 = 64 - HANDLE_BITS;
const _: () = assert!(PAGE_SIZE <= 1 << LEN_BITS, "the length does not fit");

/// `meta` bits 0..16: the memcg id of the LRU list.
const META_MEMCG_MASK: u32 = LRU_MEMCG_MAX;
/// `meta` bits 16..23: the pool id (`MAX_POOLS` is 127).
const META_POOL_SHIFT: u32 = 16;
const META_POOL_MASK: u32 = 0x7f;
/// `meta` bit 23: the compressed bytes are charged to a cgroup: the one the
/// LRU record of the entry's memcg id holds, as it effectively is then
/// (see [`ZswapEntry`]).
const META_CHARGED: u32 = 1 << 23;
/// `meta` bits 24..29: the swap type (`MAX_SWAPFILES` is 32).
const META_TYPE_SHIFT: u32 = 24;
const META_TYPE_MASK: u32 = 0x1f;
/// `meta` bits 29..31: the entry's per-CPU sub-list of its (memcg, node)
/// LRU list (`lru`'s sub-lists: at most [`LRU_SUBLISTS_MAX`]).
const META_SUBLIST_SHIFT: u32 = 29;
const META_SUBLIST_MASK: u32 = 0x3;
/// Most per-CPU sub-lists a (memcg, node) LRU list can have: what the two
/// bits of `meta` an entry records its sub-list in can name.
pub(crate) const LRU_SUBLISTS_MAX: usize = META_SUBLIST_MASK as usize + 1;
/// `meta` bit 31: the second-chance bit of the LRU walk.
const META_REFERENCED: u32 = 1 << 31;
const _: () = assert!(swapcache::MAX_SWAPFILES <= META_TYPE_MASK + 1);
const _: () = assert!(crate::pool::MAX_POOLS <= META_POOL_MASK as usize);

/// One stored page (Linux: `struct zswap_entry`).
///
/// 24 bytes on 64-bit targets (asserted by a unit test), packed as:
///
/// | field | bits | limit, enforced where |
/// |---|---|---|
/// | `obj`: pool handle without its pool id | 52 (`zpool::HANDLE_LOCAL_BITS`) | the pool is `meta`'s pool id; [`ZswapEntry::set_object`] |
/// | `obj`: compressed length - 1 | 12 | 1..=`PAGE_SIZE`; `set_object` (`EINVAL`) |
/// | `lru`: previous and next entry on the LRU list | 2 x 32 | entry ids ([`EntryId`]: the entry cache's limit) |
/// | `offset`: swap offset | 32 | [`MAX_ENTRY_OFFSET`]; `swapon` and [`ZswapEntry::new`] (`EINVAL`) |
/// | `meta`: memcg id of the LRU list | 16 | [`LRU_MEMCG_MAX`] (Linux's `MEM_CGROUP_ID_MAX`); `new` (`EINVAL`) |
/// | `meta`: pool id | 7 | `MAX_POOLS` (127) |
/// | `meta`: charged | 1 | |
/// | `meta`: swap type | 5 | `MAX_SWAPFILES` (32), by `SwpEntry` |
/// | `meta`: LRU sub-list | 2 | [`LRU_SUBLISTS_MAX`] (4); the LRU's sub-list count |
/// | `meta`: referenced | 1 | |
///
/// Linux's `entry->objcg` is not stored either, only whether the entry is
/// charged: an objcg here carries nothing but the cgroup it charges, which
/// is always the nearest online ancestor of the cgroup it was made for, and
/// the entry's memcg id names that same cgroup or one of its offline
/// descendants (the id store read from the objcg, or the ancestor the LRU
/// pin fell back to when that cgroup had gone offline). The LRU record of
/// the id holds a reference to its cgroup for as long as an entry is keyed
/// by it (`lru`'s module docs), so the free path uncharges through that
/// cgroup's nearest online ancestor, exactly what the objcg would have
/// charged then ([`Lru::del_with`](crate::lru::Lru::del_with) runs the
/// uncharge under the LRU map lock, with no reference taken). 8 bytes an
/// entry less: a slab holds 169 entries instead of 126.
///
/// The NUMA node of the LRU list is not stored: as Linux's
/// `entry_to_nid()` (the node of the entry's own memory), it is the node of
/// the entry cache slab the entry lives in ([`EntryCache::nid_of`]); store
/// allocates the entry from a slab of its page's node. The per-CPU
/// sub-list of that (memcg, node) list is stored: the one of the CPU that
/// stored the entry ([`ZswapEntry::set_lru_sublist`]), so a load or an
/// invalidate on any CPU deletes it from the sub-list it was added to.
///
/// # Invariants
///
/// - `offset`, the swap type, the memcg id, the LRU sub-list, the charged bit and the pool object
///   (`obj`, the pool id) are written before the entry is published in a
///   tree and never change while it is reachable by another thread. `obj`
///   sits in the sync shim's [`UnsafeCell`], written only through
///   [`ZswapEntry::set_object`] (`&mut self`: the only owner, before
///   publication) and read through the accessors by threads that reached the
///   entry through the tree lock, the LRU list lock or ownership; under loom
///   every such access is checked against that ordering. Outside loom a
///   cell is a plain `core::cell::UnsafeCell`. The fixed bits of `meta` are
///   written the same way (relaxed stores with `&mut self`) and read with
///   relaxed loads.
/// - `obj` holds an object of pool `pool_idx()`: the page stored raw when
///   `length() == PAGE_SIZE`, else `length()` (> 0) compressed bytes.
/// - `lru` is linked only into the LRU sub-list of (the memcg id and the
///   sub-list of `lru_key()`, the slab's node), following redirects, and is only touched
///   with that sub-list's lock held (or by the only owner while it is
///   unlinked).
/// - The referenced bit is set before the entry is added to the LRU and
///   cleared by the LRU walker under the list lock.
pub(crate) struct ZswapEntry {
    /// Pool handle's local bits | (length - 1) << 52; see the table.
    obj: UnsafeCell<u64>,
    /// Link in the (memcg, node) LRU list: [`LruLink`].
    lru: UnsafeCell<LruLink>,
    /// The swap slot's offset ([`ZswapEntry::swpentry`]).
    offset: u32,
    /// memcg id | pool id << 16 | charged << 23 | swap type << 24 |
    /// LRU sub-list << 29 | referenced << 31.
    meta: AtomicU32,
}

// SAFETY: the non-thread-safe parts are the `lru` link cell, which by the
// type invariant is only accessed under the lock of the list it is on, or by
// the single owner while unlinked, and the object cell, written only through
// `&mut self` before publication; every other field is immutable while
// shared, or atomic.
unsafe impl Send for ZswapEntry {}
// SAFETY: as above.
unsafe impl Sync for ZswapEntry {}

/// An entry's place on its LRU list: the ids of its neighbours
/// ([`EntryId::get`]; 0: none, it is the head or tail), or [`LruLink::UNLINKED`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct LruLink {
    /// The entry before it (towards the head, the oldest).
    pub(crate) prev: u32,
    /// The entry after it (towards the tail).
    pub(crate) next: u32,
}

impl LruLink {
    /// On no list. (No id is `u32::MAX`: slab numbers stay below
    /// `MAX_SLABS`.)
    pub(crate) const UNLINKED: LruLink = LruLink {
        prev: u32::MAX,
        next: u32::MAX,
    };
}

impl ZswapEntry {
    /// A new, unpublished entry for `swpentry`, to go on the LRU list of
    /// memcg `lru_memcg`. `EINVAL` if the offset is above
    /// [`MAX_ENTRY_OFFSET`] or the id above [`LRU_MEMCG_MAX`].
    pub(crate) fn new(swpentry: SwpEntry, lru_memcg: u32) -> Result<ZswapEntry> {
        let offset = u32::try_from(swpentry.offset()).map_err(|_| Error::EINVAL)?;
        if lru_memcg > LRU_MEMCG_MAX {
            return Err(Error::EINVAL);
        }
        let meta = lru_memcg | ((swpentry.swp_type() & META_TYPE_MASK) << META_TYPE_SHIFT);
        Ok(ZswapEntry {
            obj: UnsafeCell::new(0),
            lru: UnsafeCell::new(LruLink::UNLINKED),
            offset,
            meta: AtomicU32::new(meta),
        })
    }

    /// The swap slot this entry holds the page of.
    #[inline]
    pub(crate) fn swpentry(&self) -> SwpEntry {
        let t = (self.meta.load(Ordering::Relaxed) >> META_TYPE_SHIFT) & META_TYPE_MASK;
        SwpEntry::from_type_and_u32(t, self.offset)
    }

    /// Records the pool object holding the page: `handle` in pool
    /// `pool_idx`, `length` bytes (`PAGE_SIZE`: stored raw). `EINVAL`
    /// (nothing recorded) for a length outside 1..=`PAGE_SIZE` or a pool id
    /// above `MAX_POOLS`.
    pub(crate) fn set_object(
        &mut self,
        handle: zpool::Handle,
        length: usize,
        pool_idx: u8,
    ) -> Result<()> {
        if length == 0 || length > PAGE_SIZE || u32::from(pool_idx) > META_POOL_MASK {
            return Err(Error::EINVAL);
        }
        let obj = handle.local() | (((length - 1) as u64) << HANDLE_BITS);
        // SAFETY: `&mut self` makes us the only owner of an entry no other
        // thread can reach (not yet published, or a test's own), so nothing
        // reads the cell concurrently.
        self.obj.with_mut(|p| unsafe { *p = obj });
        let meta = self.meta.load(Ordering::Relaxed) & !(META_POOL_MASK << META_POOL_SHIFT);
        self.meta.store(
            meta | (u32::from(pool_idx) << META_POOL_SHIFT),
            Ordering::Relaxed,
        );
        Ok(())
    }

    fn obj(&self) -> u64 {
        // SAFETY: written only by `set_object` through `&mut self`, before
        // the entry was published; a thread holding `&self` reached it
        // through the tree lock, the LRU list lock or ownership, each of
        // which orders it after that write (type invariant).
        self.obj.with(|p| unsafe { *p })
    }

    /// The pool handle without its pool id (`zpool::Handle::local`); the
    /// pool rebuilds it (`ZsPool::handle_from_local`).
    pub(crate) fn handle_local(&self) -> u64 {
        self.obj() & HANDLE_MASK
    }

    /// The pool handle of the object, rebuilt by `zpool`, the pool
    /// `pool_idx()` names.
    #[inline]
    pub(crate) fn handle_in<A: kbase::PageAllocator>(
        &self,
        zpool: &zpool::ZsPool<A>,
    ) -> zpool::Handle {
        zpool.handle_from_local(self.handle_local())
    }

    /// Compressed length; `PAGE_SIZE` stored raw.
    #[inline]
    pub(crate) fn length(&self) -> usize {
        (self.obj() >> HANDLE_BITS) as usize + 1
    }

    /// Id of the pool holding the object.
    #[inline]
    pub(crate) fn pool_idx(&self) -> u8 {
        ((self.meta.load(Ordering::Relaxed) >> META_POOL_SHIFT) & META_POOL_MASK) as u8
    }

    /// Records whether the compressed bytes are charged to a cgroup (store
    /// charges them before it publishes the entry; `&mut self`, as
    /// [`ZswapEntry::set_object`]). The free path uncharges a charged
    /// entry through the cgroup of its LRU record.
    pub(crate) fn set_charged(&mut self, on: bool) {
        let meta = self.meta.load(Ordering::Relaxed) & !META_CHARGED;
        let bit = if on { META_CHARGED } else { 0 };
        self.meta.store(meta | bit, Ordering::Relaxed);
    }

    /// Are the entry's compressed bytes charged to a cgroup?
    #[inline]
    pub(crate) fn is_charged(&self) -> bool {
        self.meta.load(Ordering::Relaxed) & META_CHARGED != 0
    }

    /// The entry's identity for writeback's re-check: its pool id and pool
    /// handle (one live object of one pool; unlike the entry's address, the
    /// same in every replay of a schedule, so loom can explore it).
    #[inline]
    pub(crate) fn identity(&self) -> u64 {
        self.handle_local() | (u64::from(self.pool_idx()) << HANDLE_BITS)
    }

    /// The memcg id of [`ZswapEntry::lru_key`].
    #[cfg(all(test, not(loom)))]
    pub(crate) fn lru_memcg(&self) -> u32 {
        self.meta.load(Ordering::Relaxed) & META_MEMCG_MASK
    }

    /// Records the per-CPU LRU sub-list the entry goes on (`sublist` below
    /// [`LRU_SUBLISTS_MAX`]; only its low two bits are kept), before it is
    /// published (`&mut self`, as [`ZswapEntry::set_object`]).
    pub(crate) fn set_lru_sublist(&mut self, sublist: usize) {
        let meta = self.meta.load(Ordering::Relaxed) & !(META_SUBLIST_MASK << META_SUBLIST_SHIFT);
        let bits = (sublist as u32 & META_SUBLIST_MASK) << META_SUBLIST_SHIFT;
        self.meta.store(meta | bits, Ordering::Relaxed);
    }

    /// The sub-list of [`ZswapEntry::lru_key`].
    #[cfg(all(test, not(loom)))]
    pub(crate) fn lru_sublist(&self) -> usize {
        ((self.meta.load(Ordering::Relaxed) >> META_SUBLIST_SHIFT) & META_SUBLIST_MASK) as usize
    }

    /// The entry's LRU key but for its node, from one load: the memcg id
    /// of its LRU list (kept through reparenting: the LRU follows the
    /// redirect) and its per-CPU sub-list (0 unless
    /// [`ZswapEntry::set_lru_sublist`] chose another).
    #[inline]
    pub(crate) fn lru_key(&self) -> (u32, usize) {
        let meta = self.meta.load(Ordering::Relaxed);
        (
            meta & META_MEMCG_MASK,
            ((meta >> META_SUBLIST_SHIFT) & META_SUBLIST_MASK) as usize,
        )
    }

    /// The entry's LRU link.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of the LRU list the entry's key resolves to
    /// (whether or not the entry is on it), or owns the entry while it is on
    /// no list.
    pub(crate) unsafe fn lru_link(&self) -> LruLink {
        // SAFETY: the caller's contract: the link is only accessed under
        // that list's lock (type invariant), so no access races this read.
        self.lru.with(|p| unsafe { *p })
    }

    /// Sets the entry's LRU link.
    ///
    /// # Safety
    ///
    /// As for [`ZswapEntry::lru_link`].
    pub(crate) unsafe fn set_lru_link(&self, link: LruLink) {
        // SAFETY: as for `lru_link`: no other access to the cell runs
        // meanwhile.
        self.lru.with_mut(|p| unsafe { *p = link })
    }

    /// Sets or clears the second-chance bit of an entry no other thread can
    /// reach yet (`&mut self`, as [`ZswapEntry::set_object`]): a plain
    /// store, no read-modify-write. Once the entry is published only the LRU
    /// walker changes the bit ([`ZswapEntry::take_referenced`], atomic).
    /// (Store sets it on every page: one locked instruction fewer.)
    pub(crate) fn set_referenced(&mut self, on: bool) {
        let meta = self.meta.load(Ordering::Relaxed) & !META_REFERENCED;
        let bit = if on { META_REFERENCED } else { 0 };
        self.meta.store(meta | bit, Ordering::Relaxed);
    }

    /// Clears the second-chance bit; was it set?
    pub(crate) fn take_referenced(&self) -> bool {
        self.meta.fetch_and(!META_REFERENCED, Ordering::Relaxed) & META_REFERENCED != 0
    }
}

/// A published entry's address and its id (the tree stores the id).
///
/// # Invariants
///
/// `ptr` points to a live `ZswapEntry` in a slot of the zswap's entry cache
/// while it is in a tree, and `id` is that slot's id; copies outside a tree
/// are identities only.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct EntryPtr {
    pub(crate) ptr: NonNull<ZswapEntry>,
    pub(crate) id: EntryId,
}

// SAFETY: an address; dereferencing it is governed by the ownership rule of
// the module docs, not by which thread holds the copy.
unsafe impl Send for EntryPtr {}
// SAFETY: as above.
unsafe impl Sync for EntryPtr {}

impl EntryPtr {
    /// Writes `e` into a slot of the entry cache: the returned pointer owns
    /// the entry (until it is published, the caller's).
    pub(crate) fn new_in(slot: EntrySlot, e: ZswapEntry) -> EntryPtr {
        // INVARIANT: a cache slot, now holding a live entry, and its id.
        let (ptr, id) = slot.write(e);
        EntryPtr { ptr, id }
    }

    /// The address (unit tests compare entries by it).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn addr(self) -> usize {
        self.ptr.as_ptr() as usize
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
    id: EntryId,
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
    #[inline]
    pub(crate) unsafe fn from_erased(p: EntryPtr) -> OwnedEntry {
        // INVARIANT: the caller's contract.
        OwnedEntry {
            ptr: p.ptr,
            id: p.id,
        }
    }

    /// The pointer, to put the entry back into a tree.
    #[inline]
    pub(crate) fn into_ptr(self) -> EntryPtr {
        let p = EntryPtr {
            ptr: self.ptr,
            id: self.id,
        };
        core::mem::forget(self);
        p
    }

    /// The NUMA node of the entry's LRU list: its slab's (`cache` is the
    /// cache its slot came from).
    #[inline]
    pub(crate) fn nid(&self, cache: &EntryCache) -> usize {
        // SAFETY: by the type invariant `ptr` is a live entry in a slot of
        // the entry cache, which the caller names.
        unsafe { cache.nid_of(self.ptr) }
    }

    /// The entry's address (identity).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Gives the entry's slot back to `cache` (`zswap_entry_cache_free`;
    /// free order: LRU delete and uncharge, pool, entry).
    ///
    /// # Safety
    ///
    /// The entry must no longer be linked on any LRU list, and `cache` must
    /// be the cache its slot came from.
    #[inline]
    pub(crate) unsafe fn free_memory(self, cache: &EntryCache) {
        let ptr = self.ptr;
        core::mem::forget(self);
        // SAFETY: by the type invariant we are the only owner of a live
        // entry; the caller guarantees no LRU list links to it, so no other
        // thread can reach it any more. Dropping it in place (its fields
        // hold no resources, but the drop stays right if one ever does)
        // leaves the slot uninitialised, and it is given back at once.
        unsafe { ptr.as_ptr().drop_in_place() };
        // SAFETY: the slot came from `cache` (caller's contract) and is
        // given back once; nothing uses it afterwards.
        unsafe { cache.free(ptr) };
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
    #[cfg(target_pointer_width = "64")]
    fn entry_is_24_bytes() {
        assert_eq!(core::mem::size_of::<ZswapEntry>(), 24);
    }

    #[test]
    fn packed_fields_round_trip_at_their_limits() {
        let swp = SwpEntry::new(31, MAX_ENTRY_OFFSET).unwrap();
        let mut e = ZswapEntry::new(swp, LRU_MEMCG_MAX).unwrap();
        let h = zpool::Handle::from_raw(u64::MAX);
        e.set_object(h, PAGE_SIZE, crate::pool::MAX_POOLS as u8)
            .unwrap();
        e.set_charged(true);
        e.set_referenced(true);
        e.set_lru_sublist(LRU_SUBLISTS_MAX - 1);
        assert_eq!(e.swpentry(), swp);
        assert_eq!(e.lru_memcg(), LRU_MEMCG_MAX);
        assert_eq!(e.lru_sublist(), LRU_SUBLISTS_MAX - 1);
        assert_eq!(e.handle_local(), h.local());
        assert_eq!(e.length(), PAGE_SIZE);
        assert_eq!(e.pool_idx(), crate::pool::MAX_POOLS as u8);
        assert!(e.is_charged());
        assert!(e.take_referenced());
        assert!(!e.take_referenced());
        assert_eq!(e.swpentry(), swp, "the referenced bit is apart");
        assert_eq!(e.lru_sublist(), LRU_SUBLISTS_MAX - 1);
        e.set_object(zpool::Handle::from_raw(7), 1, 1).unwrap();
        assert_eq!((e.handle_local(), e.length(), e.pool_idx()), (7, 1, 1));
        assert_eq!(e.lru_memcg(), LRU_MEMCG_MAX);
        assert_eq!(e.swpentry(), swp);
        assert_eq!(e.lru_sublist(), LRU_SUBLISTS_MAX - 1);
        e.set_referenced(true);
        e.set_lru_sublist(1);
        assert!(e.take_referenced(), "the sub-list bits are apart");
        assert_eq!((e.lru_sublist(), e.swpentry()), (1, swp));
        assert_eq!((e.lru_memcg(), e.pool_idx()), (LRU_MEMCG_MAX, 1));
        assert!(e.is_charged(), "the pool id is apart from the charged bit");
        e.set_charged(false);
        assert!(!e.is_charged());
        assert_eq!(
            (e.swpentry(), e.pool_idx(), e.lru_memcg()),
            (swp, 1, LRU_MEMCG_MAX)
        );
    }

    #[test]
    fn values_past_the_packing_limits_are_refused() {
        let far = SwpEntry::new(0, MAX_ENTRY_OFFSET + 1).unwrap();
        assert_eq!(ZswapEntry::new(far, 0).err(), Some(Error::EINVAL));
        let swp = SwpEntry::new(0, 1).unwrap();
        assert_eq!(
            ZswapEntry::new(swp, LRU_MEMCG_MAX + 1).err(),
            Some(Error::EINVAL)
        );
        let mut e = ZswapEntry::new(swp, 3).unwrap();
        let h = zpool::Handle::from_raw(9);
        assert_eq!(e.set_object(h, 0, 1), Err(Error::EINVAL));
        assert_eq!(e.set_object(h, PAGE_SIZE + 1, 1), Err(Error::EINVAL));
        let past = crate::pool::MAX_POOLS as u8 + 1;
        assert_eq!(e.set_object(h, 100, past), Err(Error::EINVAL));
        e.set_object(h, 100, 2).unwrap();
        assert_eq!((e.length(), e.pool_idx()), (100, 2));
    }

    #[test]
    fn a_pool_rebuilds_the_handle_an_entry_keeps() {
        let pages = kbase::HeapPageAllocator::new();
        let pool = zpool::ZsPool::new(&pages).unwrap();
        let h = pool.malloc(100, kbase::Gfp::KERNEL).unwrap();
        let mut e = ZswapEntry::new(SwpEntry::new(0, 1).unwrap(), 0).unwrap();
        e.set_object(h, 100, 1).unwrap();
        assert_eq!(e.handle_in(&pool), h);
        pool.free(e.handle_in(&pool)).unwrap();
        assert_eq!(pool.total_pages(), 0);
    }

    #[test]
    fn identity_names_pool_and_handle() {
        let swp = SwpEntry::new(0, 1).unwrap();
        let mut a = ZswapEntry::new(swp, 0).unwrap();
        let mut b = ZswapEntry::new(swp, 0).unwrap();
        a.set_object(zpool::Handle::from_raw(5), 10, 1).unwrap();
        b.set_object(zpool::Handle::from_raw(5), 10, 2).unwrap();
        assert_ne!(a.identity(), b.identity());
        b.set_object(zpool::Handle::from_raw(5), 20, 1).unwrap();
        assert_eq!(a.identity(), b.identity(), "same object of the same pool");
    }
}
